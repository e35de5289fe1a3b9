import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  DEFAULT_HEALTH_POLICY,
  type HealthPolicy,
  afterProbeFailure,
  afterProbeSuccess,
  markUnavailable,
  nextProbeDelay,
  parseHealthLabel,
  startingHealth,
} from "../../../src/gateway/health.js";
import { HealthFile, type HealthFileContent, healthFilePath } from "../../../src/gateway/health-file.js";

const POLICY: HealthPolicy = { intervalMs: 10_000, timeoutMs: 5_000, retries: 3, startPeriodMs: 0 };
const T0 = 1_000_000;

describe("health state machine", () => {
  it("is Starting until the first successful probe, then Ready", () => {
    let h = startingHealth("c1", T0);
    expect(h).toMatchObject({ state: "Starting", since: T0, consecutiveFailures: 0 });
    h = afterProbeFailure(h, POLICY, T0 + 1000, "connection refused");
    expect(h).toMatchObject({ state: "Starting", since: T0, consecutiveFailures: 1 });
    h = afterProbeSuccess(h, T0 + 2000);
    expect(h).toMatchObject({
      state: "Ready",
      since: T0 + 2000,
      consecutiveFailures: 0,
      lastProbeAt: T0 + 2000,
    });
  });

  it("becomes Unhealthy after `retries` consecutive failures, and Ready again on a success", () => {
    let h = afterProbeSuccess(startingHealth("c1", T0), T0);
    h = afterProbeFailure(h, POLICY, T0 + 10_000, "ping: no answer");
    h = afterProbeFailure(h, POLICY, T0 + 20_000, "ping: no answer");
    expect(h).toMatchObject({ state: "Ready", consecutiveFailures: 2, since: T0 });
    expect(h.message).toMatch(/2 in a row.*ping: no answer/);
    h = afterProbeFailure(h, POLICY, T0 + 30_000, "ping: no answer");
    expect(h).toMatchObject({ state: "Unhealthy", consecutiveFailures: 3, since: T0 + 30_000 });
    h = afterProbeFailure(h, POLICY, T0 + 40_000, "ping: no answer");
    expect(h).toMatchObject({ state: "Unhealthy", consecutiveFailures: 4, since: T0 + 30_000 });
    h = afterProbeSuccess(h, T0 + 50_000);
    expect(h).toMatchObject({ state: "Ready", consecutiveFailures: 0, since: T0 + 50_000 });
  });

  it("gives a Starting server its start period plus `retries` intervals before calling it Unhealthy", () => {
    const policy = { ...POLICY, startPeriodMs: 30_000 };
    let h = startingHealth("c1", T0);
    for (let t = 1000; t < 60_000; t += 1000) {
      h = afterProbeFailure(h, policy, T0 + t, "connection refused");
      expect(h.state, `at ${t} ms`).toBe("Starting");
    }
    h = afterProbeFailure(h, policy, T0 + 60_000, "connection refused");
    expect(h.state).toBe("Unhealthy");
  });

  it("treats retries 0 as 1", () => {
    const h = afterProbeFailure(
      afterProbeSuccess(startingHealth("c", T0), T0),
      { ...POLICY, retries: 0 },
      T0 + 1,
      "x",
    );
    expect(h.state).toBe("Unhealthy");
  });

  it("is Unhealthy at once when the container is not running", () => {
    const h = markUnavailable(afterProbeSuccess(startingHealth("c1", T0), T0), T0 + 5, "container is exited");
    expect(h).toMatchObject({ state: "Unhealthy", since: T0 + 5, message: "container is exited" });
  });

  it("probes quickly while Starting, at the interval otherwise", () => {
    expect(nextProbeDelay(startingHealth("c", T0), POLICY)).toBe(1000);
    expect(nextProbeDelay(startingHealth("c", T0), { ...POLICY, intervalMs: 500 })).toBe(500);
    expect(nextProbeDelay(afterProbeSuccess(startingHealth("c", T0), T0), POLICY)).toBe(10_000);
  });

  it("reads the controller's health_check label, with defaults for missing fields and bad labels", () => {
    expect(
      parseHealthLabel('{"interval_seconds":30,"retries":5,"start_period_seconds":2,"timeout_seconds":4}'),
    ).toEqual({
      intervalMs: 30_000,
      timeoutMs: 4_000,
      retries: 5,
      startPeriodMs: 2_000,
    });
    expect(parseHealthLabel('{"interval_seconds":1}')).toEqual({
      ...DEFAULT_HEALTH_POLICY,
      intervalMs: 1000,
    });
    expect(parseHealthLabel(undefined)).toEqual(DEFAULT_HEALTH_POLICY);
    expect(parseHealthLabel("not json")).toEqual(DEFAULT_HEALTH_POLICY);
    expect(parseHealthLabel('{"interval_seconds":-1}')).toEqual(DEFAULT_HEALTH_POLICY);
    expect(DEFAULT_HEALTH_POLICY).toEqual({
      intervalMs: 10_000,
      timeoutMs: 5_000,
      retries: 3,
      startPeriodMs: 0,
    });
  });
});

describe("HealthFile", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes the contract's fields atomically, and only when something other than the probe time changed", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "gateway-health-"));
    let now = Date.UTC(2026, 0, 1);
    const file = new HealthFile(healthFilePath(dir), () => now);
    const read = async () => JSON.parse(await readFile(healthFilePath(dir!), "utf8")) as HealthFileContent;
    file.sync();
    await file.flush();
    expect(await read()).toEqual({ updated_at: "2026-01-01T00:00:00.000Z", servers: [] });

    let h = startingHealth("c1", now);
    file.set("alice/time", { userId: "alice", serverId: "time", hostPort: 20001, health: h });
    file.set("alice/a", {
      userId: "alice",
      serverId: "a",
      hostPort: 20000,
      health: startingHealth("c0", now),
    });
    await file.flush();
    h = afterProbeSuccess(h, (now += 1000));
    file.set("alice/time", { userId: "alice", serverId: "time", hostPort: 20001, health: h });
    await file.flush();
    const written = await read();
    expect(written.servers.map((s) => s.server_id)).toEqual(["a", "time"]);
    expect(written.servers[1]).toEqual({
      user_id: "alice",
      server_id: "time",
      container_id: "c1",
      host_port: 20001,
      state: "Ready",
      since: "2026-01-01T00:00:01.000Z",
      last_probe_at: "2026-01-01T00:00:01.000Z",
      consecutive_failures: 0,
      message: "MCP initialize and ping succeeded",
    });
    const before = await stat(healthFilePath(dir));

    // Another successful probe changes only last_probe_at: no write.
    h = afterProbeSuccess(h, (now += 10_000));
    file.set("alice/time", { userId: "alice", serverId: "time", hostPort: 20001, health: h });
    await file.flush();
    const after = await stat(healthFilePath(dir));
    expect(after.ino).toBe(before.ino);
    expect((await read()).servers[1]?.last_probe_at).toBe("2026-01-01T00:00:01.000Z");

    // A failure does.
    h = afterProbeFailure(h, POLICY, (now += 10_000), "ping: no answer");
    file.set("alice/time", { userId: "alice", serverId: "time", hostPort: 20001, health: h });
    file.delete("alice/a");
    await file.flush();
    const failed = await read();
    expect(failed.servers).toHaveLength(1);
    expect(failed.servers[0]).toMatchObject({
      consecutive_failures: 1,
      last_probe_at: "2026-01-01T00:00:21.000Z",
    });
  });
});
