import type { RateLimit } from "../schema/tools.js";

/*
 * Token buckets for the rate limits of policy.json (README, "Identity"): a bucket holds at most `requests` tokens
 * and refills at `requests` per `window_seconds`; a request takes one token from each bucket that applies (the
 * user's and the server's), or none at all when one of them is empty. The clock is injected.
 */

export type RateScope = "user" | "server";

export interface RateCheck {
  key: string;
  scope: RateScope;
  limit: RateLimit;
}

export type RateVerdict = { ok: true } | { ok: false; scope: RateScope; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
  limit: RateLimit;
}

/** Buckets at full capacity carry no information; they are dropped once this many buckets exist. */
const SWEEP_AT = 10_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number) {}

  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token from every bucket of `checks`, or none when one of them has less than one. */
  take(checks: readonly RateCheck[]): RateVerdict {
    if (checks.length === 0) return { ok: true };
    const now = this.now();
    const buckets = checks.map((check) => this.bucket(check, now));
    let refusal: { scope: RateScope; waitMs: number } | undefined;
    buckets.forEach((bucket, i) => {
      if (bucket.tokens >= 1) return;
      const waitMs = ((1 - bucket.tokens) * bucket.limit.window_seconds * 1000) / bucket.limit.requests;
      if (!refusal || waitMs > refusal.waitMs) refusal = { scope: checks[i]!.scope, waitMs };
    });
    if (refusal)
      return {
        ok: false,
        scope: refusal.scope,
        retryAfterSeconds: Math.max(1, Math.ceil(refusal.waitMs / 1000)),
      };
    for (const bucket of buckets) bucket.tokens -= 1;
    if (this.buckets.size > SWEEP_AT) this.sweep(now);
    return { ok: true };
  }

  /** Forgets the buckets whose key starts with `prefix` (a server no longer served). */
  forget(prefix: string): void {
    for (const key of this.buckets.keys()) if (key.startsWith(prefix)) this.buckets.delete(key);
  }

  private bucket(check: RateCheck, now: number): Bucket {
    const existing = this.buckets.get(check.key);
    if (!existing || !sameLimit(existing.limit, check.limit)) {
      // A new limit starts full, but never with more than the old bucket had left (a raised limit adds no burst).
      const tokens = existing
        ? Math.min(check.limit.requests, refilled(existing, now))
        : check.limit.requests;
      const bucket = { tokens, updatedAt: now, limit: check.limit };
      this.buckets.set(check.key, bucket);
      return bucket;
    }
    existing.tokens = refilled(existing, now);
    existing.updatedAt = now;
    return existing;
  }

  private sweep(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (refilled(bucket, now) >= bucket.limit.requests) this.buckets.delete(key);
    }
  }
}

function refilled(bucket: Bucket, now: number): number {
  const elapsed = Math.max(0, now - bucket.updatedAt);
  const rate = bucket.limit.requests / (bucket.limit.window_seconds * 1000);
  return Math.min(bucket.limit.requests, bucket.tokens + elapsed * rate);
}

function sameLimit(a: RateLimit, b: RateLimit): boolean {
  return a.requests === b.requests && a.window_seconds === b.window_seconds;
}
