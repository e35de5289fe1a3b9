import path from "node:path";
import { z } from "zod";
import { jsonMap } from "../schema/common.js";
import { RateLimit, ToolGlobList } from "../schema/tools.js";
import { ServerId, UserId } from "../util/ids.js";

/*
 * `<state-dir>/users/<id>/gateway-access.json`: what the gateway enforces for one user's servers, computed by the
 * controller from enabled-servers.json (`servers[].tools`) and policy.json (`server_tools`, `rate_limits`).
 * Written by the controller (atomically, only when it changed, before it creates or replaces any of the user's
 * containers), read by the gateway (checked again every MCP_PORTAL_GATEWAY_POLICY_RECHECK_MS). The one definition
 * both processes import; README, "Identity", describes it for operators.
 *
 * A missing file means no tool policy and no rate limit (the gateway's behaviour before the file existed); a
 * server the file does not list gets no tools at all; a file that cannot be read or parsed keeps the gateway's
 * last good version, and without one every tool of that user is refused until it is fixed (fail closed).
 */

export const GATEWAY_ACCESS_FILE_NAME = "gateway-access.json";
export const GATEWAY_ACCESS_API_VERSION = "mcp-portal/v1";

/** The effective tool policy of one server: absent `allow` means every tool; a tool any `deny` glob matches is hidden. */
export const EffectiveToolPolicy = z.strictObject({
  allow: ToolGlobList.optional(),
  /** The admin's `server_tools.<id>.deny` first, then the user's own. */
  deny: ToolGlobList,
});
export type EffectiveToolPolicy = z.infer<typeof EffectiveToolPolicy>;

export const ServerAccess = z.strictObject({
  tools: EffectiveToolPolicy,
  /** Requests to this server of this user; absent: none. */
  rate_limit: RateLimit.optional(),
});
export type ServerAccess = z.infer<typeof ServerAccess>;

export const GatewayAccessFile = z.strictObject({
  api_version: z.literal(GATEWAY_ACCESS_API_VERSION),
  user_id: UserId,
  /** Requests to all of this user's servers together; absent: none. */
  rate_limit: RateLimit.optional(),
  /** Every server the user enabled, by id. */
  servers: jsonMap(ServerId, ServerAccess),
});
export type GatewayAccessFile = z.infer<typeof GatewayAccessFile>;

export function gatewayAccessPath(stateDir: string, userId: string): string {
  return path.join(stateDir, "users", userId, GATEWAY_ACCESS_FILE_NAME);
}
