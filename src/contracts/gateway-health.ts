import path from "node:path";
import { z } from "zod";

/*
 * `<state-dir>/gateway/health.json`: written by the gateway process (atomically, only when something other than
 * the probe time changed), read by the controller. The one definition both processes import; README, "The
 * gateway", describes it for operators.
 */

export const HEALTH_STATES = ["Starting", "Ready", "Unhealthy"] as const;
export type HealthStateName = (typeof HEALTH_STATES)[number];

export const GatewayHealthServer = z.object({
  user_id: z.string(),
  server_id: z.string(),
  /** The container the probes ran against: a state is about that container only. */
  container_id: z.string(),
  host_port: z.number().int(),
  state: z.enum(HEALTH_STATES),
  /** When `state` last changed. */
  since: z.string(),
  last_probe_at: z.string().optional(),
  consecutive_failures: z.number().int().min(0),
  /** Why, in the gateway's own words: never content the server sent. */
  message: z.string(),
});
export type GatewayHealthServer = z.infer<typeof GatewayHealthServer>;

export const GatewayHealthFile = z.object({
  updated_at: z.string(),
  servers: z.array(GatewayHealthServer),
});
export type GatewayHealthFile = z.infer<typeof GatewayHealthFile>;

export function gatewayHealthPath(stateDir: string): string {
  return path.join(stateDir, "gateway", "health.json");
}

/** The parts of a server's health that change what the controller reports (not probe times or counters). */
export function healthVerdict(server: GatewayHealthServer | undefined): string {
  return server === undefined ? "" : `${server.container_id}:${server.state}:${server.message}`;
}

/** Key of a server in the health map: `<user>/<server>`. */
export function gatewayHealthKey(userId: string, serverId: string): string {
  return `${userId}/${serverId}`;
}
