import { type Clock, systemClock } from "../util/clock.js";

export interface StartBackoffOptions {
  /** First delay after a container died soon after we started it. */
  baseMs: number;
  maxMs: number;
  /** A container that ran at least this long before dying is not crash-looping. */
  healthyAfterMs: number;
}

export const DEFAULT_START_BACKOFF: StartBackoffOptions = {
  baseMs: 10_000,
  maxMs: 5 * 60_000,
  healthyAfterMs: 120_000,
};

/**
 * The controller owns restarts (containers run with restart policy "no"), so it must not restart a crashing
 * server hot: each quick death doubles the wait before the next start (CrashLoopBackOff).
 */
export class StartBackoff {
  private readonly records = new Map<string, { lastStart: number; quickDeaths: number }>();

  constructor(
    private readonly options: StartBackoffOptions = DEFAULT_START_BACKOFF,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Milliseconds to wait before `key` may be started again; 0 when it may start now. */
  waitMs(key: string): number {
    const record = this.records.get(key);
    if (!record) return 0;
    const since = this.clock.now() - record.lastStart;
    if (since >= this.options.healthyAfterMs) return 0;
    const delay = Math.min(this.options.maxMs, this.options.baseMs * 2 ** Math.min(record.quickDeaths, 20));
    return Math.max(0, delay - since);
  }

  recordStart(key: string): void {
    const now = this.clock.now();
    const record = this.records.get(key);
    const quick = record !== undefined && now - record.lastStart < this.options.healthyAfterMs;
    this.records.set(key, { lastStart: now, quickDeaths: quick ? record.quickDeaths + 1 : 0 });
  }

  forget(key: string): void {
    this.records.delete(key);
  }
}
