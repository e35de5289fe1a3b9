import {
  type GatewayHealthFile,
  type GatewayHealthServer,
  gatewayHealthPath,
} from "../contracts/gateway-health.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import type { HealthState } from "./health.js";

/** One server in `<state-dir>/gateway/health.json` (the contract lives in src/contracts/gateway-health.ts). */
export type HealthFileServer = GatewayHealthServer;
export type HealthFileContent = GatewayHealthFile;

export const healthFilePath = gatewayHealthPath;

export interface ServerHealthEntry {
  userId: string;
  serverId: string;
  hostPort: number;
  health: HealthState;
}

/**
 * The health of every served server, written atomically, and only when something other than the probe time
 * changed (state, failures, message, container, port): a healthy fleet causes no writes. Writes never overlap;
 * changes made while one runs are written right after it.
 */
export class HealthFile {
  private readonly entries = new Map<string, ServerHealthEntry>();
  private lastWritten: string | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;

  constructor(
    private readonly file: string,
    private readonly now: () => number,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {}

  set(key: string, entry: ServerHealthEntry): void {
    this.entries.set(key, entry);
    this.schedule();
  }

  delete(key: string): void {
    if (this.entries.delete(key)) this.schedule();
  }

  /** Writes the file if it differs from what this process last wrote (at start: replaces a stale file). */
  sync(): void {
    this.schedule();
  }

  /** The file's content as it would be written now. */
  content(): HealthFileContent {
    const servers = [...this.entries.values()]
      .sort((a, b) => (a.userId === b.userId ? cmp(a.serverId, b.serverId) : cmp(a.userId, b.userId)))
      .map((e): HealthFileServer => ({
        user_id: e.userId,
        server_id: e.serverId,
        container_id: e.health.containerId,
        host_port: e.hostPort,
        state: e.health.state,
        since: new Date(e.health.since).toISOString(),
        last_probe_at: new Date(e.health.lastProbeAt ?? e.health.since).toISOString(),
        consecutive_failures: e.health.consecutiveFailures,
        message: e.health.message,
      }));
    return { updated_at: new Date(this.now()).toISOString(), servers };
  }

  /** Resolves once everything set so far is on disk (or failed to be written). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private schedule(): void {
    this.dirty = true;
    if (this.writing) return;
    this.writing = this.writeLoop().finally(() => {
      this.writing = undefined;
    });
  }

  private async writeLoop(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      const content = this.content();
      const significant = JSON.stringify(content.servers.map(({ last_probe_at: _probe, ...rest }) => rest));
      if (significant === this.lastWritten) continue;
      try {
        await writeJsonAtomic(this.file, content);
        this.lastWritten = significant;
      } catch (error) {
        this.onError(error);
      }
    }
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
