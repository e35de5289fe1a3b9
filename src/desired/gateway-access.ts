import {
  GATEWAY_ACCESS_API_VERSION,
  type EffectiveToolPolicy,
  type GatewayAccessFile,
  type ServerAccess,
} from "../contracts/gateway-access.js";
import type { EnabledServersFile } from "../schema/enabled-servers.js";
import type { PolicyFile } from "../schema/policy.js";
import { ownValue } from "../util/own-property.js";

/*
 * What the gateway enforces for one user, pure: each enabled server's effective tool policy (the user's allow and
 * deny, with the admin's policy.json `server_tools` deny first, so the admin wins) and the rate limits that apply.
 * None of it is part of a container's spec: changing it replaces nothing.
 */

export function gatewayAccess(
  userId: string,
  enabled: EnabledServersFile,
  policy: PolicyFile,
): GatewayAccessFile {
  const limits = policy.rate_limits;
  const servers: Record<string, ServerAccess> = {};
  for (const entry of enabled.servers) {
    const rateLimit = ownValue(limits.servers, entry.id) ?? limits.per_server;
    servers[entry.id] = {
      tools: effectiveToolPolicy(ownValue(policy.server_tools, entry.id)?.deny ?? [], entry.tools),
      ...(rateLimit ? { rate_limit: rateLimit } : {}),
    };
  }
  const userLimit = ownValue(limits.users, userId) ?? limits.per_user;
  return {
    api_version: GATEWAY_ACCESS_API_VERSION,
    user_id: userId,
    ...(userLimit ? { rate_limit: userLimit } : {}),
    servers,
  };
}

/** Deny globs in order, each once: the admin's, then the user's. */
export function effectiveToolPolicy(
  adminDeny: readonly string[],
  user: { allow?: readonly string[] | undefined; deny?: readonly string[] | undefined } | undefined,
): EffectiveToolPolicy {
  const deny = [...new Set([...adminDeny, ...(user?.deny ?? [])])];
  return user?.allow === undefined ? { deny } : { allow: [...new Set(user.allow)], deny };
}
