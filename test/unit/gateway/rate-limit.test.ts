import { describe, expect, it } from "vitest";
import { RateLimiter } from "../../../src/gateway/rate-limit.js";

describe("rate limits (token buckets)", () => {
  const perMinute = (requests: number) => ({ requests, window_seconds: 60 });

  it("admit a burst up to the limit, then refuse with the seconds until the next token", () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    const checks = [{ key: "server:alice/echo", scope: "server" as const, limit: perMinute(3) }];
    expect([1, 2, 3].map(() => limiter.take(checks).ok)).toEqual([true, true, true]);
    expect(limiter.take(checks)).toEqual({ ok: false, scope: "server", retryAfterSeconds: 20 });
    now += 19_000;
    expect(limiter.take(checks).ok).toBe(false);
    now += 1_000;
    expect(limiter.take(checks).ok).toBe(true);
    expect(limiter.take(checks).ok).toBe(false);
  });

  it("take from every bucket that applies, or from none: a refused request costs nothing", () => {
    const now = 0;
    const limiter = new RateLimiter(() => now);
    const user = { key: "user:alice", scope: "user" as const, limit: perMinute(2) };
    const echo = { key: "server:alice/echo", scope: "server" as const, limit: perMinute(10) };
    const add = { key: "server:alice/add", scope: "server" as const, limit: perMinute(1) };
    expect(limiter.take([user, add]).ok).toBe(true);
    // add's bucket is empty: refused, and the user's bucket keeps its token.
    expect(limiter.take([user, add])).toMatchObject({ ok: false, scope: "server" });
    expect(limiter.take([user, echo]).ok).toBe(true);
    expect(limiter.take([user, echo])).toMatchObject({ ok: false, scope: "user" });
    expect(limiter.take([])).toEqual({ ok: true });
  });

  it("a changed limit applies at once, without adding a burst", () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    const key = "server:alice/echo";
    for (let i = 0; i < 5; i++) limiter.take([{ key, scope: "server", limit: perMinute(5) }]);
    expect(limiter.take([{ key, scope: "server", limit: perMinute(100) }]).ok).toBe(false);
    now += 60_000;
    expect(limiter.take([{ key, scope: "server", limit: perMinute(1) }]).ok).toBe(true);
    expect(limiter.take([{ key, scope: "server", limit: perMinute(1) }]).ok).toBe(false);
    limiter.forget("server:alice/");
    expect(limiter.size).toBe(0);
  });
});
