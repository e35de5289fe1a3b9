// Scale to zero in the reconcile core (README, "Idle servers"): the pure rules (timeouts, limits), then the whole
// controller on the in-memory engine with a clock the test moves forward: idle stops, wakes through the wake
// request directory, refusals, drift rules, restarts, the prune guard, plan.
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { computePlan } from "../../../src/commands/plan.js";
import { loadConfig } from "../../../src/config.js";
import { TextSink } from "../../helpers/cli-io.js";
import { afterEach, describe, expect, it } from "vitest";
import { IdleStateFile, idleStatePath } from "../../../src/contracts/idle-state.js";
import { gatewayTrafficPath } from "../../../src/contracts/gateway-traffic.js";
import { statusFilePath, UserStatus } from "../../../src/contracts/status-file.js";
import { wakeRequestPath } from "../../../src/contracts/wake-request.js";
import { effectiveIdleTimeoutSeconds } from "../../../src/desired/idle-timeout.js";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import { PolicyFile } from "../../../src/schema/policy.js";
import { ServerDefinition } from "../../../src/schema/catalog.js";
import type { PortalEvent } from "../../../src/events/event-bus.js";
import { writeJsonAtomic } from "../../../src/util/atomic-write.js";
import type { Clock } from "../../../src/util/clock.js";
import { waitFor } from "../../helpers/daemon.js";
import { TestDataDir } from "../../helpers/data-dir.js";
import {
  type MemoryDaemon,
  containersOf,
  disposeMemoryDaemon,
  memServer,
  memoryDaemon,
  runningServers,
} from "../../helpers/memory-daemon.js";

describe("idle timeout of a server (pure)", () => {
  const def = (extra: Record<string, unknown> = {}) =>
    ServerDefinition.parse({ id: "s", name: "s", image: "mcp/s", ...extra });
  const policy = (p: Record<string, unknown>) => PolicyFile.parse(p);

  it("comes from the catalog, else long_lived, else the policy default; the policy maximum wins over all", () => {
    const none = policy({});
    expect(effectiveIdleTimeoutSeconds(def(), none, "alice")).toBe(0);
    expect(effectiveIdleTimeoutSeconds(def({ idle_timeout_seconds: 300 }), none, "alice")).toBe(300);
    const defaults = policy({ idle: { default_timeout_seconds: 600 } });
    expect(effectiveIdleTimeoutSeconds(def(), defaults, "alice")).toBe(600);
    expect(effectiveIdleTimeoutSeconds(def({ long_lived: true }), defaults, "alice")).toBe(0);
    expect(effectiveIdleTimeoutSeconds(def({ idle_timeout_seconds: 0 }), defaults, "alice")).toBe(0);
    const capped = policy({ idle: { max_timeout_seconds: 120 } });
    expect(effectiveIdleTimeoutSeconds(def({ idle_timeout_seconds: 300 }), capped, "alice")).toBe(120);
    expect(effectiveIdleTimeoutSeconds(def({ idle_timeout_seconds: 60 }), capped, "alice")).toBe(60);
    // The admin's maximum wins over always-on, a long-lived flag included.
    expect(effectiveIdleTimeoutSeconds(def({ long_lived: true }), capped, "alice")).toBe(120);
    expect(effectiveIdleTimeoutSeconds(def(), capped, "alice")).toBe(120);
  });

  it("a user's own policy entry wins over the one for everyone, field by field", () => {
    const p = policy({
      idle: { default_timeout_seconds: 600, max_timeout_seconds: 900 },
      users: { alice: { idle: { max_timeout_seconds: 60 } } },
    });
    expect(effectiveIdleTimeoutSeconds(def(), p, "alice")).toBe(60);
    expect(effectiveIdleTimeoutSeconds(def(), p, "bob")).toBe(600);
    expect(effectiveIdleTimeoutSeconds(def({ long_lived: true }), p, "bob")).toBe(900);
  });

  it("refuses invalid values (negative, fractions, a zero maximum, unknown fields)", () => {
    expect(
      ServerDefinition.safeParse({ id: "s", name: "s", image: "i", idle_timeout_seconds: -1 }).success,
    ).toBe(false);
    expect(
      ServerDefinition.safeParse({ id: "s", name: "s", image: "i", idle_timeout_seconds: 1.5 }).success,
    ).toBe(false);
    expect(PolicyFile.safeParse({ idle: { max_timeout_seconds: 0 } }).success).toBe(false);
    expect(PolicyFile.safeParse({ idle: { forever: true } }).success).toBe(false);
  });
});

