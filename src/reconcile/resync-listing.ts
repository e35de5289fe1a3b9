/**
 * Whether a periodic resync lists the engine again or answers from the listing kept up to date by events, as a
 * Kubernetes informer's resync replays its cache instead of listing the API server.
 *
 * The kept listing is the last full listing, with every user an event named since then (or that we changed)
 * listed again on its own before it is trusted (`Observer`). It is as good as a new listing while the event
 * streams were connected throughout and the backend reports every change by an event; a full listing is still
 * made every `relistMs`, in case the engine lost an event, as the file watcher is backed by a periodic re-read.
 */
export type ResyncListing =
  | { kind: "kept" }
  | {
      kind: "full";
      /** Why the kept listing is not enough (logged, and a metric label). */
      cause: FullListingCause;
    };

export const FULL_LISTING_CAUSES = [
  /** Nothing was listed yet (start). */
  "first",
  /** Asked for: a lost event stream came back, one of our networks was removed, the file watcher failed. */
  "requested",
  /** MCP_PORTAL_RELIST_SECONDS is 0: every resync lists. */
  "always",
  /** The backend's events do not report every change (Swarm). */
  "backend",
  /** The last full listing is `relistMs` old. */
  "interval",
  /** An event the kept listing cannot place (a network or volume changed), or a stream dropped, since then. */
  "invalidated",
  /** So many users are to be listed again that one full listing is cheaper than one listing each. */
  "stale-users",
] as const;
export type FullListingCause = (typeof FULL_LISTING_CAUSES)[number];

export interface ResyncListingFacts {
  now: number;
  /** When the last full listing started; undefined before the first. */
  lastFullListingAt: number | undefined;
  /** 0: every resync lists. */
  relistMs: number;
  completeEvents: boolean;
  requested: boolean;
  invalidated: boolean;
  /** Users whose kept slice an event marked as possibly stale. */
  staleUsers: number;
  /** Above this many stale users a resync lists everything (each stale user costs a listing of its own). */
  maxStaleUsers: number;
}

/** Above this many users to list again, one full listing (three calls) is made instead of three calls each. */
export const MAX_STALE_USERS_FOR_KEPT_LISTING = 8;

export function chooseResyncListing(facts: ResyncListingFacts): ResyncListing {
  const full = (cause: FullListingCause): ResyncListing => ({ kind: "full", cause });
  if (facts.lastFullListingAt === undefined) return full("first");
  if (facts.requested) return full("requested");
  if (facts.relistMs === 0) return full("always");
  if (!facts.completeEvents) return full("backend");
  if (facts.now - facts.lastFullListingAt >= facts.relistMs) return full("interval");
  if (facts.invalidated) return full("invalidated");
  if (facts.staleUsers > facts.maxStaleUsers) return full("stale-users");
  return { kind: "kept" };
}
