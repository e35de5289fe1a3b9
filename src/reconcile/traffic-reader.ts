import { stat } from "node:fs/promises";
import {
  GatewayTrafficFile,
  MAX_TRAFFIC_FILE_BYTES,
  gatewayTrafficPath,
} from "../contracts/gateway-traffic.js";
import { readStateFile } from "../util/read-state-file.js";

/**
 * Reads the gateway's traffic file (src/contracts/gateway-traffic.ts), re-parsing only when it changed. Missing:
 * no request seen (each server's idle clock then starts when the controller saw it running). Unreadable: the
 * last good reading is kept.
 */
export class TrafficReader {
  private cache: { mtimeMs: number; size: number; byServer: Map<string, number> } | undefined;

  constructor(private readonly stateDir: string) {}

  /** `<user>/<server>` -> the last request (ms since the epoch). */
  async read(): Promise<ReadonlyMap<string, number>> {
    const file = gatewayTrafficPath(this.stateDir);
    const info = await stat(file).catch(() => undefined);
    if (info && this.cache && this.cache.mtimeMs === info.mtimeMs && this.cache.size === info.size)
      return this.cache.byServer;
    const read = await readStateFile(file, GatewayTrafficFile, MAX_TRAFFIC_FILE_BYTES);
    if (read.status === "missing") return new Map();
    if (read.status === "invalid") return this.cache?.byServer ?? new Map();
    const byServer = new Map<string, number>();
    for (const s of read.value.servers) {
      const at = Date.parse(s.last_request_at);
      if (Number.isFinite(at)) byServer.set(`${s.user_id}/${s.server_id}`, at);
    }
    this.cache = { mtimeMs: read.mtimeMs, size: read.size, byServer };
    return byServer;
  }
}
