// The reconcile core end to end on the in-memory engine: converge, idempotence, drift healing, conflicts,
// prune safety, grace for a missing file, restart adoption, backoff, and what an idle fleet costs.
import { mkdir, readFile, rename, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type GatewayHealthServer, gatewayHealthPath } from "../../../src/contracts/gateway-health.js";
import { statusFilePath, UserStatus } from "../../../src/contracts/status-file.js";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import { type EventFilter, RuntimeError } from "../../../src/docker/runtime.js";
import { volumeName } from "../../../src/desired/names.js";
import { LABELS, ownerLabels } from "../../../src/labels.js";
import { waitFor } from "../../helpers/daemon.js";
import {
  type MemoryDaemon,
  containersOf,
  disposeMemoryDaemon,
  memServer,
  memoryDaemon,
  runningServers,
} from "../../helpers/memory-daemon.js";
import { TestDataDir } from "../../helpers/data-dir.js";

const open: MemoryDaemon[] = [];
/** A crash-loop backoff short enough for a test to see a killed container started again. */
const QUICK_BACKOFF = { baseMs: 50, maxMs: 200, healthyAfterMs: 100 };
afterEach(async () => {
  for (const d of open.splice(0)) await disposeMemoryDaemon(d);
});

async function tree(users: Record<string, string[]>, servers = ["a", "b", "c"]): Promise<TestDataDir> {
  const data = await TestDataDir.create();
  await data.baseCatalog(
    "base",
    servers.map((id) => memServer(id)),
  );
  for (const [user, enabled] of Object.entries(users)) await data.enable(user, enabled);
  return data;
}

async function start(
  data: TestDataDir,
  extra: Parameters<typeof memoryDaemon>[0] = {},
): Promise<MemoryDaemon> {
  const d = await memoryDaemon({ data, ...extra });
  open.push(d);
  return d;
}

async function status(d: MemoryDaemon, userId: string): Promise<UserStatus> {
  return UserStatus.parse(JSON.parse(await readFile(statusFilePath(d.data.stateDir, userId), "utf8")));
}

/** Runs a resync and waits for everything it caused (prune approvals included). */
async function resync(d: MemoryDaemon): Promise<void> {
  await d.daemon.controller.resync();
  await d.daemon.controller.idle();
}

