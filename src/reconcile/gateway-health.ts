import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";

/** `<state-dir>/gateway/health.json`, written by the gateway process (contract between the two processes). */
export const GatewayHealthFile = z.object({
  updated_at: z.string(),
  servers: z.array(
    z.object({
      user_id: z.string(),
      server_id: z.string(),
      container_id: z.string(),
      host_port: z.number().int(),
      state: z.enum(["Starting", "Ready", "Unhealthy"]),
      since: z.string(),
      last_probe_at: z.string().optional(),
      consecutive_failures: z.number().int().min(0),
      message: z.string(),
    }),
  ),
});
export type GatewayHealthFile = z.infer<typeof GatewayHealthFile>;
export type ServerHealth = GatewayHealthFile["servers"][number];

export function gatewayHealthPath(stateDir: string): string {
  return path.join(stateDir, "gateway", "health.json");
}

/**
 * Reads the gateway's health file, re-parsing only when it changed. A missing file means "no gateway has
 * reported yet" (every server is unknown); an unreadable one keeps the last good reading.
 */
export class GatewayHealthReader {
  private cache: { mtimeMs: number; size: number; byServer: Map<string, ServerHealth> } | undefined;

  constructor(private readonly stateDir: string) {}

  static key(userId: string, serverId: string): string {
    return `${userId}/${serverId}`;
  }

  async read(): Promise<ReadonlyMap<string, ServerHealth>> {
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
      const byServer = new Map(
        parsed.data.servers.map((s) => [GatewayHealthReader.key(s.user_id, s.server_id), s]),
      );
      this.cache = { mtimeMs: info.mtimeMs, size: info.size, byServer };
      return byServer;
    } catch {
      return this.cache?.byServer ?? new Map();
    }
  }
}
