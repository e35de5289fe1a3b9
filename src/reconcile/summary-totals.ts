import type { UserSummary } from "./status-projection.js";

/** The users-by-phase gauge's values: a user is Ready, Suspended, or anything else (NotReady). */
export type PhaseBucket = "Ready" | "NotReady" | "Suspended";

function phaseBucket(summary: UserSummary): PhaseBucket {
  return summary.phase === "Ready" ? "Ready" : summary.phase === "Suspended" ? "Suspended" : "NotReady";
}

function addCounts(into: Map<string, number>, counts: Record<string, number>, sign: 1 | -1): void {
  for (const key in counts) {
    const next = (into.get(key) ?? 0) + sign * (counts[key] ?? 0);
    if (next === 0) into.delete(key);
    else into.set(key, next);
  }
}

/**
 * The fleet-wide sums behind the gauges (containers by state, blocked servers by reason, desired servers, users by
 * phase, invalid files), kept up to date one user at a time: replacing a user's summary costs the size of that
 * summary, so reading the totals after every reconcile stays O(1) in the number of users. Summing over every
 * user instead made a burst of n reconciles cost O(n²) (at 20,000 users it was most of a cold start's CPU).
 */
export class SummaryTotals {
  readonly containers = new Map<string, number>();
  readonly blocked = new Map<string, number>();
  readonly phases = new Map<PhaseBucket, number>();
  /** How many users report each invalid file (a global file is reported by every user). */
  private readonly invalidFiles = new Map<string, number>();
  private desiredTotal = 0;
  private idleTotal = 0;
  private containerTotal = 0;

  /** A user's summary changed from `before` to `after` (undefined: the user was unknown, or is gone). */
  replace(before: UserSummary | undefined, after: UserSummary | undefined): void {
    if (before) this.apply(before, -1);
    if (after) this.apply(after, 1);
  }

  get desired(): number {
    return this.desiredTotal;
  }

  /** Servers stopped for idleness, over all users. */
  get idle(): number {
    return this.idleTotal;
  }

  /** Containers over all users' last summaries, whatever their state. */
  get containerCount(): number {
    return this.containerTotal;
  }

  get invalidFileCount(): number {
    return this.invalidFiles.size;
  }

  private apply(summary: UserSummary, sign: 1 | -1): void {
    addCounts(this.containers, summary.containers, sign);
    for (const key in summary.containers) this.containerTotal += sign * (summary.containers[key] ?? 0);
    addCounts(this.blocked, summary.blocked, sign);
    this.desiredTotal += sign * summary.desired;
    this.idleTotal += sign * summary.idle;
    const bucket = phaseBucket(summary);
    const users = (this.phases.get(bucket) ?? 0) + sign;
    if (users === 0) this.phases.delete(bucket);
    else this.phases.set(bucket, users);
    // A file listed twice in one summary counts once for that user, as the gauge counts distinct files.
    for (const file of new Set(summary.invalidFiles)) {
      const n = (this.invalidFiles.get(file) ?? 0) + sign;
      if (n === 0) this.invalidFiles.delete(file);
      else this.invalidFiles.set(file, n);
    }
  }
}
