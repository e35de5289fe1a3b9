import { describe, expect, it } from "vitest";
import type { BackoffPolicy } from "../../../src/util/backoff.js";
import { type ProcessResult, WorkQueue, type WorkQueueHooks } from "../../../src/reconcile/work-queue.js";
import { type Deferred, FakeClock, deferred, settle } from "../../helpers/fake-clock.js";

interface Call {
  key: string;
  done: Deferred<ProcessResult | void>;
  signal: AbortSignal;
}

/** A queue whose process() calls wait until the test settles them; tracks overlap per key. */
function harness(options: { concurrency?: number; backoff?: BackoffPolicy; hooks?: WorkQueueHooks } = {}) {
  const clock = new FakeClock();
  const calls: Call[] = [];
  const running = new Map<string, number>();
  let maxPerKey = 0;
  let maxActive = 0;
  const queue = new WorkQueue({
    concurrency: options.concurrency ?? 1,
    clock,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    ...(options.hooks ? { hooks: options.hooks } : {}),
    process: async (key, signal) => {
      const done = deferred<ProcessResult | void>();
      calls.push({ key, done, signal });
      running.set(key, (running.get(key) ?? 0) + 1);
      maxPerKey = Math.max(maxPerKey, running.get(key)!);
      maxActive = Math.max(
        maxActive,
        [...running.values()].reduce((a, b) => a + b, 0),
      );
      try {
        return await done.promise;
      } finally {
        running.set(key, running.get(key)! - 1);
      }
    },
  });
  return {
    clock,
    queue,
    calls,
    keys: () => calls.map((c) => c.key),
    stats: () => ({ maxPerKey, maxActive }),
    /** Settles the call at `index` (success by default) and lets the queue move on. */
    async finish(index: number, outcome: { result?: ProcessResult; error?: Error } = {}) {
      const call = calls[index];
      if (!call) throw new Error(`no call #${index} (have ${calls.length})`);
      if (outcome.error) call.done.reject(outcome.error);
      else call.done.resolve(outcome.result);
      await settle();
    },
  };
}

const FAST: BackoffPolicy = { baseMs: 200, maxMs: 1000 };

