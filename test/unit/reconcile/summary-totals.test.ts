import { describe, expect, it } from "vitest";
import type { UserSummary } from "../../../src/reconcile/status-projection.js";
import { SummaryTotals } from "../../../src/reconcile/summary-totals.js";

function summary(overrides: Partial<UserSummary>): UserSummary {
  return { phase: "Ready", containers: {}, desired: 0, blocked: {}, invalidFiles: [], idle: 0, ...overrides };
}

/** What the gauges showed before the totals were kept per change: a sum over every user's summary. */
function sumOver(summaries: Iterable<UserSummary>) {
  const totals = new SummaryTotals();
  for (const s of summaries) totals.replace(undefined, s);
  return totals;
}

describe("SummaryTotals", () => {
  it("equals the sum over the users' current summaries after any sequence of replacements", () => {
    const current = new Map<string, UserSummary>();
    const totals = new SummaryTotals();
    const set = (user: string, next: UserSummary | undefined) => {
      totals.replace(current.get(user), next);
      if (next) current.set(user, next);
      else current.delete(user);
    };
    set("alice", summary({ containers: { running: 3 }, desired: 3 }));
    set(
      "bob",
      summary({ phase: "Stalled", containers: { exited: 1 }, blocked: { LimitExceeded: 2 }, desired: 3 }),
    );
    set(
      "carol",
      summary({ phase: "Suspended", invalidFiles: ["catalogs/base/a.json", "users/carol/x.json"] }),
    );
    set("dave", summary({ phase: "Degraded", invalidFiles: ["catalogs/base/a.json"] }));
    set(
      "alice",
      summary({ containers: { running: 2, restarting: 1 }, desired: 4, blocked: { MissingSecret: 1 } }),
    );
    set("bob", undefined);
    set("carol", summary({ phase: "Ready", containers: { running: 1 }, desired: 1 }));

    const expected = sumOver(current.values());
    expect(Object.fromEntries(totals.containers)).toEqual({ running: 3, restarting: 1 });
    expect(Object.fromEntries(totals.containers)).toEqual(Object.fromEntries(expected.containers));
    expect(Object.fromEntries(totals.blocked)).toEqual({ MissingSecret: 1 });
    expect(Object.fromEntries(totals.phases)).toEqual({ Ready: 2, NotReady: 1 });
    expect(totals.desired).toBe(5);
    expect(totals.containerCount).toBe(4);
    // carol's files were fixed; dave still reports the base catalog.
    expect(totals.invalidFileCount).toBe(1);
  });

  it("counts an invalid file once while any user reports it, and drops zero counts", () => {
    const totals = new SummaryTotals();
    const a = summary({ phase: "Stalled", invalidFiles: ["policy.json", "policy.json"] });
    const b = summary({ phase: "Stalled", invalidFiles: ["policy.json"] });
    totals.replace(undefined, a);
    totals.replace(undefined, b);
    expect(totals.invalidFileCount).toBe(1);
    totals.replace(a, undefined);
    expect(totals.invalidFileCount).toBe(1);
    totals.replace(b, undefined);
    expect(totals.invalidFileCount).toBe(0);
    expect(totals.phases.size).toBe(0);
    expect(totals.containers.size).toBe(0);
  });

  it("keeps the idle servers' total as users' summaries change (mcp_portal_idle_servers)", () => {
    const totals = new SummaryTotals();
    totals.replace(undefined, summary({ idle: 3 }));
    totals.replace(undefined, summary({ idle: 2 }));
    totals.replace(summary({ idle: 3 }), summary({ idle: 1 }));
    expect(totals.idle).toBe(3);
    totals.replace(summary({ idle: 2 }), undefined);
    expect(totals.idle).toBe(1);
  });
});
