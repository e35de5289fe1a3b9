import { readFile, stat } from "node:fs/promises";
import {
  GatewayHealthFile,
  type GatewayHealthServer,
  gatewayHealthKey,
  gatewayHealthPath,
} from "../contracts/gateway-health.js";

/**
 * Reads the gateway's health file, re-parsing only when it changed. A missing file means "no gateway has
 * reported yet" (every server is unknown); an unreadable one keeps the last good reading.
 */
export class GatewayHealthReader {
  private cache: { mtimeMs: number; size: number; byServer: Map<string, GatewayHealthServer> } | undefined;
  private lastRead: ReadonlyMap<string, GatewayHealthServer> | undefined;

  constructor(private readonly stateDir: string) {}

  /** The last reading, if there was one (no I/O; the controller re-reads on every change of the file). */
  peek(): ReadonlyMap<string, GatewayHealthServer> | undefined {
    return this.lastRead;
  }

  async read(): Promise<ReadonlyMap<string, GatewayHealthServer>> {
    this.lastRead = await this.readFile();
    return this.lastRead;
  }

  private async readFile(): Promise<ReadonlyMap<string, GatewayHealthServer>> {
    const file = gatewayHealthPath(this.stateDir);
    let info;
    try {
      info = await stat(file);
    } catch {
      this.cache = undefined;
      return new Map();
    }
    if (this.cache && this.cache.mtimeMs === info.mtimeMs && this.cache.size === info.size)
      return this.cache.byServer;
    try {
      const parsed = GatewayHealthFile.safeParse(JSON.parse(await readFile(file, "utf8")));
      if (!parsed.success) return this.cache?.byServer ?? new Map();
      const byServer = new Map(parsed.data.servers.map((s) => [gatewayHealthKey(s.user_id, s.server_id), s]));
      this.cache = { mtimeMs: info.mtimeMs, size: info.size, byServer };
      return byServer;
    } catch {
      return this.cache?.byServer ?? new Map();
    }
  }
}
