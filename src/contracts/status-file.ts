import path from "node:path";
import { z } from "zod";
import { RateLimit } from "../schema/tools.js";
import { EffectiveToolPolicy } from "./gateway-access.js";
import { HEALTH_STATES } from "./gateway-health.js";

/*
 * `<state-dir>/users/<id>/status.json`: what the controller observed and did for one user. Written by the
 * controller (atomically, only when it changed), read by the `status` command, the API and the console. The one
 * definition everyone imports; README, "Status", describes the fields.
 */

/** `Idle`: stopped after its idle timeout (container kept); the first request through the gateway wakes it. */
export const SERVER_PHASES = ["Running", "Idle", "Unhealthy", "Pending", "Blocked", "Failed"] as const;
export type ServerPhase = (typeof SERVER_PHASES)[number];

export const USER_PHASES = ["Ready", "Progressing", "Degraded", "Stalled", "Suspended"] as const;
export type UserPhase = (typeof USER_PHASES)[number];

export const CONDITION_TYPES = ["Ready", "Degraded", "Stalled"] as const;

export const ServerStatus = z.object({
  id: z.string(),
  phase: z.enum(SERVER_PHASES),
  reason: z.string().optional(),
  message: z.string().optional(),
  container_id: z.string().optional(),
  container_name: z.string().optional(),
  host_port: z.number().int().optional(),
  spec_hash: z.string().optional(),
  image: z.string().optional(),
  /**
   * The server's effective network egress (README, "Network egress"): `unrestricted`, `none`, or `allow` and
   * its host:port patterns; absent for a server that does not run.
   */
  egress: z.string().optional(),
  /** MCP-level health from the gateway's probes (absent when the gateway is off). */
  health: z.enum(HEALTH_STATES).optional(),
  /** The URL MCP clients use: `<MCP_PORTAL_PUBLIC_URL>:<host_port>/mcp` (when the gateway serves the ports). */
  url: z.string().optional(),
  /** The tool policy the gateway enforces (absent `allow`: every tool; `deny`: the admin's, then the user's). */
  tools: EffectiveToolPolicy.optional(),
  /** The rate limit of this server (policy.json rate_limits), when one applies. */
  rate_limit: RateLimit.optional(),
  /** Swarm: the node (hostname) the server's task runs on. */
  node: z.string().optional(),
  /** Hardening the backend cannot express for this server (Swarm: README, "Several hosts"); not a block. */
  warnings: z.array(z.string()).optional(),
});
export type ServerStatus = z.infer<typeof ServerStatus>;

export const Condition = z.object({
  type: z.enum(CONDITION_TYPES),
  status: z.enum(["True", "False"]),
  reason: z.string(),
  message: z.string(),
  last_transition_time: z.string(),
});
export type Condition = z.infer<typeof Condition>;

export const ReconcileRecord = z.object({
  time: z.string(),
  result: z.enum(["success", "error", "blocked"]),
  mutations: z.number().int().min(0),
  duration_ms: z.number().min(0),
  summary: z.string(),
});
export type ReconcileRecord = z.infer<typeof ReconcileRecord>;

const ResourceUsage = z.object({
  containers: z.number(),
  memory_mb: z.number(),
  cpu_shares: z.number(),
  ports: z.number(),
});
const Limits = z.object({
  max_containers: z.number(),
  max_memory_mb: z.number(),
  max_cpu_shares: z.number(),
  max_ports: z.number(),
});

export const StatusProblem = z.object({ file: z.string(), path: z.string(), message: z.string() });

export const UserStatus = z.object({
  api_version: z.literal("mcp-portal/v1"),
  user_id: z.string(),
  phase: z.enum(USER_PHASES),
  /** Hash of the inputs this status was computed from. */
  observed_generation: z.string(),
  network: z
    .object({ name: z.string(), id: z.string().optional(), subnet: z.string().optional() })
    .nullable(),
  port_block: z.object({ start: z.number().int(), end: z.number().int() }).nullable(),
  servers: z.array(ServerStatus),
  resources: z.object({ used: ResourceUsage, limits: Limits }).nullable(),
  conditions: z.array(Condition),
  errors: z.array(StatusProblem),
  last_reconciles: z.array(ReconcileRecord),
});
export type UserStatus = z.infer<typeof UserStatus>;

export function statusFilePath(stateDir: string, userId: string): string {
  return path.join(stateDir, "users", userId, "status.json");
}