describe("reconcile core on the in-memory engine", () => {
  it("converges every user, writes Ready statuses, and a second pass changes nothing (3 list calls)", async () => {
    const d = await start(await tree({ alice: ["a", "b"], bob: ["c"] }));
    expect(runningServers(d.runtime)).toEqual(["alice/a", "alice/b", "bob/c"]);
    expect((await status(d, "alice")).phase).toBe("Ready");
    expect((await status(d, "bob")).servers.map((s) => [s.id, s.phase])).toEqual([["c", "Running"]]);
    // Every container is labelled as ours, with its spec hash and port.
    for (const c of d.runtime.containers.values()) {
      expect(c.labels).toMatchObject({ [LABELS.managedBy]: "mcp-portal", [LABELS.installation]: "unit" });
      expect(c.labels[LABELS.specHash]).toMatch(/^[0-9a-f]{32}$/);
    }
    d.runtime.resetCalls();
    const before = d.daemon.runtime.callCounts.get("container_create") ?? 0;
    await resync(d);
    expect(d.runtime.callCount()).toBe(3);
    expect(d.runtime.callCount("container_list", "network_list", "volume_list")).toBe(3);
    expect(d.daemon.runtime.callCounts.get("container_create") ?? 0).toBe(before);
  });

  it("heals drift: a killed container is started, a removed one re-created, a stopped one started", async () => {
    const d = await start(await tree({ alice: ["a", "b", "c"] }), { startBackoff: QUICK_BACKOFF });
    const [a] = containersOf(d.runtime, "alice", "a");
    const [b] = containersOf(d.runtime, "alice", "b");
    const [c] = containersOf(d.runtime, "alice", "c");
    d.runtime.killContainer(a!.id);
    d.runtime.removeContainerExternally(b!.id);
    await d.runtime.stopContainer(c!.id, 0);
    await waitFor(
      "every server running again",
      () => runningServers(d.runtime).length === 3 || undefined,
      5_000,
    );
    await d.daemon.controller.idle();
    expect(containersOf(d.runtime, "alice", "a")[0]!.id).toBe(a!.id);
    expect(containersOf(d.runtime, "alice", "b")[0]!.id).not.toBe(b!.id);
    const drift = await d.daemon.metrics.driftCorrectionsTotal.get();
    const byKind: Record<string, number> = {};
    for (const v of drift.values) byKind[String(v.labels.kind)] = v.value;
    expect(byKind.missing_container).toBe(1);
    expect(byKind.stopped_container).toBeGreaterThanOrEqual(2);
  });

  it("never touches a foreign container holding our name: NameConflict, left running", async () => {
    const data = await tree({ alice: ["a"] });
    const runtime = new MemoryRuntime();
    const probe = await memoryDaemon({ data, runtime: new MemoryRuntime() });
    const name = containersOf(probe.runtime, "alice", "a")[0]!.name;
    await probe.stop();
    const foreign = runtime.addForeignContainer(name, { owner: "someone-else" });
    const d = await start(data, { runtime });
    const s = await status(d, "alice");
    expect(s.servers[0]).toMatchObject({ id: "a", phase: "Blocked", reason: "NameConflict" });
    expect(runtime.containers.get(foreign)?.state).toBe("running");
    expect(containersOf(runtime, "alice")).toEqual([]);
  });

  it("adopts everything after a restart: no mutation, same ports, same containers", async () => {
    const data = await tree({ alice: ["a", "b"], bob: ["a"] });
    const first = await memoryDaemon({ data });
    const before = [...first.runtime.containers.values()]
      .map((c) => [c.id, c.labels[LABELS.hostPort]])
      .sort();
    await first.stop();
    const runtime = first.runtime;
    runtime.resetCalls();
    const second = await start(data, { runtime });
    const mutations = [
      "container_create",
      "container_start",
      "container_remove",
      "network_create",
      "volume_create",
    ];
    expect(runtime.callCount(...(mutations as Parameters<MemoryRuntime["callCount"]>))).toBe(0);
    const after = [...second.runtime.containers.values()]
      .map((c) => [c.id, c.labels[LABELS.hostPort]])
      .sort();
    expect(after).toEqual(before);
  });

  it("replaces a container whose spec changed with the five engine calls of the plan, in order", async () => {
    const data = await tree({ alice: ["a"] });
    const d = await start(data);
    const old = containersOf(d.runtime, "alice", "a")[0]!;
    await data.baseCatalog("base", [memServer("a", { tag: "2" }), memServer("b"), memServer("c")]);
    d.daemon.controller.notifyDataChange({
      scope: "global",
      file: "catalogs/base/base.json",
      event: "change",
    });
    await waitFor(
      "replaced",
      () => containersOf(d.runtime, "alice", "a")[0]?.image === "mcp/a:2" || undefined,
      5_000,
    );
    await d.daemon.controller.idle();
    const now = containersOf(d.runtime, "alice", "a");
    expect(now).toHaveLength(1);
    expect(now[0]!.name).toBe(old.name);
    expect(now[0]!.state).toBe("running");
    const applying = d.logged("applying").at(-1)!;
    expect((applying.steps as string[]).map((s) => s.split(" (")[0])).toEqual([
      "a: pull image mcp/a:2 if absent",
      `a: create container ${old.name}-next-${now[0]!.labels[LABELS.specHash]!.slice(0, 8)}`,
      `a: stop ${old.name}`,
      `a: remove ${old.name}`,
      `a: rename ${old.name}-next-${now[0]!.labels[LABELS.specHash]!.slice(0, 8)} -> ${old.name}`,
      `a: start ${old.name}`,
    ]);
  });

  it("finishes a replace interrupted after the create: removes the old, renames the new, no duplicate", async () => {
    const data = await tree({ alice: ["a"] });
    const runtime = new MemoryRuntime();
    const d = await start(data, { runtime });
    await data.baseCatalog("base", [memServer("a", { tag: "2" }), memServer("b"), memServer("c")]);
    // The engine dies right after the replacement is created.
    runtime.inject({ operation: "container_stop", error: new RuntimeError("Unavailable", "engine gone") });
    d.daemon.controller.notifyDataChange({
      scope: "global",
      file: "catalogs/base/base.json",
      event: "change",
    });
    await d.daemon.controller.idle();
    expect(containersOf(runtime, "alice", "a")).toHaveLength(2);
    await waitFor(
      "one replaced container",
      () => {
        const left = containersOf(runtime, "alice", "a");
        return (
          (left.length === 1 && left[0]!.image === "mcp/a:2" && left[0]!.state === "running") || undefined
        );
      },
      10_000,
    );
  });

  it("backs off when the engine fails, says so in status, and converges once it answers again", async () => {
    const data = await tree({ alice: ["a"] });
    const runtime = new MemoryRuntime();
    runtime.inject({
      operation: "container_create",
      error: new RuntimeError("Failed", "create failed: disk full", 500),
      times: 2,
    });
    const d = await start(data, { runtime });
    const s = await status(d, "alice");
    expect(s.servers[0]).toMatchObject({ phase: "Failed", reason: "CreateFailed" });
    expect(s.servers[0]!.message).toContain("disk full");
    await waitFor(
      "running after the failures",
      () => runningServers(runtime).length === 1 || undefined,
      5_000,
    );
    const retries = await d.daemon.metrics.workqueueRetriesTotal.get();
    expect(retries.values[0]!.value).toBeGreaterThanOrEqual(2);
  });

  it("leaves everything as it is while the engine is down and recovers when it is back", async () => {
    const d = await start(await tree({ alice: ["a"] }), { startBackoff: QUICK_BACKOFF });
    d.runtime.stopEngine();
    await expect(d.daemon.controller.resync()).rejects.toThrow(/unreachable/);
    d.runtime.startEngine();
    d.runtime.killContainer(containersOf(d.runtime, "alice", "a")[0]!.id);
    await resync(d);
    await waitFor("alice/a running again", () => runningServers(d.runtime).length === 1 || undefined, 5_000);
  });
});

