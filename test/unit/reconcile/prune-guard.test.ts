import { describe, expect, it } from "vitest";
import { PruneGuard, type PruneGuardOptions } from "../../../src/reconcile/prune-guard.js";
import { FakeClock } from "./fake-clock.js";

const WINDOW = 60_000;

function guard(options: Partial<PruneGuardOptions> = {}) {
  const clock = new FakeClock();
  const g = new PruneGuard({ share: 0.5, minimum: 3, windowMs: WINDOW, allow: false, ...options }, clock);
  return { clock, g };
}

describe("PruneGuard", () => {
  it("always allows zero prunes", () => {
    const { g } = guard({ minimum: 0 });
    expect(g.admit(0, 0)).toEqual({ allowed: true });
  });

  it("allows up to the configured share of managed containers and refuses beyond it", () => {
    const { g } = guard();
    const refused = g.admit(51, 100);
    expect(refused.allowed).toBe(false);
    expect(refused.reason).toContain("would prune 51 of 100 managed containers within 60 s (limit 50)");
    expect(refused.reason).toContain("--allow-mass-prune");
    expect(g.admit(50, 100)).toEqual({ allowed: true });
  });

  it("always allows up to the minimum on small installations", () => {
    const { g } = guard({ minimum: 3 });
    expect(g.admit(3, 3).allowed).toBe(true);
    const { g: g2 } = guard({ minimum: 3 });
    expect(g2.admit(4, 4).allowed).toBe(false);
    const { g: g3 } = guard({ minimum: 3 });
    expect(g3.admit(2, 2).allowed).toBe(true);
    expect(g3.admit(1, 0).allowed).toBe(true);
    expect(g3.admit(1, 0).allowed).toBe(false);
  });

  it("counts prunes over the sliding window, not per pass", () => {
    const { clock, g } = guard({ minimum: 1 });
    // 100 managed; one user directory after another disappears during a half-finished checkout
    expect(g.admit(30, 100).allowed).toBe(true);
    clock.advance(1000);
    const refused = g.admit(25, 70);
    expect(refused.allowed).toBe(false);
    expect(refused.reason).toContain("would prune 55 of 70");
    expect(refused.reason).toContain("(limit 50)");
    // a refused admit is not recorded
    expect(g.admit(20, 70).allowed).toBe(true);
    clock.advance(1000);
    expect(g.admit(1, 50).allowed).toBe(false);
  });

  it("forgets prunes older than the window", () => {
    const { clock, g } = guard({ minimum: 1 });
    expect(g.admit(50, 100).allowed).toBe(true);
    clock.advance(WINDOW);
    // exactly windowMs old still counts
    expect(g.admit(1, 50).allowed).toBe(false);
    clock.advance(1);
    expect(g.admit(25, 50).allowed).toBe(true);
    expect(g.admit(1, 25).allowed).toBe(false);
  });

  it("allows everything with allow (--allow-mass-prune)", () => {
    const { g } = guard({ allow: true });
    expect(g.admit(100, 100)).toEqual({ allowed: true });
    expect(g.admit(100, 0)).toEqual({ allowed: true });
  });

  it("uses the share setting", () => {
    const { g } = guard({ share: 0.1, minimum: 0 });
    expect(g.admit(11, 100).allowed).toBe(false);
    expect(g.admit(10, 100).allowed).toBe(true);
  });
});