/** Real timers, a `now` the test moves forward: idle timeouts pass without waiting for them. */
class SkippingClock implements Clock {
  offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    return setTimeout(fn, ms);
  }
  clearTimeout(handle: unknown): void {
    clearTimeout(handle as NodeJS.Timeout);
  }
}

const open: MemoryDaemon[] = [];
afterEach(async () => {
  for (const d of open.splice(0)) await disposeMemoryDaemon(d);
});

const IDLE = { idle_timeout_seconds: 60 };

async function tree(
  servers: Record<string, unknown>[],
  enabled: Record<string, string[]>,
  policy?: Record<string, unknown>,
): Promise<TestDataDir> {
  const data = await TestDataDir.create();
  await data.baseCatalog("base", servers);
  for (const [user, ids] of Object.entries(enabled)) await data.enable(user, ids);
  if (policy) await data.policy(policy);
  return data;
}

async function start(data: TestDataDir, clock: Clock, extra: Parameters<typeof memoryDaemon>[0] = {}) {
  const d = await memoryDaemon({
    data,
    clock,
    // The gateway is what makes scale to zero possible (it sees the traffic and asks for wakes).
    env: { MCP_PORTAL_GATEWAY: "on" },
    ...extra,
  });
  open.push(d);
  return d;
}

async function reconcile(d: MemoryDaemon, userId = "alice"): Promise<void> {
  d.daemon.controller.enqueue(userId);
  await d.daemon.controller.idle();
}

async function status(d: MemoryDaemon, userId = "alice"): Promise<UserStatus> {
  return UserStatus.parse(JSON.parse(await readFile(statusFilePath(d.data.stateDir, userId), "utf8")));
}

async function idleFile(d: MemoryDaemon): Promise<IdleStateFile> {
  return IdleStateFile.parse(JSON.parse(await readFile(idleStatePath(d.data.stateDir), "utf8")));
}

async function requestWake(d: MemoryDaemon, userId: string, serverId: string, clock: Clock): Promise<void> {
  await writeJsonAtomic(wakeRequestPath(d.data.stateDir, userId, serverId), {
    version: 1,
    user_id: userId,
    server_id: serverId,
    requested_at: new Date(clock.now()).toISOString(),
  });
}

