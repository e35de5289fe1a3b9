import { readFile, stat } from "node:fs/promises";
import { PruneLatchFile, pruneLatchPath } from "../contracts/prune-latch.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import { type Clock, systemClock } from "../util/clock.js";

export interface PruneGuardOptions {
  /** Largest share of the managed containers that may be pruned within the window. */
  share: number;
  /** Prunes up to this many are always allowed (small installations). */
  minimum: number;
  windowMs: number;
  /** `--allow-mass-prune`: every prune goes ahead, and a tripped latch is released at start. */
  allow: boolean;
}

/** The threshold for a window that opened with `managedTotal` containers. */
export function pruneLimit(
  options: Pick<PruneGuardOptions, "share" | "minimum">,
  managedTotal: number,
): number {
  return Math.max(options.minimum, Math.floor(options.share * managedTotal));
}

export interface SettleResult {
  /** Users whose proposed prunes were approved just now (run them again to carry them out). */
  approvedUsers: string[];
  /** The latch tripped in this settle. */
  tripped: boolean;
  /** The latch was released in this settle (the desired state is back within the limit). */
  released: boolean;
}

export interface PruneGuardState {
  tripped: boolean;
  reason?: string;
  trippedAt?: string;
  /** Containers proposed for pruning and not yet approved. */
  pending: number;
}

/**
 * Mass-prune safety as a latch. A reconcile never removes an undesired container at once: it proposes it. At a
 * quiet point (the work queue idle, so every user with a change has proposed what it would remove) the guard
 * looks at all proposals together: when they and the prunes approved within the window exceed
 * max(minimum, share x the managed total measured when the window opened, before any of them), the latch trips;
 * otherwise they are approved and their users run again to carry them out. A tripped latch approves nothing until
 * a settle finds the proposals back within the limit (the tree was fixed) or an operator releases it; it
 * survives restarts in `<state-dir>/prune-guard.json`. Counts are of distinct containers, so a user reconciled
 * many times is counted once.
 */
export class PruneGuard {
  private readonly proposals = new Map<string, Set<string>>();
  private readonly approved = new Set<string>();
  /** Container id -> when its prune was approved, for the sliding window. */
  private readonly window = new Map<string, number>();
  private baseline = 0;
  private latch: PruneLatchFile = { tripped: false };
  private latchMtimeMs: number | undefined;

  constructor(
    private readonly options: PruneGuardOptions,
    private readonly stateDir: string | undefined,
    private readonly clock: Clock = systemClock,
    private readonly onChange: (event: {
      kind: "tripped" | "released";
      reason: string;
      by: string;
    }) => void = () => undefined,
  ) {}

  get state(): PruneGuardState {
    let pending = 0;
    for (const ids of this.proposals.values()) for (const id of ids) if (!this.approved.has(id)) pending++;
    return {
      tripped: this.latch.tripped,
      ...(this.latch.reason !== undefined ? { reason: this.latch.reason } : {}),
      ...(this.latch.tripped_at !== undefined ? { trippedAt: this.latch.tripped_at } : {}),
      pending,
    };
  }

  /** Loads the latch from the state dir (a tripped latch stays tripped across restarts). */
  async load(): Promise<void> {
    await this.refresh();
    if (this.options.allow && this.latch.tripped) await this.release("flag:--allow-mass-prune");
  }

  /** The containers `userId`'s plan would prune now (replaces what it proposed before). */
  propose(userId: string, containerIds: readonly string[]): void {
    if (containerIds.length === 0) this.proposals.delete(userId);
    else this.proposals.set(userId, new Set(containerIds));
  }

  /** True when every one of these prunes was approved (an empty list always is). */
  isApproved(containerIds: readonly string[]): boolean {
    if (this.options.allow) return true;
    return containerIds.every((id) => this.approved.has(id));
  }

  /** These approved prunes were carried out (they still count in the window). */
  done(containerIds: readonly string[]): void {
    for (const id of containerIds) this.approved.delete(id);
  }

  forgetUser(userId: string): void {
    this.proposals.delete(userId);
  }

