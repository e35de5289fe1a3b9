import { describe, expect, it } from "vitest";
import { Debouncer } from "../../../src/reconcile/debouncer.js";
import { FakeClock } from "../../helpers/fake-clock.js";

function harness(quietMs: number, maxWaitMs: number) {
  const clock = new FakeClock();
  const flushes: { at: number; keys: string[] }[] = [];
  const debouncer = new Debouncer(
    (keys) => flushes.push({ at: clock.now(), keys }),
    quietMs,
    maxWaitMs,
    clock,
  );
  return { clock, flushes, debouncer, start: clock.now() };
}

describe("Debouncer", () => {
  it("turns a burst of 500 users with repeats into one flush of unique keys, first-seen order", () => {
    const h = harness(100, 5000);
    const users = Array.from({ length: 500 }, (_, i) => `user-${i}`);
    for (let round = 0; round < 3; round++) {
      for (const user of users) h.debouncer.add(user);
      h.clock.advance(10);
    }
    expect(h.flushes).toEqual([]);
    h.clock.advance(89);
    expect(h.flushes).toEqual([]);
    h.clock.advance(1);
    expect(h.flushes).toHaveLength(1);
    expect(h.flushes[0]!.keys).toEqual(users);
    expect(h.flushes[0]!.at - h.start).toBe(120);
    h.clock.advance(10_000);
    expect(h.flushes).toHaveLength(1);
    expect(h.clock.pendingDelays()).toEqual([]);
  });

  it("restarts the quiet period on every add", () => {
    const h = harness(100, 5000);
    h.debouncer.add("a");
    h.clock.advance(80);
    h.debouncer.add("b");
    h.clock.advance(80);
    expect(h.flushes).toEqual([]);
    h.clock.advance(20);
    expect(h.flushes).toEqual([{ at: h.start + 180, keys: ["a", "b"] }]);
  });

  it("flushes after maxWait even if the source never goes quiet", () => {
    const h = harness(100, 300);
    for (let i = 0; i < 20; i++) {
      h.debouncer.add(`k${i % 4}`);
      h.clock.advance(50);
    }
    // adds every 50 ms never leave 100 ms of quiet; each window ends 300 ms after its first add
    expect(h.flushes).toEqual([
      { at: h.start + 300, keys: ["k0", "k1", "k2", "k3"] },
      { at: h.start + 600, keys: ["k2", "k3", "k0", "k1"] },
      { at: h.start + 900, keys: ["k0", "k1", "k2", "k3"] },
    ]);
    // the adds at 900 and 950 are flushed once the source goes quiet
    h.clock.advance(50);
    expect(h.flushes.at(-1)).toEqual({ at: h.start + 1050, keys: ["k2", "k3"] });
  });

  it("starts a new maxWait window after a flush", () => {
    const h = harness(100, 300);
    h.debouncer.add("a");
    h.clock.advance(100);
    expect(h.flushes).toHaveLength(1);
    h.clock.advance(150);
    h.debouncer.add("b");
    // the old window would have ended at 300; the new one ends 300 ms after b
    for (let i = 0; i < 5; i++) {
      h.clock.advance(50);
      h.debouncer.add("b");
    }
    expect(h.flushes).toHaveLength(1);
    h.clock.advance(50);
    expect(h.flushes).toEqual([
      { at: h.start + 100, keys: ["a"] },
      { at: h.start + 550, keys: ["b"] },
    ]);
  });

  it("flushes every add at once when quietMs is 0", () => {
    const h = harness(0, 1000);
    h.debouncer.add("a");
    h.debouncer.add("a");
    expect(h.flushes.map((f) => f.keys)).toEqual([["a"], ["a"]]);
    expect(h.clock.pendingDelays()).toEqual([]);
  });

  it("cancel drops pending keys and timers", () => {
    const h = harness(100, 300);
    h.debouncer.add("a");
    h.debouncer.cancel();
    expect(h.clock.pendingDelays()).toEqual([]);
    h.clock.advance(1000);
    expect(h.flushes).toEqual([]);
    h.debouncer.add("b");
    h.clock.advance(100);
    expect(h.flushes.map((f) => f.keys)).toEqual([["b"]]);
  });
});