describe("mass-prune latch on the in-memory engine", () => {
  async function fleet(users: number): Promise<MemoryDaemon> {
    const spec: Record<string, string[]> = {};
    for (let i = 0; i < users; i++) spec[`u${i}`] = ["a", "b"];
    return start(await tree(spec));
  }

  it("renaming users/ away removes nothing: the latch trips, status and gauge say so", async () => {
    const d = await fleet(20);
    expect(runningServers(d.runtime)).toHaveLength(40);
    await rename(path.join(d.data.root, "users"), path.join(d.data.root, "users.moved"));
    await resync(d);
    await resync(d);
    expect(runningServers(d.runtime)).toHaveLength(40);
    expect((await d.daemon.metrics.pruneBlocked.get()).values[0]!.value).toBe(1);
    expect((await status(d, "u3")).phase).toBe("Stalled");
    expect((await status(d, "u3")).conditions.find((c) => c.type === "Stalled")).toMatchObject({
      status: "True",
      reason: "MassPruneBlocked",
    });
    // The tree comes back: nothing was lost, the latch releases itself.
    await rename(path.join(d.data.root, "users.moved"), path.join(d.data.root, "users"));
    await resync(d);
    expect(runningServers(d.runtime)).toHaveLength(40);
    expect((await d.daemon.metrics.pruneBlocked.get()).values[0]!.value).toBe(0);
    expect((await status(d, "u3")).phase).toBe("Ready");
  });

  it("removes a few users' containers normally (within the limit), after the guard approved them", async () => {
    const d = await fleet(10);
    await d.data.removeUser("u1");
    await d.data.enable("u2", ["a"]);
    d.daemon.controller.notifyDataChange({
      scope: "user",
      userId: "u1",
      file: "users/u1",
      event: "unlinkDir",
    });
    d.daemon.controller.notifyDataChange({
      scope: "user",
      userId: "u2",
      file: "users/u2/enabled-servers.json",
      event: "change",
    });
    await d.daemon.controller.idle();
    expect(containersOf(d.runtime, "u1")).toEqual([]);
    expect(containersOf(d.runtime, "u2").map((c) => c.labels[LABELS.serverId])).toEqual(["a"]);
    expect(runningServers(d.runtime)).toHaveLength(17);
  });

  it("survives a restart tripped and releases on the operator's word", async () => {
    const d = await fleet(10);
    await rename(path.join(d.data.root, "users"), path.join(d.data.root, "users.moved"));
    await resync(d);
    expect((await d.daemon.metrics.pruneBlocked.get()).values[0]!.value).toBe(1);
    await d.stop();
    open.splice(open.indexOf(d), 1);
    const again = await start(d.data, { runtime: d.runtime });
    expect(runningServers(d.runtime)).toHaveLength(20);
    expect(again.daemon.controller.isStopping).toBe(false);
    await again.daemon.controller.releasePruneGuard("test");
    await again.daemon.controller.idle();
    expect(runningServers(d.runtime)).toHaveLength(0);
    // Data volumes stay.
    expect(d.runtime.volumes.size).toBeGreaterThan(0);
  });

  it("a user folder without enabled-servers.json is unknown, not empty, until the grace period ends", async () => {
    const data = await tree({ alice: ["a", "b"], bob: ["a"] });
    const d = await start(data, { env: { MCP_PORTAL_MISSING_FILE_GRACE_SECONDS: "1" } });
    await data.write("users/alice/enabled-servers.json", "");
    await rename(
      path.join(data.root, "users/alice/enabled-servers.json"),
      path.join(data.root, "users/alice/x"),
    );
    d.daemon.controller.notifyDataChange({
      scope: "user",
      userId: "alice",
      file: "users/alice/enabled-servers.json",
      event: "unlink",
    });
    await d.daemon.controller.idle();
    expect(containersOf(d.runtime, "alice")).toHaveLength(2);
    expect((await status(d, "alice")).errors[0]?.message).toContain("MCP_PORTAL_MISSING_FILE_GRACE_SECONDS");
    // After the grace period it means "nothing enabled": two removals, within the guard's minimum, so they go.
    await waitFor(
      "alice's containers removed",
      async () => {
        await resync(d);
        return containersOf(d.runtime, "alice").length === 0 || undefined;
      },
      5_000,
    );
    expect((await status(d, "alice")).errors).toEqual([]);
    expect(containersOf(d.runtime, "bob")).toHaveLength(1);
  });
});

