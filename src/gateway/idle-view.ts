import { stat } from "node:fs/promises";
import {
  type IdleServer,
  IdleStateFile,
  MAX_IDLE_STATE_BYTES,
  idleKey,
  idleStatePath,
} from "../contracts/idle-state.js";
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
import { readStateFile } from "../util/read-state-file.js";

/**
 * The gateway's read-only view of the controller's idle.json (src/contracts/idle-state.ts): which servers are
 * idle, and the last wake the controller refused. Looked at every `pollMs` (a stat; parsed only when it changed)
 * and on demand; an unreadable file keeps the last good view.
 */
export class IdleView {
  private servers = new Map<string, IdleServer>();
  private seen: { mtimeMs: number; size: number } | undefined;
  private readonly listeners = new Set<() => void>();
  private timer: unknown;
  private refreshing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly stateDir: string,
    private readonly clock: Clock,
    private readonly logger: Logger,
    readonly pollMs = 250,
  ) {}

  async start(): Promise<void> {
    await this.refresh();
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
  }

  isIdle(userId: string, serverId: string): boolean {
    return this.servers.has(idleKey(userId, serverId));
  }

  get(userId: string, serverId: string): IdleServer | undefined {
    return this.servers.get(idleKey(userId, serverId));
  }

  /** Calls `listener` after each change of the file; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads the file now if it changed (concurrent calls share one read). */
  refresh(): Promise<void> {
    this.refreshing ??= this.read().finally(() => {
      this.refreshing = undefined;
      this.schedule();
    });
    return this.refreshing;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => void this.refresh(), this.pollMs);
  }

  private async read(): Promise<void> {
    const file = idleStatePath(this.stateDir);
    const info = await stat(file).catch(() => undefined);
    if (!info) {
      if (this.seen) this.replace(new Map());
      this.seen = undefined;
      return;
    }
    if (this.seen && this.seen.mtimeMs === info.mtimeMs && this.seen.size === info.size) return;
    const read = await readStateFile(file, IdleStateFile, MAX_IDLE_STATE_BYTES);
    if (read.status === "invalid") {
      this.logger.warn({ reason: read.reason }, "cannot use idle.json; keeping the last good view");
      return;
    }
    if (read.status === "missing") {
      this.seen = undefined;
      this.replace(new Map());
      return;
    }
    this.seen = { mtimeMs: read.mtimeMs, size: read.size };
    this.replace(new Map(read.value.servers.map((s) => [idleKey(s.user_id, s.server_id), s])));
  }

  private replace(servers: Map<string, IdleServer>): void {
    this.servers = servers;
    for (const listener of this.listeners) listener();
  }
}
