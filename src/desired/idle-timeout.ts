import type { ServerDefinition } from "../schema/catalog.js";
import type { PolicyFile } from "../schema/policy.js";
import { ownValue } from "../util/own-property.js";

/**
 * A server's idle timeout in seconds (0: always on), pure. The catalog (after overlays) says what the server
 * wants: `idle_timeout_seconds`, else `long_lived` (always on), else policy.json's default. policy.json's maximum
 * then caps it and gives one to an always-on server too: the admin's word wins over the catalog, a long-lived
 * flag included. A user's own `idle` entry wins over the one for everyone, field by field.
 */
export function effectiveIdleTimeoutSeconds(
  definition: Pick<ServerDefinition, "idle_timeout_seconds" | "long_lived">,
  policy: PolicyFile,
  userId: string,
): number {
  const mine = ownValue(policy.users, userId)?.idle;
  const defaultSeconds = mine?.default_timeout_seconds ?? policy.idle?.default_timeout_seconds;
  const maxSeconds = mine?.max_timeout_seconds ?? policy.idle?.max_timeout_seconds;
  const wanted =
    definition.idle_timeout_seconds ?? (definition.long_lived === true ? 0 : (defaultSeconds ?? 0));
  if (maxSeconds === undefined) return wanted;
  return wanted === 0 ? maxSeconds : Math.min(wanted, maxSeconds);
}
