import type { PolicyFile } from "../schema/policy.js";
import { type Problem, jsonPath } from "./problem.js";

/**
 * Why an idle timeout does nothing on the Swarm backend (README, "Idle servers"): the controller stops idle
 * containers and the gateway wakes them on the Docker Engine backend only; a Swarm service would need its
 * replicas scaled and the node gateways to ask for wakes, which is not built.
 */
export const IDLE_NOT_APPLIED_ON_SWARM =
  "idle servers (scale to zero) need the Docker Engine backend; on MCP_PORTAL_BACKEND=swarm every server stays on";

/** A warning at each catalog server that sets an idle timeout (`0` is always on: nothing to warn about). */
export function catalogIdleWarnings(
  file: string,
  servers: readonly { idle_timeout_seconds?: number | undefined }[],
): Problem[] {
  const warnings: Problem[] = [];
  servers.forEach((server, index) => {
    if ((server.idle_timeout_seconds ?? 0) > 0)
      warnings.push({
        file,
        path: jsonPath(["servers", index, "idle_timeout_seconds"]),
        message: `not applied: ${IDLE_NOT_APPLIED_ON_SWARM}`,
      });
  });
  return warnings;
}

/** A warning at each policy.json idle field that would give a server a timeout. */
export function policyIdleWarnings(file: string, policy: PolicyFile): Problem[] {
  const warnings: Problem[] = [];
  const check = (segments: readonly string[], idle: PolicyFile["idle"]) => {
    if (!idle) return;
    for (const field of ["default_timeout_seconds", "max_timeout_seconds"] as const) {
      if ((idle[field] ?? 0) > 0)
        warnings.push({
          file,
          path: jsonPath([...segments, "idle", field]),
          message: `not applied: ${IDLE_NOT_APPLIED_ON_SWARM}`,
        });
    }
  };
  check([], policy.idle);
  for (const [userId, user] of Object.entries(policy.users).sort(([a], [b]) => (a < b ? -1 : 1)))
    check(["users", userId], user.idle);
  return warnings;
}