async function auditLines(d: MemoryDaemon): Promise<Record<string, unknown>[]> {
  const text = await readFile(`${d.data.stateDir}/audit.log`, "utf8");
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const stateOf = (d: MemoryDaemon, serverId: string, userId = "alice") =>
  containersOf(d.runtime, userId, serverId).map((c) => c.state);

describe("idle servers on the in-memory engine", () => {
  it("stops a server after its idle timeout (container kept), says Idle, audits it and counts it", async () => {
    const clock = new SkippingClock();
    const d = await start(await tree([memServer("a", IDLE), memServer("b")], { alice: ["a", "b"] }), clock);
    const events: PortalEvent[] = [];
    d.daemon.events.subscribe((e) => events.push(e));
    const [before] = containersOf(d.runtime, "alice", "a");
    clock.offset += 30_000;
    await reconcile(d);
    expect(stateOf(d, "a")).toEqual(["running"]);
    clock.offset += 31_000;
    await reconcile(d);
    const [after] = containersOf(d.runtime, "alice", "a");
    expect(after?.id).toBe(before?.id);
    expect(after?.state).toBe("exited");
    // A server without an idle timeout stays on.
    expect(stateOf(d, "b")).toEqual(["running"]);
    const s = await status(d);
    expect(s.servers.find((x) => x.id === "a")).toMatchObject({
      phase: "Idle",
      reason: "IdleTimeout",
      container_id: before?.id,
    });
    // An idle server counts as serving (b is only waiting for its first MCP probe here: no gateway runs).
    expect(s.conditions.find((c) => c.type === "Ready")?.message).not.toMatch(/\ba: /);
    expect((await idleFile(d)).servers).toMatchObject([
      { user_id: "alice", server_id: "a", container_id: before?.id },
    ]);
    const audit = await auditLines(d);
    expect(audit.some((l) => l.action === "idle_stop_server" && l.resource === "a")).toBe(true);
    expect(
      events.some(
        (e) =>
          e.event === "SERVER_STATUS_CHANGED" && (e.data as { new_status?: string }).new_status === "Idle",
      ),
    ).toBe(true);
    // Gauges are set once per burst of reconciles (a 50 ms debounce).
    await waitFor("mcp_portal_idle_servers 1", async () =>
      /mcp_portal_idle_servers 1/.test(
        await d.daemon.metrics.registry.getSingleMetricAsString("mcp_portal_idle_servers"),
      ),
    );
    // Idle is no drift: another pass changes nothing.
    d.runtime.resetCalls();
    await reconcile(d);
    expect(d.runtime.callCount("container_start", "container_create", "container_remove")).toBe(0);
  });

  it("a request that reached the server just before the gateway saw idle.json calls the stop off (nothing is cut)", async () => {
    const clock = new SkippingClock();
    const d = await start(await tree([memServer("a", IDLE)], { alice: ["a"] }), clock);
    await reconcile(d);
    const [before] = containersOf(d.runtime, "alice", "a");
    clock.offset += 61_000;
    d.daemon.controller.enqueue("alice");
    // idle.json lists it (the stop is decided); the gateway then writes the request it had already let through.
    await waitFor("idle.json lists a", async () =>
      (await idleFile(d).catch(() => undefined))?.servers.some((s) => s.server_id === "a"),
    );
    await writeJsonAtomic(gatewayTrafficPath(d.data.stateDir), {
      version: 1,
      updated_at: new Date(clock.now()).toISOString(),
      servers: [{ user_id: "alice", server_id: "a", last_request_at: new Date(clock.now()).toISOString() }],
    });
    await d.daemon.controller.idle();
    expect(containersOf(d.runtime, "alice", "a").map((c) => [c.id, c.state])).toEqual([
      [before?.id, "running"],
    ]);
    expect((await idleFile(d)).servers).toEqual([]);
    expect((await status(d)).servers.find((x) => x.id === "a")?.phase).toBe("Running");
  });

  it("a request seen by the gateway (traffic.json) keeps a server awake", async () => {
    const clock = new SkippingClock();
    const d = await start(await tree([memServer("a", IDLE)], { alice: ["a"] }), clock);
    clock.offset += 50_000;
    await writeJsonAtomic(gatewayTrafficPath(d.data.stateDir), {
      version: 1,
      updated_at: new Date(clock.now()).toISOString(),
      servers: [{ user_id: "alice", server_id: "a", last_request_at: new Date(clock.now()).toISOString() }],
    });
    clock.offset += 50_000;
    await reconcile(d);
    expect(stateOf(d, "a")).toEqual(["running"]);
    clock.offset += 11_000;
    await reconcile(d);
    expect(stateOf(d, "a")).toEqual(["exited"]);
  });

  it("a wake request starts the same container once, clears idle.json and removes the request", async () => {
    const clock = new SkippingClock();
    const d = await start(await tree([memServer("a", IDLE)], { alice: ["a"] }), clock);
    const [container] = containersOf(d.runtime, "alice", "a");
    clock.offset += 61_000;
    await reconcile(d);
    expect(stateOf(d, "a")).toEqual(["exited"]);
    d.runtime.resetCalls();
    await requestWake(d, "alice", "a", clock);
    await waitFor("woken", () => stateOf(d, "a")[0] === "running", 5000);
    await d.daemon.controller.idle();
    expect(containersOf(d.runtime, "alice", "a").map((c) => c.id)).toEqual([container?.id]);
    expect(d.runtime.callCount("container_start")).toBe(1);
    expect(d.runtime.callCount("container_create")).toBe(0);
    expect((await idleFile(d)).servers).toEqual([]);
    await waitFor("request consumed", async () =>
      readFile(wakeRequestPath(d.data.stateDir, "alice", "a")).then(
        () => false,
        () => true,
      ),
    );
    expect((await status(d)).servers[0]).toMatchObject({ phase: "Running" });
    expect((await auditLines(d)).some((l) => l.action === "wake_server" && l.result === "success")).toBe(
      true,
    );
    // No crash-loop wait for the next wake: the idle stop was ours.
    clock.offset += 61_000;
    await reconcile(d);
    await requestWake(d, "alice", "a", clock);
    await waitFor("woken again", () => stateOf(d, "a")[0] === "running", 5000);
  });

  it("refuses a wake beyond max_containers with the limit's reason; the server stays idle", async () => {
    const clock = new SkippingClock();
    const d = await start(
      await tree(
        [memServer("a", IDLE), memServer("b", { idle_timeout_seconds: 100_000 })],
        { alice: ["a", "b"] },
        {
          default_limits: { max_containers: 1 },
        },
      ),
      clock,
    );
    // a runs, b waits for room; a idles, so b runs (an idle server counts only against max_ports).
    expect(runningServers(d.runtime)).toEqual(["alice/a"]);
    clock.offset += 61_000;
    await reconcile(d);
    await reconcile(d);
    expect(runningServers(d.runtime)).toEqual(["alice/b"]);
    expect((await status(d)).resources?.used).toMatchObject({ containers: 1, ports: 2 });
    await requestWake(d, "alice", "a", clock);
    await waitFor("refused", async () => (await idleFile(d)).servers[0]?.wake_refused, 5000);
    expect((await idleFile(d)).servers[0]?.wake_refused).toMatchObject({ reason: "LimitExceeded" });
    expect(runningServers(d.runtime)).toEqual(["alice/b"]);
    const a = (await status(d)).servers.find((s) => s.id === "a");
    expect(a).toMatchObject({ phase: "Idle", reason: "LimitExceeded" });
    expect(a?.message).toMatch(/max_containers 1/);
  });

  it("a manual docker start of an idle container counts as woken; a deleted one is re-created stopped", async () => {
    const clock = new SkippingClock();
    const d = await start(
      await tree([memServer("a", IDLE), memServer("c", IDLE)], { alice: ["a", "c"] }),
      clock,
    );
    clock.offset += 61_000;
    await reconcile(d);
    expect(stateOf(d, "a")).toEqual(["exited"]);
    const [a] = containersOf(d.runtime, "alice", "a");
    await d.runtime.startContainer(a!.id);
    // A start is no event the controller follows: the next resync (a fresh listing) sees it.
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    expect(stateOf(d, "a")).toEqual(["running"]);
    expect((await idleFile(d)).servers.map((s) => s.server_id)).toEqual(["c"]);
    expect((await status(d)).servers.find((s) => s.id === "a")?.phase).toBe("Running");
    const [c] = containersOf(d.runtime, "alice", "c");
    d.runtime.removeContainerExternally(c!.id);
    await reconcile(d);
    const recreated = containersOf(d.runtime, "alice", "c");
    expect(recreated).toHaveLength(1);
    expect(recreated[0]?.id).not.toBe(c?.id);
    expect(recreated[0]?.state).toBe("created");
    expect((await status(d)).servers.find((s) => s.id === "c")?.phase).toBe("Idle");
  });

  it("enabling an idle timeout on a running server replaces nothing (outside the spec hash)", async () => {
    const clock = new SkippingClock();
    const data = await tree([memServer("a")], { alice: ["a"] });
    const d = await start(data, clock);
    const [before] = containersOf(d.runtime, "alice", "a");
    await data.baseCatalog("base", [memServer("a", { idle_timeout_seconds: 60, long_lived: false })]);
    d.daemon.controller.notifyDataChange({
      scope: "global",
      file: "catalogs/base/base.json",
      event: "change",
    });
    await new Promise((r) => setTimeout(r, 50));
    d.runtime.resetCalls();
    await reconcile(d);
    expect(d.runtime.callCount("container_create", "container_remove", "container_stop")).toBe(0);
    expect(containersOf(d.runtime, "alice", "a").map((c) => [c.id, c.state])).toEqual([
      [before?.id, "running"],
    ]);
    clock.offset += 61_000;
    await reconcile(d);
    expect(stateOf(d, "a")).toEqual(["exited"]);
  });

  it("a controller restart keeps idle servers idle and re-creates nothing; a request left meanwhile wakes it", async () => {
    const clock = new SkippingClock();
    const data = await tree([memServer("a", IDLE), memServer("b", IDLE)], { alice: ["a", "b"] });
    const first = await start(data, clock);
    clock.offset += 61_000;
    await reconcile(first);
    expect(stateOf(first, "a")).toEqual(["exited"]);
    await first.stop();
    open.splice(open.indexOf(first), 1);
    await requestWake(first, "alice", "b", clock);
    first.runtime.resetCalls();
    const second = await start(data, clock, { runtime: first.runtime });
    await waitFor("b woken", () => stateOf(second, "b")[0] === "running", 5000);
    expect(stateOf(second, "a")).toEqual(["exited"]);
    expect(second.runtime.callCount("container_create", "container_remove")).toBe(0);
    expect(second.runtime.callCount("container_start")).toBe(1);
    expect((await status(second)).servers.find((s) => s.id === "a")?.phase).toBe("Idle");
  });

  it("a server that crashes on wake backs off (CrashLoopBackOff) and more requests start it no sooner", async () => {
    const clock = new SkippingClock();
    const d = await start(await tree([memServer("a", IDLE)], { alice: ["a"] }), clock, {
      startBackoff: { baseMs: 60_000, maxMs: 120_000, healthyAfterMs: 120_000 },
    });
    clock.offset += 61_000;
    await reconcile(d);
    await requestWake(d, "alice", "a", clock);
    await waitFor("woken", () => stateOf(d, "a")[0] === "running", 5000);
    const [a] = containersOf(d.runtime, "alice", "a");
    d.runtime.resetCalls();
    d.runtime.killContainer(a!.id);
    await reconcile(d);
    for (let i = 0; i < 3; i++) {
      await requestWake(d, "alice", "a", clock);
      await new Promise((r) => setTimeout(r, 1200));
      await d.daemon.controller.idle();
    }
    expect(d.runtime.callCount("container_start")).toBe(0);
    expect((await status(d)).servers[0]).toMatchObject({ phase: "Failed", reason: "CrashLoopBackOff" });
  });

  it("idle stops are no prunes: stopping most of the fleet at once trips no mass-prune latch", async () => {
    const clock = new SkippingClock();
    const ids = ["a", "b", "c", "d", "e", "f"];
    const d = await start(
      await tree(
        ids.map((id) => memServer(id, IDLE)),
        { alice: ids.slice(0, 3), bob: ids.slice(3) },
      ),
      clock,
      { env: { MCP_PORTAL_GATEWAY: "on", MCP_PORTAL_MASS_PRUNE_MIN: "1" } },
    );
    clock.offset += 61_000;
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    expect(runningServers(d.runtime)).toEqual([]);
    expect(d.runtime.containers.size).toBe(6);
    expect((await status(d, "bob")).phase).toBe("Ready");
    expect(await d.daemon.metrics.registry.getSingleMetricAsString("mcp_portal_prune_blocked")).toMatch(
      / 0$/m,
    );
  });

  it("on the Swarm backend no idle timeout is applied: the server stays running and status says why", async () => {
    const clock = new SkippingClock();
    const d = await start(await tree([memServer("a", IDLE), memServer("b")], { alice: ["a", "b"] }), clock, {
      runtime: new MemoryRuntime({
        inPlaceUpdate: true,
        nodes: [
          {
            id: "node-1",
            hostname: "host1",
            addr: "10.0.0.1",
            state: "ready",
            availability: "active",
            role: "manager",
          },
        ],
      }),
      env: { MCP_PORTAL_GATEWAY: "on", MCP_PORTAL_BACKEND: "swarm", MCP_PORTAL_SWARM_POLL_SECONDS: "1" },
    });
    await reconcile(d);
    clock.offset += 120_000;
    await reconcile(d);
    expect(stateOf(d, "a")).toEqual(["running"]);
    const s = await status(d);
    expect(s.servers.find((x) => x.id === "a")?.phase).not.toBe("Idle");
    expect(s.servers.find((x) => x.id === "a")?.warnings).toContain(
      "idle_timeout_seconds (60 s) is not applied: idle servers (scale to zero) need the Docker Engine backend; on MCP_PORTAL_BACKEND=swarm every server stays on",
    );
    expect(s.servers.find((x) => x.id === "b")?.warnings ?? []).not.toContainEqual(
      expect.stringMatching(/idle_timeout_seconds/),
    );
    expect(await readFile(idleStatePath(d.data.stateDir), "utf8").catch(() => "absent")).toBe("absent");
  });

  it("plan shows no drift for an idle server (it reads idle.json)", async () => {
    const clock = new SkippingClock();
    const d = await start(await tree([memServer("a", IDLE)], { alice: ["a"] }), clock);
    clock.offset += 61_000;
    await reconcile(d);
    expect(stateOf(d, "a")).toEqual(["exited"]);
    const env = {
      MCP_PORTAL_DATA_DIR: d.data.root,
      MCP_PORTAL_INSTALLATION: "unit",
      MCP_PORTAL_GATEWAY: "on",
    };
    const io = { stdin: Readable.from([]), stdout: new TextSink(), stderr: new TextSink(), env };
    const config = loadConfig({
      ...env,
      MCP_PORTAL_PORT_RANGE_START: "20000",
      MCP_PORTAL_PORT_RANGE_END: "29999",
      MCP_PORTAL_PORTS_PER_USER: "10",
    });
    const view = await computePlan({ config, user: "alice", output: "json" }, io, d.runtime);
    expect(view.in_sync).toBe(true);
  });
});
