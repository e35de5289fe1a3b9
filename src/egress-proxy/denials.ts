import {
  type EgressDenialKind,
  type EgressDenialLine,
  MAX_DENIAL_DESTINATION,
} from "../contracts/egress-policy.js";

/** Distinct (server, kind, destination) a window reports one by one; the rest are summed as `(other)`. */
export const MAX_DENIAL_KEYS_PER_WINDOW = 50;
/** How often the proxy writes what it refused. */
export const DENIAL_WINDOW_SECONDS = 10;

interface Pending {
  server: string;
  kind: EgressDenialKind;
  destination: string;
  reason: string;
  count: number;
}

/**
 * Counts refusals and hands them out once per window, one line per (server, kind, destination): a server that
 * retries in a loop makes one line with a large count, and at most MAX_DENIAL_KEYS_PER_WINDOW + 1 lines per
 * window whatever it tries.
 */
export class DenialAggregator {
  private pending = new Map<string, Pending>();

  constructor(private readonly user: string) {}

  record(server: string, kind: EgressDenialKind, destination: string, reason: string): void {
    const dest = destination.slice(0, MAX_DENIAL_DESTINATION);
    let key = `${server}\u0000${kind}\u0000${dest}`;
    let entry = this.pending.get(key);
    if (!entry && this.pending.size >= MAX_DENIAL_KEYS_PER_WINDOW) {
      key = `\u0000other\u0000${kind}`;
      entry = this.pending.get(key);
      if (!entry) {
        entry = { server: "(various)", kind, destination: "(other)", reason: "more destinations", count: 0 };
        this.pending.set(key, entry);
      }
    }
    if (!entry) {
      entry = { server, kind, destination: dest, reason: reason.slice(0, 200), count: 0 };
      this.pending.set(key, entry);
    }
    entry.count++;
  }

  /** The window's lines (and a fresh window). */
  flush(now: Date, windowSeconds: number): EgressDenialLine[] {
    const lines = [...this.pending.values()].map((p) => ({
      msg: "egress_denied" as const,
      user: this.user,
      server: p.server,
      kind: p.kind,
      destination: p.destination,
      reason: p.reason,
      count: p.count,
      window_seconds: windowSeconds,
      time: now.toISOString(),
    }));
    this.pending = new Map();
    return lines;
  }
}