  /** At a quiet point: approve the proposals, or trip (or keep) the latch. */
  async settle(managedTotal: number): Promise<SettleResult> {
    const result: SettleResult = { approvedUsers: [], tripped: false, released: false };
    await this.refresh();
    const now = this.clock.now();
    for (const [id, at] of this.window) if (at <= now - this.options.windowMs) this.window.delete(id);
    const pending = new Map<string, string[]>();
    let pendingCount = 0;
    for (const [userId, ids] of this.proposals) {
      const waiting = [...ids].filter((id) => !this.approved.has(id));
      if (waiting.length === 0) continue;
      pending.set(userId, waiting);
      pendingCount += waiting.length;
    }
    if (this.window.size === 0) this.baseline = managedTotal;
    const limit = pruneLimit(this.options, this.baseline);
    if (this.latch.tripped && !this.options.allow) {
      if (pendingCount + this.window.size > limit) return result;
      // The proposals are back within the limit: the tree was fixed. A fresh window starts from here.
      await this.writeLatch({
        ...this.latch,
        tripped: false,
        released_at: new Date(now).toISOString(),
        released_by: "settle",
      });
      this.onChange({
        kind: "released",
        reason: "the planned removals are back within the limit",
        by: "settle",
      });
      result.released = true;
      this.window.clear();
      this.baseline = managedTotal;
    }
    if (pendingCount === 0) return result;
    if (!this.options.allow && this.window.size + pendingCount > limit) {
      const reason = `would prune ${this.window.size + pendingCount} of ${this.baseline} managed containers within ${Math.round(this.options.windowMs / 1000)} s (limit ${limit}); nothing is removed until the desired state is back within the limit or an operator releases the guard (mcp-portal prune-guard release, the admin API, or --allow-mass-prune)`;
      await this.writeLatch({ tripped: true, tripped_at: new Date(now).toISOString(), reason });
      this.onChange({ kind: "tripped", reason, by: "settle" });
      result.tripped = true;
      return result;
    }
    for (const [userId, ids] of pending) {
      for (const id of ids) {
        this.approved.add(id);
        this.window.set(id, now);
      }
      result.approvedUsers.push(userId);
    }
    return result;
  }

  /** An operator says the pending prunes are intended: release the latch and approve them. */
  async release(by: string): Promise<{ approvedUsers: string[] }> {
    const now = this.clock.now();
    await this.writeLatch({
      ...this.latch,
      tripped: false,
      released_at: new Date(now).toISOString(),
      released_by: by,
    });
    this.onChange({ kind: "released", reason: "released by an operator", by });
    return { approvedUsers: this.approveAll(now) };
  }

  private approveAll(now: number): string[] {
    const users: string[] = [];
    for (const [userId, ids] of this.proposals) {
      for (const id of ids) {
        this.approved.add(id);
        this.window.set(id, now);
      }
      users.push(userId);
    }
    return users;
  }

  /** Picks up a release written by the CLI while the controller runs (and a latch tripped before a restart). */
  private async refresh(): Promise<void> {
    if (this.stateDir === undefined) return;
    const file = pruneLatchPath(this.stateDir);
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(file)).mtimeMs;
    } catch {
      return; // never written: not tripped
    }
    if (mtimeMs === this.latchMtimeMs) return;
    let next: PruneLatchFile;
    try {
      const parsed = PruneLatchFile.safeParse(JSON.parse(await readFile(file, "utf8")));
      // A latch file we cannot read must not unlock anything.
      next = parsed.success
        ? parsed.data
        : { tripped: true, reason: `${file} is invalid; treated as tripped` };
    } catch (error) {
      next = { tripped: true, reason: `${file} cannot be read (${String(error)}); treated as tripped` };
    }
    const releasedOutside = this.latch.tripped && !next.tripped;
    this.latch = next;
    this.latchMtimeMs = mtimeMs;
    if (releasedOutside) {
      this.onChange({
        kind: "released",
        reason: "released through the latch file",
        by: next.released_by ?? "file",
      });
      this.approveAll(this.clock.now());
    }
  }

  private async writeLatch(next: PruneLatchFile): Promise<void> {
    this.latch = next;
    if (this.stateDir === undefined) return;
    const file = pruneLatchPath(this.stateDir);
    await writeJsonAtomic(file, next);
    this.latchMtimeMs = (await stat(file)).mtimeMs;
  }
}

/** Writes a release into the latch file (the CLI; the running controller picks it up at its next settle). */
export async function releaseLatchFile(
  stateDir: string,
  by: string,
  now: Date = new Date(),
): Promise<PruneLatchFile> {
  const file = pruneLatchPath(stateDir);
  let current: PruneLatchFile = { tripped: false };
  try {
    const parsed = PruneLatchFile.safeParse(JSON.parse(await readFile(file, "utf8")));
    if (parsed.success) current = parsed.data;
  } catch {
    // Missing or unreadable: a release writes a valid file either way.
  }
  const next = { ...current, tripped: false, released_at: now.toISOString(), released_by: by };
  await writeJsonAtomic(file, next);
  return next;
}
