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
 * (src/contracts/gateway-traffic.ts) at most every TRAFFIC_WRITE_INTERVAL_MS while requests arrive, so a busy
 * gateway costs one small write a second, not one per request.
 */
export class TrafficRecorder {
  private readonly last = new Map<string, { userId: string; serverId: string; at: number }>();
  private timer: unknown;
  private writing: Promise<void> | undefined;

  constructor(
    private readonly stateDir: string,
    private readonly clock: Clock,
    private readonly onError: (error: unknown) => void = () => undefined,
    private readonly intervalMs = TRAFFIC_WRITE_INTERVAL_MS,
  ) {}

  record(userId: string, serverId: string): void {
    this.last.set(`${userId}/${serverId}`, { userId, serverId, at: this.clock.now() });
    if (this.timer === undefined)
      this.timer = this.clock.setTimeout(() => void this.write(), this.intervalMs);
  }

  /** Writes what was recorded now (at shutdown). */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      await this.write();
    }
    await this.writing;
  }

  private async write(): Promise<void> {
    this.timer = undefined;
    await this.writing;
    const content: GatewayTrafficFile = {
      version: GATEWAY_TRAFFIC_VERSION,
      updated_at: new Date(this.clock.now()).toISOString(),
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
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
