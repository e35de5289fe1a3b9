import PQueue from "p-queue";
import { type BackoffPolicy, DEFAULT_BACKOFF, backoffDelay } from "../util/backoff.js";
import { type Clock, systemClock } from "../util/clock.js";

export interface ProcessResult {
  /** Look at the key again after this long even if nothing happens (e.g. an image pull backoff). */
  requeueAfterMs?: number;
}

export interface WorkQueueHooks {
  onAdd?(key: string): void;
  onDepthChange?(depth: number): void;
  onRetry?(key: string, delayMs: number, error: unknown): void;
  onStart?(key: string, waitedMs: number): void;
  /** Nothing queued, processing or dirty any more (after work; delayed retries do not count). */
  onIdle?(): void;
}

export interface WorkQueueOptions {
  concurrency: number;
  process: (key: string, signal: AbortSignal) => Promise<ProcessResult | void>;
  backoff?: BackoffPolicy;
  clock?: Clock;
  hooks?: WorkQueueHooks;
}

/**
 * A keyed work queue with the rules of controller-runtime's: a key waits in the queue at most once, is
 * processed by at most one worker at a time (an add meanwhile marks it dirty and it runs once more afterwards),
 * and failures back off per key exponentially until a success resets them.
 */
export class WorkQueue {
  private readonly queue: PQueue;
  private readonly queued = new Map<string, number>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; handle: unknown }>();
  private readonly clock: Clock;
  private readonly abort = new AbortController();
  private shuttingDown = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: WorkQueueOptions) {
    this.queue = new PQueue({ concurrency: options.concurrency });
    this.clock = options.clock ?? systemClock;
  }

  get depth(): number {
    return this.queued.size;
  }

  get active(): number {
    return this.processing.size;
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    this.options.hooks?.onAdd?.(key);
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.set(key, this.clock.now());
    this.options.hooks?.onDepthChange?.(this.queued.size);
    void this.queue.add(() => this.run(key));
  }

  /** Adds the key after `ms`; an earlier pending deadline for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) this.clock.clearTimeout(existing.handle);
    const handle = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, handle });
  }

  /** Resolves once nothing is queued, processing or dirty (delayed retries do not count). */
  async idle(): Promise<void> {
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking work, drops what waits, aborts in-flight work's signal and waits for it to finish. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const { handle } of this.delayed.values()) this.clock.clearTimeout(handle);
    this.delayed.clear();
    this.queue.clear();
    this.queued.clear();
    this.dirty.clear();
    this.abort.abort();
    await this.queue.onIdle();
    this.notifyIdle();
  }

  private isIdle(): boolean {
    return this.queued.size === 0 && this.processing.size === 0 && this.dirty.size === 0;
  }

  private notifyIdle(): void {
    if (!this.isIdle() && !this.shuttingDown) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
    if (!this.shuttingDown) this.options.hooks?.onIdle?.();
  }

  private async run(key: string): Promise<void> {
    const enqueuedAt = this.queued.get(key);
    if (enqueuedAt === undefined) return;
    this.queued.delete(key);
    this.options.hooks?.onDepthChange?.(this.queued.size);
    if (this.shuttingDown) return;
    this.processing.add(key);
    this.options.hooks?.onStart?.(key, this.clock.now() - enqueuedAt);
    try {
      const result = await this.options.process(key, this.abort.signal);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (error) {
      if (!this.shuttingDown) {
        const failures = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, failures);
        const delay = backoffDelay(failures, this.options.backoff ?? DEFAULT_BACKOFF);
        this.options.hooks?.onRetry?.(key, delay, error);
        this.addAfter(key, delay);
      }
    } finally {
      this.processing.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      this.notifyIdle();
    }
  }
}
