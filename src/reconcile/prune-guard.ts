import { type Clock, systemClock } from "./clock.js";

export interface PruneGuardOptions {
  /** Largest share of all managed containers that may be pruned within the window. */
  share: number;
  /** Prunes up to this many are always allowed (small installations). */
  minimum: number;
  windowMs: number;
  allow: boolean;
}

/**
 * Mass-prune safety over a sliding window, not one pass: a half-finished `git checkout` that removes user
 * directories one event at a time must be caught as surely as one resync that would remove them all.
 */
export class PruneGuard {
  private readonly history: { at: number; count: number }[] = [];

  constructor(
    private readonly options: PruneGuardOptions,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Whether `count` more prunes may go ahead given `managedTotal` managed containers; records them if so. */
  admit(count: number, managedTotal: number): { allowed: boolean; reason?: string } {
    if (count === 0) return { allowed: true };
    const now = this.clock.now();
    while (this.history.length > 0 && this.history[0]!.at < now - this.options.windowMs) this.history.shift();
    const recent = this.history.reduce((sum, h) => sum + h.count, 0);
    const total = recent + count;
    const cap = Math.max(
      this.options.minimum,
      Math.floor(this.options.share * Math.max(managedTotal, recent + managedTotal)),
    );
    if (!this.options.allow && total > cap) {
      return {
        allowed: false,
        reason: `would prune ${total} of ${managedTotal} managed containers within ${Math.round(this.options.windowMs / 1000)} s (limit ${cap}); run with --allow-mass-prune if this is intended`,
      };
    }
    this.history.push({ at: now, count });
    return { allowed: true };
  }
}