describe("what an idle fleet costs", () => {
  it("a no-op resync is answered from the last outcome for every unchanged user", async () => {
    const spec: Record<string, string[]> = {};
    for (let i = 0; i < 20; i++) spec[`u${i}`] = ["a", "b"];
    const d = await start(await tree(spec));
    await resync(d);
    const reconciled = d.logged("reconciled").length;
    await resync(d);
    // Unchanged users do not even get to the "reconciled" log line: nothing was recomputed.
    expect(d.logged("reconciled").length).toBe(reconciled);
  });

  /** The gateway's health file for every running container, as the gateway writes it after its probes. */
  async function writeHealth(d: MemoryDaemon, probeAt: string, unhealthy?: string): Promise<void> {
    const servers: GatewayHealthServer[] = [...d.runtime.containers.values()]
      .filter((c) => c.state === "running" && c.labels[LABELS.serverId])
      .map((c) => {
        const key = `${c.labels[LABELS.userId]}/${c.labels[LABELS.serverId]}`;
        const bad = key === unhealthy;
        return {
          user_id: c.labels[LABELS.userId]!,
          server_id: c.labels[LABELS.serverId]!,
          container_id: c.id,
          host_port: Number(c.labels[LABELS.hostPort]),
          state: bad ? "Unhealthy" : "Ready",
          since: "2026-11-30T00:00:00.000Z",
          last_probe_at: probeAt,
          consecutive_failures: bad ? 3 : 0,
          message: bad ? "ping timed out" : "",
        };
      });
    const file = gatewayHealthPath(d.data.stateDir);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify({ updated_at: probeAt, servers }));
  }

  /** List calls over a simulated idle minute: health writes every 5 s (probe times only), one resync. */
  async function idleMinuteListCalls(users: number): Promise<number> {
    const spec: Record<string, string[]> = {};
    for (let i = 0; i < users; i++) spec[`u${i}`] = ["a", "b"];
    const d = await start(await tree(spec), { env: { MCP_PORTAL_GATEWAY: "on" } });
    await writeHealth(d, "2026-11-30T00:00:00.000Z");
    await d.daemon.controller.notifyHealthChanged();
    await d.daemon.controller.idle();
    d.runtime.resetCalls();
    for (let tick = 1; tick <= 12; tick++) {
      await writeHealth(d, `2026-11-30T00:00:${String(tick * 5).padStart(2, "0")}.000Z`);
      await d.daemon.controller.notifyHealthChanged();
      await d.daemon.controller.idle();
    }
    await resync(d);
    return d.runtime.callCount("container_list", "network_list", "volume_list");
  }

  it("costs the same engine list calls over an idle minute at 10 and at 40 users (one resync's 3)", async () => {
    const ten = await idleMinuteListCalls(10);
    const forty = await idleMinuteListCalls(40);
    expect(ten).toBe(3);
    expect(forty).toBe(ten);
  });

  it("re-evaluates a user whose server's health verdict changed from the kept listing, with no engine call", async () => {
    const d = await start(await tree({ alice: ["a"], bob: ["a"] }), { env: { MCP_PORTAL_GATEWAY: "on" } });
    await writeHealth(d, "2026-11-30T00:00:00.000Z");
    await d.daemon.controller.notifyHealthChanged();
    await d.daemon.controller.idle();
    expect((await status(d, "alice")).phase).toBe("Ready");
    d.runtime.resetCalls();
    await writeHealth(d, "2026-11-30T00:00:05.000Z", "alice/a");
    await d.daemon.controller.notifyHealthChanged();
    await d.daemon.controller.idle();
    expect((await status(d, "alice")).servers[0]).toMatchObject({ phase: "Unhealthy", health: "Unhealthy" });
    expect((await status(d, "bob")).phase).toBe("Ready");
    expect(d.runtime.callCount()).toBe(0);
  });
});

