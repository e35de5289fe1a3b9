import {
  GATEWAY_TRAFFIC_VERSION,
  type GatewayTrafficFile,
  TRAFFIC_WRITE_INTERVAL_MS,
  gatewayTrafficPath,
} from "../contracts/gateway-traffic.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import type { Clock } from "../util/clock.js";

/**
 * When each server last had a client request (other than `ping`), written to `<state-dir>/gateway/traffic.json`
 * (src/contracts/gateway-traffic.ts) at most every TRAFFIC_WRITE_INTERVAL_MS while requests arrive or are in
 * progress, so a busy gateway costs one small write a second, not one per request.
 */
export class TrafficRecorder {
  private readonly last = new Map<string, { userId: string; serverId: string; at: number }>();
  /** Requests in progress per server: their servers count as active at every write. */
  private readonly inflight = new Map<string, number>();
  private timer: unknown;
  private writing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly stateDir: string,
    private readonly clock: Clock,
    private readonly onError: (error: unknown) => void = () => undefined,
    private readonly intervalMs = TRAFFIC_WRITE_INTERVAL_MS,
  ) {}

  record(userId: string, serverId: string): void {
    this.last.set(`${userId}/${serverId}`, { userId, serverId, at: this.clock.now() });
    this.schedule();
  }

  /**
   * A request began: it is traffic until it ends (a wake, a slow tool call), so the server is not stopped under
   * it. Returns the function that ends it (idempotent).
   */
  begin(userId: string, serverId: string): () => void {
    const key = `${userId}/${serverId}`;
    this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    this.record(userId, serverId);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.inflight.get(key) ?? 1) - 1;
      if (left <= 0) this.inflight.delete(key);
      else this.inflight.set(key, left);
      this.record(userId, serverId);
    };
  }

  /** Writes what was recorded now and stops writing (at shutdown). */
  async flush(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      await this.write();
    }
    await this.writing;
  }

  private schedule(): void {
    if (this.timer === undefined && !this.stopped)
      this.timer = this.clock.setTimeout(() => void this.write(), this.intervalMs);
  }

  private async write(): Promise<void> {
    this.timer = undefined;
    await this.writing;
    const now = this.clock.now();
    for (const key of this.inflight.keys()) {
      const entry = this.last.get(key);
      if (entry) entry.at = now;
    }
    const content: GatewayTrafficFile = {
      version: GATEWAY_TRAFFIC_VERSION,
      updated_at: new Date(now).toISOString(),
      servers: [...this.last.values()]
        .sort((a, b) => (a.userId === b.userId ? cmp(a.serverId, b.serverId) : cmp(a.userId, b.userId)))
        .map((e) => ({
          user_id: e.userId,
          server_id: e.serverId,
          last_request_at: new Date(e.at).toISOString(),
        })),
    };
    this.writing = writeJsonAtomic(gatewayTrafficPath(this.stateDir), content).catch((error: unknown) =>
      this.onError(error),
    );
    await this.writing;
    // While requests are in progress their servers stay active: write again after the interval.
    if (this.inflight.size > 0) this.schedule();
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
