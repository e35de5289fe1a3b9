import path from "node:path";
import { z } from "zod";
import { ServerId, UserId } from "../util/ids.js";

/*
 * `<state-dir>/idle.json`: the servers the controller stopped for idleness (README, "Idle servers"). Written by
 * the controller (atomically, whenever a server becomes idle, is woken, or a wake is refused), read by the
 * controller at start and by the gateway (which then answers for an idle server and asks for wakes). The state
 * dir remembers idleness because a container's labels cannot change without re-creating it.
 */

export const IDLE_STATE_VERSION = 1;

export const WakeRefusal = z.object({
  /** When the controller refused: a wake requested before this is answered by it. */
  at: z.string(),
  /** The limit's reason (`LimitExceeded`) and its message, as status says it. */
  reason: z.string(),
  message: z.string(),
});
export type WakeRefusal = z.infer<typeof WakeRefusal>;

export const IdleServer = z.object({
  user_id: UserId,
  server_id: ServerId,
  /** The container that was stopped (kept, not removed); a re-created idle container replaces it here. */
  container_id: z.string(),
  /** When it became idle. */
  since: z.string(),
  /** The last wake the controller refused, while the server stays idle. */
  wake_refused: WakeRefusal.optional(),
});
export type IdleServer = z.infer<typeof IdleServer>;

export const IdleStateFile = z.object({
  version: z.literal(IDLE_STATE_VERSION),
  updated_at: z.string(),
  servers: z.array(IdleServer),
});
export type IdleStateFile = z.infer<typeof IdleStateFile>;

/** Largest idle.json either process reads (about 150 bytes per idle server: 65,000 of them). */
export const MAX_IDLE_STATE_BYTES = 10 * 1024 * 1024;

export function idleStatePath(stateDir: string): string {
  return path.join(stateDir, "idle.json");
}

/** `<user>/<server>`, as in the gateway's health file. */
export function idleKey(userId: string, serverId: string): string {
  return `${userId}/${serverId}`;
}