describe("resync from the listing events keep current", () => {
  const LISTS = ["container_list", "network_list", "volume_list"] as const;

  async function resyncsBy(d: MemoryDaemon, listing: string): Promise<number> {
    const metric = await d.daemon.metrics.resyncsTotal.get();
    return metric.values.find((v) => v.labels.listing === listing)?.value ?? 0;
  }

  async function fullResyncs(d: MemoryDaemon): Promise<number> {
    const metric = await d.daemon.metrics.resyncsTotal.get();
    return metric.values.filter((v) => v.labels.listing !== "kept").reduce((sum, v) => sum + v.value, 0);
  }

  /** Lets the in-memory engine's events reach the controller. */
  const events = () => new Promise((resolve) => setTimeout(resolve, 20));

  /** Converged, then resynced until a resync lists nothing: a settled fleet. */
  async function settled(data: TestDataDir, extra: Parameters<typeof memoryDaemon>[0] = {}) {
    const d = await start(data, extra);
    await events();
    await resync(d);
    await resync(d);
    await events();
    return d;
  }

  it("a settled fleet's resync makes no engine call; everything is listed again every MCP_PORTAL_RELIST_SECONDS", async () => {
    const d = await settled(await tree({ alice: ["a", "b"], bob: ["c"] }), {
      env: { MCP_PORTAL_RELIST_SECONDS: "2" },
    });
    d.runtime.resetCalls();
    const kept = await resyncsBy(d, "kept");
    await resync(d);
    expect(d.runtime.callCount()).toBe(0);
    expect(await resyncsBy(d, "kept")).toBe(kept + 1);
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    await resync(d);
    expect(d.runtime.callCount(...LISTS)).toBe(3);
    expect(await resyncsBy(d, "interval")).toBe(1);
  });

  it("a container made out of band with a user's labels is removed by the next resync, which lists that user only", async () => {
    const d = await settled(await tree({ alice: ["a"], bob: ["a"] }));
    d.runtime.addForeignContainer("mcp-alice-rogue", {
      ...ownerLabels("unit", "alice"),
      [LABELS.serverId]: "rogue",
    });
    await events();
    const listed: string[][] = [];
    const listContainers = d.runtime.listContainers.bind(d.runtime);
    d.runtime.listContainers = (filters) => {
      listed.push([...filters]);
      return listContainers(filters);
    };
    const full = await fullResyncs(d);
    await resync(d);
    expect(await fullResyncs(d)).toBe(full);
    expect([...d.runtime.containers.values()].some((c) => c.name === "mcp-alice-rogue")).toBe(false);
    // Only alice's own listings (before and after the removal); bob's kept slice was trusted.
    expect(listed.length).toBeGreaterThan(0);
    for (const filters of listed) expect(filters).toContain(`${LABELS.userId}=alice`);
    expect(runningServers(d.runtime)).toEqual(["alice/a", "bob/a"]);
  });

  it("a server started out of band is seen by the next resync (its start event made alice's slice stale)", async () => {
    const d = await settled(await tree({ alice: ["a"] }));
    const [a] = containersOf(d.runtime, "alice", "a");
    // Stopped behind the controller's back without an event reaching it, then started again: only the start
    // event tells. The kept slice says running all along; the point is that it is not trusted.
    d.runtime.resetCalls();
    d.runtime.startContainerExternally(a!.id);
    d.runtime.containers.get(a!.id)!.state = "exited";
    d.runtime.startContainerExternally(a!.id);
    await events();
    await resync(d);
    expect(d.runtime.callCount(...LISTS)).toBe(3);
    expect(await resyncsBy(d, "kept")).toBeGreaterThan(0);
  });

  it("lists everything after a network or volume event and after the event stream was lost", async () => {
    const d = await settled(await tree({ alice: ["a"] }));
    const invalidated = await resyncsBy(d, "invalidated");
    d.runtime.addForeignNetwork("someone-else", "10.250.0.0/24");
    await events();
    await resync(d);
    expect(await resyncsBy(d, "invalidated")).toBe(invalidated + 1);
    d.runtime.resetCalls();
    await resync(d);
    expect(d.runtime.callCount()).toBe(0);
    // Volumes come on the same stream as networks.
    d.runtime.addForeignVolume("someone-elses-data");
    await events();
    await resync(d);
    expect(await resyncsBy(d, "invalidated")).toBe(invalidated + 2);

    const full = await fullResyncs(d);
    d.runtime.stopEngine();
    await events();
    d.runtime.startEngine();
    await resync(d);
    expect(await fullResyncs(d)).toBe(full + 1);
  });

  it("does not trust a listing made before the engine had the event subscriptions", async () => {
    // The engine registers the subscriptions late (a slow answer): a change between the listing and then is in
    // neither, so the resync after they are registered lists everything.
    const late: (() => void)[] = [];
    class LateSubscriptions extends MemoryRuntime {
      override events(filter: EventFilter, signal: AbortSignal, onSubscribed?: () => void) {
        return super.events(filter, signal, () => onSubscribed && late.push(onSubscribed));
      }
    }
    const d = await settled(await tree({ alice: ["a"] }), { runtime: new LateSubscriptions() });
    d.runtime.resetCalls();
    await resync(d);
    expect(d.runtime.callCount()).toBe(0);
    // Two streams: containers, and networks with volumes.
    expect(late.length).toBe(2);
    for (const subscribed of late) subscribed();
    const invalidated = await resyncsBy(d, "invalidated");
    await resync(d);
    expect(await resyncsBy(d, "invalidated")).toBe(invalidated + 1);
    expect(d.runtime.callCount("container_list", "network_list", "volume_list")).toBe(3);
  });

  it("lists everything when more users are stale than one listing each is worth", async () => {
    const users: Record<string, string[]> = {};
    for (let i = 0; i < 12; i++) users[`u${i}`] = ["a"];
    const d = await settled(await tree(users));
    for (let i = 0; i < 9; i++)
      d.runtime.addForeignContainer(`mcp-u${i}-extra`, {
        ...ownerLabels("unit", `u${i}`),
        [LABELS.serverId]: "x",
      });
    await events();
    d.runtime.resetCalls();
    await resync(d);
    expect(await resyncsBy(d, "stale-users")).toBe(1);
    expect(d.runtime.callCount(...LISTS)).toBeGreaterThanOrEqual(3);
    expect(containersOf(d.runtime, "u0", "x")).toEqual([]);
  });

  it("lists at every resync on a backend whose events miss changes (Swarm), and with MCP_PORTAL_RELIST_SECONDS=0", async () => {
    const swarmLike = await settled(await tree({ alice: ["a"] }), {
      runtimeOptions: { completeEvents: false },
    });
    swarmLike.runtime.resetCalls();
    await resync(swarmLike);
    expect(swarmLike.runtime.callCount(...LISTS)).toBe(3);
    expect(await resyncsBy(swarmLike, "backend")).toBeGreaterThan(0);
    expect(await resyncsBy(swarmLike, "kept")).toBe(0);

    const always = await settled(await tree({ alice: ["a"] }), { env: { MCP_PORTAL_RELIST_SECONDS: "0" } });
    always.runtime.resetCalls();
    await resync(always);
    expect(always.runtime.callCount(...LISTS)).toBe(3);
    expect(await resyncsBy(always, "kept")).toBe(0);
  });
});

