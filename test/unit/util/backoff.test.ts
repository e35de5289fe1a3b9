import { describe, expect, it } from "vitest";
import { DEFAULT_BACKOFF, backoffDelay } from "../../../src/util/backoff.js";

describe("backoffDelay", () => {
  it("is 0 before any failure", () => {
    expect(backoffDelay(0)).toBe(0);
    expect(backoffDelay(-3)).toBe(0);
  });

  it("doubles from 200 ms and caps at 5 minutes by default", () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 200, maxMs: 300_000 });
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n))).toEqual([200, 400, 800, 1600, 3200]);
    expect(backoffDelay(11)).toBe(204_800);
    expect(backoffDelay(12)).toBe(300_000);
    expect(backoffDelay(1000)).toBe(300_000);
    expect(backoffDelay(Number.MAX_SAFE_INTEGER)).toBe(300_000);
  });

  it("uses the given policy", () => {
    const policy = { baseMs: 10, maxMs: 50 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, policy))).toEqual([10, 20, 40, 50, 50]);
  });

  it("never decreases as failures grow", () => {
    let previous = 0;
    for (let n = 0; n < 100; n++) {
      const delay = backoffDelay(n);
      expect(delay).toBeGreaterThanOrEqual(previous);
      expect(Number.isFinite(delay)).toBe(true);
      previous = delay;
    }
  });
});
