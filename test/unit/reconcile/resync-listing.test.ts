import { describe, expect, it } from "vitest";
import {
  type ResyncListingFacts,
  MAX_STALE_USERS_FOR_KEPT_LISTING,
  chooseResyncListing,
} from "../../../src/reconcile/resync-listing.js";

const settled: ResyncListingFacts = {
  now: 1_000_000,
  lastFullListingAt: 1_000_000 - 60_000,
  relistMs: 600_000,
  completeEvents: true,
  requested: false,
  invalidated: false,
  staleUsers: 0,
  maxStaleUsers: MAX_STALE_USERS_FOR_KEPT_LISTING,
};

describe("chooseResyncListing", () => {
  it("answers from the kept listing when nothing says it may be off", () => {
    expect(chooseResyncListing(settled)).toEqual({ kind: "kept" });
    // A few stale users are listed by their own reconciles.
    expect(chooseResyncListing({ ...settled, staleUsers: MAX_STALE_USERS_FOR_KEPT_LISTING })).toEqual({
      kind: "kept",
    });
  });

  it.each<[string, Partial<ResyncListingFacts>]>([
    ["first", { lastFullListingAt: undefined }],
    ["requested", { requested: true }],
    ["always", { relistMs: 0 }],
    ["backend", { completeEvents: false }],
    ["interval", { lastFullListingAt: 1_000_000 - 600_000 }],
    ["invalidated", { invalidated: true }],
    ["stale-users", { staleUsers: MAX_STALE_USERS_FOR_KEPT_LISTING + 1 }],
  ])("lists everything: %s", (cause, facts) => {
    expect(chooseResyncListing({ ...settled, ...facts })).toEqual({ kind: "full", cause });
  });

  it("names the first cause that applies (nothing listed yet before all else)", () => {
    expect(
      chooseResyncListing({ ...settled, lastFullListingAt: undefined, requested: true, invalidated: true }),
    ).toEqual({ kind: "full", cause: "first" });
    expect(chooseResyncListing({ ...settled, completeEvents: false, invalidated: true })).toEqual({
      kind: "full",
      cause: "backend",
    });
  });
});