describe("volumes: owners checked, old names adopted", () => {
  it("never mounts a volume of the right name that someone else owns: VolumeConflict, volume untouched", async () => {
    const data = await tree({ alice: ["a"] });
    const runtime = new MemoryRuntime();
    const dataVolume = volumeName("unit", "alice", "data", "");
    runtime.addForeignVolume(dataVolume, { [LABELS.userId]: "mallory", owner: "someone-else" });
    const d = await start(data, { runtime });
    expect((await status(d, "alice")).servers[0]).toMatchObject({
      phase: "Blocked",
      reason: "VolumeConflict",
    });
    expect(containersOf(runtime, "alice")).toEqual([]);
    expect(runtime.volumes.get(dataVolume)?.labels).toEqual({
      [LABELS.userId]: "mallory",
      owner: "someone-else",
    });
  });

  it("adopts a user's volumes by their labels whatever their name: no new volume, the old data mounted", async () => {
    const data = await tree({ alice: ["a"] });
    const runtime = new MemoryRuntime();
    const owner = { ...ownerLabels("unit", "alice") };
    for (const area of ["data", "cache"])
      runtime.addForeignVolume(`mcp-alice-${area}-0a1b2c`, {
        ...owner,
        [LABELS.volumeArea]: area,
        [LABELS.volumePath]: "",
      });
    const d = await start(data, { runtime });
    const [container] = containersOf(runtime, "alice", "a");
    expect(container!.mounts.map((m) => m.volumeName).sort()).toEqual([
      "mcp-alice-cache-0a1b2c",
      "mcp-alice-data-0a1b2c",
    ]);
    expect([...runtime.volumes.keys()].sort()).toEqual(["mcp-alice-cache-0a1b2c", "mcp-alice-data-0a1b2c"]);
    expect(runtime.callCount("volume_create")).toBe(0);
    expect((await status(d, "alice")).phase).toBe("Ready");
  });
});

describe("a user directory that is a link", () => {
  it("is a problem of that user, never a deleted user: a dangling link removes nothing", async () => {
    const data = await tree({ alice: ["a", "b"], bob: ["a"] });
    const d = await start(data);
    await rename(path.join(data.root, "users/alice"), path.join(data.root, "alice-away"));
    await symlink("/nowhere-at-all", path.join(data.root, "users/alice"));
    d.daemon.controller.notifyDataChange({
      scope: "user",
      userId: "alice",
      file: "users/alice",
      event: "change",
    });
    await resync(d);
    expect(containersOf(d.runtime, "alice")).toHaveLength(2);
    const s = await status(d, "alice");
    expect(s.errors[0]).toMatchObject({ file: "users/alice" });
    expect(s.errors[0]!.message).toMatch(/link/i);
  });
});