describe("WorkQueue", () => {
  it("processes an added key", async () => {
    const h = harness();
    h.queue.add("a");
    await settle();
    expect(h.keys()).toEqual(["a"]);
    expect(h.queue.active).toBe(1);
    await h.finish(0);
    expect(h.queue.active).toBe(0);
    expect(h.queue.depth).toBe(0);
  });

  it("holds a key in the queue only once however often it is added", async () => {
    const h = harness();
    h.queue.add("busy");
    await settle();
    h.queue.add("a");
    h.queue.add("b");
    h.queue.add("a");
    h.queue.add("a");
    expect(h.queue.depth).toBe(2);
    await h.finish(0);
    await h.finish(1);
    await h.finish(2);
    expect(h.keys()).toEqual(["busy", "a", "b"]);
    expect(h.calls).toHaveLength(3);
  });

  it("never runs one key twice at once; an add meanwhile runs it once more afterwards", async () => {
    const h = harness({ concurrency: 4 });
    h.queue.add("a");
    await settle();
    h.queue.add("a");
    h.queue.add("a");
    h.queue.add("a");
    await settle();
    expect(h.keys()).toEqual(["a"]);
    expect(h.queue.depth).toBe(0);
    await h.finish(0);
    expect(h.keys()).toEqual(["a", "a"]);
    await h.finish(1);
    expect(h.keys()).toEqual(["a", "a"]);
    expect(h.stats().maxPerKey).toBe(1);
  });

  it("runs different keys concurrently up to the limit", async () => {
    const h = harness({ concurrency: 2 });
    for (const key of ["a", "b", "c", "d"]) h.queue.add(key);
    await settle();
    expect(h.keys()).toEqual(["a", "b"]);
    expect(h.queue.active).toBe(2);
    expect(h.queue.depth).toBe(2);
    await h.finish(1);
    expect(h.keys()).toEqual(["a", "b", "c"]);
    await h.finish(0);
    await h.finish(2);
    await h.finish(3);
    expect(h.keys()).toEqual(["a", "b", "c", "d"]);
    expect(h.stats().maxActive).toBe(2);
  });

  it("retries a failed key with exponential backoff on the injected clock, capped", async () => {
    const retries: [string, number][] = [];
    const h = harness({ backoff: FAST, hooks: { onRetry: (key, delay) => retries.push([key, delay]) } });
    h.queue.add("a");
    await settle();
    await h.finish(0, { error: new Error("boom") });
    expect(h.queue.failureCount("a")).toBe(1);
    expect(retries).toEqual([["a", 200]]);
    expect(h.clock.pendingDelays()).toEqual([200]);
    h.clock.advance(199);
    await settle();
    expect(h.calls).toHaveLength(1);
    h.clock.advance(1);
    await settle();
    expect(h.calls).toHaveLength(2);

    await h.finish(1, { error: new Error("boom") });
    expect(retries.at(-1)).toEqual(["a", 400]);
    h.clock.advance(400);
    await settle();
    await h.finish(2, { error: new Error("boom") });
    expect(retries.at(-1)).toEqual(["a", 800]);
    h.clock.advance(800);
    await settle();
    await h.finish(3, { error: new Error("boom") });
    expect(retries.at(-1)).toEqual(["a", 1000]);
    expect(h.queue.failureCount("a")).toBe(4);
  });

  it("resets the backoff on success", async () => {
    const retries: number[] = [];
    const h = harness({ backoff: FAST, hooks: { onRetry: (_key, delay) => retries.push(delay) } });
    h.queue.add("a");
    await settle();
    await h.finish(0, { error: new Error("1") });
    h.clock.advance(200);
    await settle();
    await h.finish(1, { error: new Error("2") });
    h.clock.advance(400);
    await settle();
    await h.finish(2);
    expect(h.queue.failureCount("a")).toBe(0);
    expect(h.clock.pendingDelays()).toEqual([]);
    h.queue.add("a");
    await settle();
    await h.finish(3, { error: new Error("3") });
    expect(retries).toEqual([200, 400, 200]);
  });

  it("keeps backoff per key", async () => {
    const h = harness({ backoff: FAST, concurrency: 2 });
    h.queue.add("bad");
    h.queue.add("good");
    await settle();
    await h.finish(0, { error: new Error("x") });
    await h.finish(1);
    expect(h.queue.failureCount("bad")).toBe(1);
    expect(h.queue.failureCount("good")).toBe(0);
  });

  it("uses the default backoff (200 ms first) when none is given", async () => {
    const h = harness();
    h.queue.add("a");
    await settle();
    await h.finish(0, { error: new Error("x") });
    expect(h.clock.pendingDelays()).toEqual([200]);
  });

  it("looks at a key again after requeueAfterMs", async () => {
    const h = harness();
    h.queue.add("a");
    await settle();
    await h.finish(0, { result: { requeueAfterMs: 5000 } });
    expect(h.clock.pendingDelays()).toEqual([5000]);
    h.clock.advance(4999);
    await settle();
    expect(h.calls).toHaveLength(1);
    h.clock.advance(1);
    await settle();
    expect(h.keys()).toEqual(["a", "a"]);
    expect(h.queue.failureCount("a")).toBe(0);
  });

  it("addAfter keeps the earlier deadline for a key and adds at once for ms <= 0", async () => {
    const h = harness();
    h.queue.addAfter("a", 1000);
    h.queue.addAfter("a", 5000);
    expect(h.clock.pendingDelays()).toEqual([1000]);
    h.queue.addAfter("a", 300);
    expect(h.clock.pendingDelays()).toEqual([300]);
    h.clock.advance(300);
    await settle();
    expect(h.keys()).toEqual(["a"]);
    h.clock.advance(10_000);
    await settle();
    expect(h.keys()).toEqual(["a"]);
    h.queue.addAfter("b", 0);
    await h.finish(0);
    expect(h.keys()).toEqual(["a", "b"]);
  });

  it("reports adds, depth and queue wait through hooks", async () => {
    const adds: string[] = [];
    const depths: number[] = [];
    const starts: [string, number][] = [];
    const h = harness({
      hooks: {
        onAdd: (key) => adds.push(key),
        onDepthChange: (depth) => depths.push(depth),
        onStart: (key, waited) => starts.push([key, waited]),
      },
    });
    h.queue.add("a");
    h.queue.add("b");
    h.queue.add("b");
    await settle();
    h.clock.advance(250);
    await h.finish(0);
    expect(adds).toEqual(["a", "b", "b"]);
    // a is taken at once (0 again), b waits (1) until a is done
    expect(depths).toEqual([1, 0, 1, 0]);
    expect(starts).toEqual([
      ["a", 0],
      ["b", 250],
    ]);
  });

  it("idle() resolves at once when idle and otherwise once queued, running and dirty work is done", async () => {
    const h = harness({ backoff: FAST });
    await h.queue.idle();
    h.queue.add("a");
    await settle();
    h.queue.add("a"); // dirty
    let idle = false;
    void h.queue.idle().then(() => {
      idle = true;
    });
    await h.finish(0);
    expect(idle).toBe(false);
    expect(h.calls).toHaveLength(2);
    // a failure leaves only a delayed retry, which does not count
    await h.finish(1, { error: new Error("x") });
    expect(idle).toBe(true);
    expect(h.clock.pendingDelays()).toEqual([200]);
  });

  it("shutdown drops queued work, aborts and waits for in-flight work, and takes no more", async () => {
    const h = harness({ backoff: FAST });
    h.queue.add("a");
    await settle();
    h.queue.add("b");
    h.queue.add("c");
    h.queue.add("a"); // dirty
    h.queue.addAfter("d", 100);
    let stopped = false;
    const stopping = h.queue.shutdown().then(() => {
      stopped = true;
    });
    await settle();
    expect(h.calls[0]!.signal.aborted).toBe(true);
    expect(stopped).toBe(false);
    expect(h.queue.depth).toBe(0);
    // the in-flight failure is not retried while shutting down
    await h.finish(0, { error: new Error("aborted") });
    await stopping;
    expect(stopped).toBe(true);
    h.queue.add("e");
    h.queue.addAfter("f", 10);
    h.clock.advance(1000);
    await settle();
    expect(h.keys()).toEqual(["a"]);
    expect(h.clock.pendingDelays()).toEqual([]);
    await h.queue.idle();
  });
});
