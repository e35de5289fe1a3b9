import path from "node:path";
import { z } from "zod";
import { SERVER_ID_PATTERN, ServerId, USER_ID_PATTERN, UserId } from "../util/ids.js";

/*
 * `<state-dir>/gateway/wake/<user>.<server>.json`: the gateway asks the controller to wake an idle server
 * (README, "Idle servers"). The gateway writes it (atomically) when a request reaches an idle server, and writes
 * it again while it keeps waiting and the file is gone; the controller acts on it (it watches the directory and
 * lists it at start and every second) and removes it once it decided: woken, refused (the reason goes to
 * idle.json and status) or not idle. A lost notification costs at most a second; a file left by a gateway that
 * stopped waiting wakes the server once, after which it idles again. The controller alone touches the engine.
 */

export const WAKE_REQUEST_VERSION = 1;

export const WakeRequest = z.object({
  version: z.literal(WAKE_REQUEST_VERSION),
  user_id: UserId,
  server_id: ServerId,
  requested_at: z.string(),
});
export type WakeRequest = z.infer<typeof WakeRequest>;

/** A wake request is a few hundred bytes; anything larger is not ours and is removed unread. */
export const MAX_WAKE_REQUEST_BYTES = 4096;

export function wakeRequestDir(stateDir: string): string {
  return path.join(stateDir, "gateway", "wake");
}

export function wakeRequestPath(stateDir: string, userId: string, serverId: string): string {
  return path.join(wakeRequestDir(stateDir), wakeRequestFileName(userId, serverId));
}

/** User ids hold no `.` and server ids neither, so `<user>.<server>.json` names each pair once. */
export function wakeRequestFileName(userId: string, serverId: string): string {
  return `${userId}.${serverId}.json`;
}

export function parseWakeRequestFileName(name: string): { userId: string; serverId: string } | undefined {
  const match = /^([^.]+)\.([^.]+)\.json$/.exec(name);
  if (!match) return undefined;
  const [, userId, serverId] = match;
  if (!USER_ID_PATTERN.test(userId!) || !SERVER_ID_PATTERN.test(serverId!)) return undefined;
  return { userId: userId!, serverId: serverId! };
}
