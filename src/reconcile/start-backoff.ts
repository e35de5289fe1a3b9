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
 *
 * "Quick" is how long the container ran: from its start (the engine call returned) to when the controller first
 * saw it stopped. It is not measured up to the next start: that would count the backoff wait and the next start
 * call as running, so on an engine whose start takes longer than `healthyAfterMs` a server that dies at once
 * would look healthy every time and restart without backing off.
 */
export class StartBackoff {
  private readonly records = new Map<
    string,
    { lastStart: number; quickDeaths: number; seenStoppedAt?: number }
  >();

  constructor(
    private readonly options: StartBackoffOptions = DEFAULT_START_BACKOFF,
    private readonly clock: Clock = systemClock,
  ) {}

  /**
   * Milliseconds to wait before `key`, now seen stopped, may be started again; 0 when it may start now. The first
   * call after a start records when the container was seen stopped (asking again does not move it).
   */
  waitMs(key: string): number {
    const record = this.records.get(key);
    if (!record) return 0;
    const now = this.clock.now();
    record.seenStoppedAt ??= now;
    if (record.seenStoppedAt - record.lastStart >= this.options.healthyAfterMs) return 0;
    const delay = Math.min(this.options.maxMs, this.options.baseMs * 2 ** Math.min(record.quickDeaths, 20));
    return Math.max(0, delay - (now - record.seenStoppedAt));
  }

  recordStart(key: string): void {
    const now = this.clock.now();
    const record = this.records.get(key);
    const ranMs = record === undefined ? undefined : (record.seenStoppedAt ?? now) - record.lastStart;
    const quick = record !== undefined && ranMs !== undefined && ranMs < this.options.healthyAfterMs;
    this.records.set(key, { lastStart: now, quickDeaths: quick ? record.quickDeaths + 1 : 0 });
  }

  forget(key: string): void {
    this.records.delete(key);
  }
}
