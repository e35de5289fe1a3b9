import { type Clock, systemClock } from "../util/clock.js";

/**
 * Collects keys until the source has been quiet for `quietMs` (or `maxWaitMs` passed), then hands them over
 * once each: a `git checkout` touching 500 users' files becomes one add per user.
 */
export class Debouncer {
  private readonly pending = new Set<string>();
  private quietTimer: unknown;
  /** Set from the first key of a batch until it is handed over: bounds the wait of a never-quiet source. */
  private maxTimer: unknown;

  constructor(
    private readonly flush: (keys: string[]) => void,
    private readonly quietMs: number,
    private readonly maxWaitMs: number,
    private readonly clock: Clock = systemClock,
  ) {}

  add(key: string): void {
    this.pending.add(key);
    if (this.quietMs <= 0) return this.fire();
    if (this.quietTimer !== undefined) this.clock.clearTimeout(this.quietTimer);
    this.quietTimer = this.clock.setTimeout(() => this.fire(), this.quietMs);
    if (this.maxTimer === undefined) {
      this.maxTimer = this.clock.setTimeout(() => this.fire(), this.maxWaitMs);
    }
  }

  cancel(): void {
    this.clearTimers();
    this.pending.clear();
  }

  private clearTimers(): void {
    if (this.quietTimer !== undefined) this.clock.clearTimeout(this.quietTimer);
    if (this.maxTimer !== undefined) this.clock.clearTimeout(this.maxTimer);
    this.quietTimer = undefined;
    this.maxTimer = undefined;
  }

  private fire(): void {
    this.clearTimers();
    const keys = [...this.pending];
    this.pending.clear();
    if (keys.length > 0) this.flush(keys);
  }
}
