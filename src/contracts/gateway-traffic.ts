import path from "node:path";
import { z } from "zod";
import { ServerId, UserId } from "../util/ids.js";

/*
 * `<state-dir>/gateway/traffic.json`: when each server last had a client request through the gateway (README,
 * "Idle servers"). Traffic is any client request other than `ping`: notifications, answers to the server's own
 * requests, open event streams and the gateway's probes are not. Written by the gateway (atomically, at most
 * every TRAFFIC_WRITE_INTERVAL_MS while requests arrive), read by the controller when an idle timeout may have
 * passed. A server absent here had no request since the gateway started.
 */

export const GATEWAY_TRAFFIC_VERSION = 1;

/** The gateway writes the file at most this often; an idle timeout is therefore exact to about this much. */
export const TRAFFIC_WRITE_INTERVAL_MS = 1000;

/**
 * After writing a server into idle.json and before stopping it, the controller waits this long and reads this
 * file again: a request that reached the server before the gateway saw idle.json is in the file by then (the
 * gateway writes within TRAFFIC_WRITE_INTERVAL_MS of a request, and re-stamps requests in progress), and calls
 * the stop off. Requests after it are held by the gateway for the wake.
 */
export const IDLE_STOP_GRACE_MS = TRAFFIC_WRITE_INTERVAL_MS + 500;

export const TrafficServer = z.object({
  user_id: UserId,
  server_id: ServerId,
  last_request_at: z.string(),
});
export type TrafficServer = z.infer<typeof TrafficServer>;

export const GatewayTrafficFile = z.object({
  version: z.literal(GATEWAY_TRAFFIC_VERSION),
  updated_at: z.string(),
  servers: z.array(TrafficServer),
});
export type GatewayTrafficFile = z.infer<typeof GatewayTrafficFile>;

export const MAX_TRAFFIC_FILE_BYTES = 10 * 1024 * 1024;

export function gatewayTrafficPath(stateDir: string): string {
  return path.join(stateDir, "gateway", "traffic.json");
}
