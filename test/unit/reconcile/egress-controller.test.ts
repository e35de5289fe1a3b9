// Network egress in the controller on the in-memory engine: the user's egress proxy is planned, created, labelled,
// left out of user limits and of the prune guard's totals, and removed with the user's last restricted server;
// its denial lines become audit lines and mcp_portal_egress_denied_total, once each across restarts; an egress
// network is a second subnet in the pool gauges.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { UserStatus, statusFilePath } from "../../../src/contracts/status-file.js";
import {
  EGRESS_PROXY_ROLE,
  egressNetworkName,
  egressProxyName,
} from "../../../src/desired/egress-desired.js";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import { RuntimeError } from "../../../src/docker/runtime.js";
import { LABELS } from "../../../src/labels.js";
import type { AuditEventInput, AuditWriter } from "../../../src/observability/audit.js";
import { createMetrics } from "../../../src/observability/metrics.js";
import { DRAIN_MAX_READS, EgressDenialCollector } from "../../../src/reconcile/egress-denial-collector.js";
import { DENIAL_CURSOR_FILE, linesAfter, parseDenialLine } from "../../../src/reconcile/egress-denials.js";
import { Observer } from "../../../src/reconcile/observer.js";
import { planUser } from "../../../src/reconcile/plan.js";
import { TestDataDir } from "../../helpers/data-dir.js";
import {
  type MemoryDaemon,
  containersOf,
  disposeMemoryDaemon,
  memServer,
  memoryDaemon,
} from "../../helpers/memory-daemon.js";
import { capturedLogger } from "../../helpers/logs.js";

const open: MemoryDaemon[] = [];
afterEach(async () => {
  for (const d of open.splice(0)) await disposeMemoryDaemon(d);
});

const ALLOW = { mode: "allow", allow_hosts: ["api.example.com:443"] };

async function egressTree(enabled: string[], limits: Record<string, unknown> = {}): Promise<TestDataDir> {
  const data = await TestDataDir.create();
  await data.baseCatalog("base", [
    memServer("open"),
    memServer("fetch", { egress: ALLOW }),
    memServer("sealed", { egress: { mode: "none" } }),
  ]);
  await data.policy({ default_limits: limits });
  await data.enable("alice", enabled);
  return data;
}

async function start(data: TestDataDir, runtime = new MemoryRuntime()): Promise<MemoryDaemon> {
  const d = await memoryDaemon({ data, runtime, env: { MCP_PORTAL_EGRESS_DENIAL_POLL_SECONDS: "3600" } });
  open.push(d);
  return d;
}

async function status(d: MemoryDaemon, userId: string): Promise<UserStatus> {
  return UserStatus.parse(JSON.parse(await readFile(statusFilePath(d.data.stateDir, userId), "utf8")));
}

function proxiesOf(runtime: MemoryRuntime, userId: string) {
  return containersOf(runtime, userId).filter((c) => c.labels[LABELS.role] === EGRESS_PROXY_ROLE);
}

async function gauge(d: MemoryDaemon, name: string): Promise<number> {
  const metric = (await d.daemon.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values[0]?.value ?? Number.NaN;
}

describe("the egress proxy as a controller workload", () => {
  it("is created and labelled, holds a second subnet, counts toward no limit and no prune total", async () => {
    // Three servers and a limit of three containers: the proxy would be a fourth.
    const d = await start(await egressTree(["open", "fetch", "sealed"], { max_containers: 3 }));
    const proxies = proxiesOf(d.runtime, "alice");
    expect(proxies).toHaveLength(1);
    const proxy = proxies[0]!;
    expect(proxy.name).toBe(egressProxyName("unit", "alice"));
    expect(proxy.state).toBe("running");
    expect(proxy.labels[LABELS.serverId]).toBeUndefined();
    expect(proxy.labels[LABELS.userId]).toBe("alice");
    expect(proxy.labels[LABELS.installation]).toBe("unit");
    // It joins the user's network and the internal egress network, at a fixed address there.
    const egressNet = egressNetworkName("unit", "alice");
    expect(d.runtime.isInternalNetwork(egressNet)).toBe(true);
    expect(Object.keys(d.runtime.placementOf(proxy.name)?.addressing?.addresses ?? {})).toEqual([egressNet]);

    const s = await status(d, "alice");
    expect(s.servers.map((x) => [x.id, x.phase, x.egress])).toEqual([
      ["open", "Running", "unrestricted"],
      ["fetch", "Running", "allow api.example.com:443"],
      ["sealed", "Running", "none"],
    ]);
    // The prune guard measures against servers' containers only, and so does the managed-containers gauge.
    expect(d.daemon.controller.managedContainers).toBe(3);
    // Two subnets for one user: its network and its egress network.
    expect(await gauge(d, "mcp_portal_subnet_pool_allocated")).toBe(2);
  });

  it("plans the proxy's removal as no prune, and removes it and the egress network with the last restricted server", async () => {
    const data = await egressTree(["open", "fetch", "sealed"]);
    const d = await start(data);
    expect(proxiesOf(d.runtime, "alice")).toHaveLength(1);

    // What a plan says when the user is gone: the proxy's removal is not counted as a prune.
    const observed = await new Observer(d.runtime, "unit").user("alice", { fresh: true });
    const gone = planUser("alice", undefined, observed.observed);
    const removals = gone.steps.filter((s) => s.kind === "removeContainer");
    expect(removals.map((s) => [s.container.name, s.prune])).toEqual(
      expect.arrayContaining([[egressProxyName("unit", "alice"), false]]),
    );
    expect(removals.filter((s) => s.prune)).toHaveLength(3);

    await data.enable("alice", ["open", "sealed"]);
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    expect(proxiesOf(d.runtime, "alice")).toHaveLength(1);

    await data.enable("alice", ["open"]);
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    expect(proxiesOf(d.runtime, "alice")).toHaveLength(0);
    expect([...d.runtime.networks.values()].map((n) => n.name)).not.toContain(
      egressNetworkName("unit", "alice"),
    );
    expect(await gauge(d, "mcp_portal_subnet_pool_allocated")).toBe(1);
    expect(d.daemon.controller.managedContainers).toBe(1);
  });
});

describe("restricted egress on MCP_PORTAL_BACKEND=swarm", () => {
  it("is refused (Blocked, EgressUnsupported): no egress network, no proxy, never run unrestricted", async () => {
    const data = await egressTree(["open", "fetch", "sealed"]);
    const runtime = new MemoryRuntime({
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
    });
    const d = await memoryDaemon({
      data,
      runtime,
      env: { MCP_PORTAL_BACKEND: "swarm", MCP_PORTAL_SWARM_POLL_SECONDS: "3600" },
    });
    open.push(d);
    const s = await status(d, "alice");
    expect(s.servers.map((x) => [x.id, x.phase, x.reason])).toEqual([
      ["open", "Running", undefined],
      ["fetch", "Blocked", "EgressUnsupported"],
      ["sealed", "Blocked", "EgressUnsupported"],
    ]);
    expect(s.servers.find((x) => x.id === "sealed")?.message).toContain("restricted egress (none)");
    expect(containersOf(runtime, "alice").map((c) => c.labels[LABELS.serverId])).toEqual(["open"]);
    expect([...runtime.networks.values()].map((n) => n.name)).not.toContain(
      egressNetworkName("unit", "alice"),
    );
  });
});

/** An audit writer that keeps what it is given; `fail` makes the next writes fail. */
class MemoryAudit implements AuditWriter {
  readonly events: AuditEventInput[] = [];
  fail = false;
  write(event: AuditEventInput): Promise<boolean> {
    if (this.fail) return Promise.resolve(false);
    this.events.push(event);
    return Promise.resolve(true);
  }
}

function denial(server: string, destination: string, count: number, time: string, user = "alice"): string {
  return JSON.stringify({
    msg: "egress_denied",
    user,
    server,
    kind: destination.includes(":") ? "connect" : "dns",
    destination,
    reason: "not in the allow-list",
    count,
    window_seconds: 10,
    time,
  });
}

describe("denial lines: parsing and the cursor", () => {
  it("accepts the proxy's own user's lines, skips other lines, refuses what breaks the contract", () => {
    expect(
      parseDenialLine(denial("fetch", "evil.example:443", 3, "2026-11-30T10:00:10.000Z"), "alice"),
    ).toEqual(expect.objectContaining({ kind: "denial" }));
    expect(parseDenialLine(JSON.stringify({ msg: "egress proxy ready", servers: 2 }), "alice").kind).toBe(
      "other",
    );
    expect(parseDenialLine("not json", "alice").kind).toBe("other");
    expect(parseDenialLine(denial("fetch", "x:1", 0, "2026-11-30T10:00:10.000Z"), "alice").kind).toBe(
      "invalid",
    );
    expect(parseDenialLine(denial("fetch", "x:1", 1, "2026-11-30T10:00:10.000Z", "bob"), "alice").kind).toBe(
      "invalid",
    );
    const extra = JSON.stringify({
      ...JSON.parse(denial("fetch", "x:1", 1, "2026-11-30T10:00:10.000Z")),
      x: 1,
    });
    expect(parseDenialLine(extra, "alice").kind).toBe("invalid");
  });

  it("takes each line once, lines sharing the cursor's nanosecond included", () => {
    const t1 = "2026-11-30T10:00:00.000000001Z";
    const t2 = "2026-11-30T10:00:00.000000002Z";
    const lines = [
      { timestamp: t1, text: "a" },
      { timestamp: t2, text: "b" },
      { timestamp: t2, text: "c" },
    ];
    const first = linesAfter(lines.slice(0, 2), undefined);
    expect(first.fresh.map((l) => l.text)).toEqual(["a", "b"]);
    expect(first.cursor).toEqual({ last: t2, taken_at_last: 1 });
    // The engine's since is inclusive: it answers b again, then c.
    const second = linesAfter(lines.slice(1), first.cursor);
    expect(second.fresh.map((l) => l.text)).toEqual(["c"]);
    expect(second.cursor).toEqual({ last: t2, taken_at_last: 2 });
    expect(linesAfter(lines.slice(1), second.cursor).fresh).toEqual([]);
  });
});

/** A daemon with alice's proxy, and collectors on it that audit into memory and log warnings into `logs`. */
async function collectorSetUp() {
  const data = await egressTree(["fetch", "sealed"]);
  const d = await start(data);
  const proxy = proxiesOf(d.runtime, "alice")[0]!;
  const audit = new MemoryAudit();
  const registry = new Registry();
  const promMetrics = createMetrics(registry);
  const { logger, logs } = capturedLogger("warn");
  const collector = (maxBytes = 1024 * 1024) =>
    new EgressDenialCollector({
      runtime: d.runtime,
      audit,
      metrics: promMetrics,
      logger,
      stateDir: d.data.stateDir,
      installation: "unit",
      pollMs: 3_600_000,
      maxBytes,
    });
  const denied = async (kind: string) =>
    (await registry.getMetricsAsJSON())
      .find((m) => m.name === "mcp_portal_egress_denied_total")
      ?.values.find((v) => v.labels.kind === kind)?.value;
  return { d, proxy, audit, collector, denied, logs };
}

describe("denial lines into audit.log and mcp_portal_egress_denied_total", () => {
  it("audits each window once with server, destination, user, count and window, across a restart", async () => {
    const { d, proxy, audit, collector, denied } = await collectorSetUp();
    expect(await denied("connect")).toBe(0);
    d.runtime.writeLog(proxy.id, "2026-11-30T10:00:00.1Z", JSON.stringify({ msg: "egress proxy ready" }));
    d.runtime.writeLog(
      proxy.id,
      "2026-11-30T10:00:10.1Z",
      denial("fetch", "evil.example:443", 120, "2026-11-30T10:00:10.000Z"),
    );
    d.runtime.writeLog(
      proxy.id,
      "2026-11-30T10:00:10.2Z",
      denial("sealed", "leak.invalid", 4, "2026-11-30T10:00:10.000Z"),
    );
    const first = collector();
    expect(await first.pollOnce()).toEqual({ proxies: 1, denials: 2, invalid: 0 });
    expect(audit.events).toEqual([
      expect.objectContaining({
        event_type: "ACTION_BLOCKED",
        action: "egress_denied",
        user_id: "alice",
        resource: "fetch",
        result: "blocked",
        details: {
          server: "fetch",
          kind: "connect",
          destination: "evil.example:443",
          reason: "not in the allow-list",
          count: 120,
          window_seconds: 10,
          window_end: "2026-11-30T10:00:10.000Z",
          proxy: proxy.name,
        },
      }),
      expect.objectContaining({ resource: "sealed" }),
    ]);
    expect(audit.events[1]!.details).toEqual(expect.objectContaining({ kind: "dns", count: 4 }));
    expect(await denied("connect")).toBe(120);
    expect(await denied("dns")).toBe(4);
    // Nothing new: nothing written.
    expect((await first.pollOnce()).denials).toBe(0);

    // A restart: a new collector reads the cursor file and goes on after the last line, not from the start.
    const cursor = JSON.parse(
      await readFile(path.join(d.data.stateDir, DENIAL_CURSOR_FILE), "utf8"),
    ) as unknown;
    expect(cursor).toEqual({
      version: 1,
      proxies: { [proxy.id]: { last: "2026-11-30T10:00:10.2Z", taken_at_last: 1 } },
    });
    d.runtime.writeLog(
      proxy.id,
      "2026-11-30T10:00:20.1Z",
      denial("fetch", "evil.example:443", 7, "2026-11-30T10:00:20.000Z"),
    );
    expect((await collector().pollOnce()).denials).toBe(1);
    expect(audit.events).toHaveLength(3);
    expect(audit.events[2]!.details).toEqual(
      expect.objectContaining({ count: 7, window_end: "2026-11-30T10:00:20.000Z" }),
    );
    expect(await denied("connect")).toBe(127);
  });

  it("reads a bounded number of bytes per poll and loses nothing; a failed audit write is retried", async () => {
    const { d, proxy, audit, collector } = await collectorSetUp();
    for (let i = 0; i < 30; i++) {
      const t = `2026-11-30T10:01:${String(i).padStart(2, "0")}.000Z`;
      d.runtime.writeLog(proxy.id, t, denial("fetch", `h${i}.example:443`, 1, t));
    }
    const bounded = collector(4096);
    const polls: number[] = [];
    for (let i = 0; i < 20 && audit.events.length < 30; i++) polls.push((await bounded.pollOnce()).denials);
    expect(polls.length).toBeGreaterThan(1);
    expect(Math.max(...polls)).toBeLessThan(30);
    expect(audit.events.map((e) => (e.details as { destination: string }).destination)).toEqual(
      Array.from({ length: 30 }, (_, i) => `h${i}.example:443`),
    );

    const t = "2026-11-30T10:02:00.000Z";
    d.runtime.writeLog(proxy.id, t, denial("fetch", "late.example:443", 2, t));
    audit.fail = true;
    expect((await bounded.pollOnce()).denials).toBe(0);
    audit.fail = false;
    expect((await bounded.pollOnce()).denials).toBe(1);
    expect(audit.events).toHaveLength(31);
  });

  it("skips lines naming another user or breaking the contract, and forgets a removed proxy's cursor", async () => {
    const { d, proxy, audit, collector } = await collectorSetUp();
    const t = "2026-11-30T10:03:00.000Z";
    d.runtime.writeLog(proxy.id, t, denial("fetch", "x.example:443", 1, t, "bob"));
    d.runtime.writeLog(proxy.id, "2026-11-30T10:03:00.5Z", '{"msg":"egress_denied","user":"alice"}');
    const c = collector();
    expect(await c.pollOnce()).toEqual({ proxies: 1, denials: 0, invalid: 2 });
    expect(audit.events).toEqual([]);

    await d.data.enable("alice", []);
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    expect(await c.pollOnce()).toEqual({ proxies: 0, denials: 0, invalid: 0 });
    const cursor = JSON.parse(await readFile(path.join(d.data.stateDir, DENIAL_CURSOR_FILE), "utf8")) as {
      proxies: Record<string, unknown>;
    };
    expect(cursor.proxies).toEqual({});
  });

  it("refuses to start over when the cursor file is not valid (that would count windows twice)", async () => {
    const { d, audit, collector } = await collectorSetUp();
    await d.data.write(path.relative(d.data.root, path.join(d.data.stateDir, DENIAL_CURSOR_FILE)), "{");
    await expect(collector().pollOnce()).rejects.toThrow(/not a valid egress denial cursor/);
    expect(audit.events).toEqual([]);
  });
});

describe("a proxy's last window when the proxy goes", () => {
  async function auditLines(d: MemoryDaemon): Promise<Record<string, unknown>[]> {
    const text = await readFile(path.join(d.data.stateDir, "audit.log"), "utf8");
    return text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** The proxy writes its open window when SIGTERM arrives, as src/egress-proxy/main.ts does on stop. */
  function flushOnStop(d: MemoryDaemon, proxyId: string, line: string): void {
    const stop = d.runtime.stopContainer.bind(d.runtime);
    d.runtime.stopContainer = async (id, timeoutSeconds) => {
      await stop(id, timeoutSeconds);
      if (id === proxyId) d.runtime.writeLog(id, "2026-11-30T10:05:03.000Z", line);
    };
  }

  it("is audited and counted between the proxy's stop and its removal, when the last restricted server goes", async () => {
    const data = await egressTree(["open", "fetch"]);
    const d = await start(data);
    const proxy = proxiesOf(d.runtime, "alice")[0]!;
    flushOnStop(d, proxy.id, denial("fetch", "exfil.example:443", 9, "2026-11-30T10:05:03.000Z"));

    await data.enable("alice", ["open"]);
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    expect(proxiesOf(d.runtime, "alice")).toHaveLength(0);

    const denied = (await auditLines(d)).filter((l) => l.action === "egress_denied");
    expect(denied).toHaveLength(1);
    expect(denied[0]).toEqual(expect.objectContaining({ user_id: "alice", resource: "fetch" }));
    expect(denied[0]!.details).toEqual(
      expect.objectContaining({ destination: "exfil.example:443", count: 9, proxy: proxy.name }),
    );
    const metric = (await d.daemon.metrics.registry.getMetricsAsJSON()).find(
      (m) => m.name === "mcp_portal_egress_denied_total",
    );
    expect(metric?.values.find((v) => v.labels.kind === "connect")?.value).toBe(9);
  });

  it("is read before a policy change replaces the proxy", async () => {
    const data = await egressTree(["fetch"]);
    const d = await start(data);
    const proxy = proxiesOf(d.runtime, "alice")[0]!;
    flushOnStop(d, proxy.id, denial("fetch", "other.example:443", 2, "2026-11-30T10:05:03.000Z"));

    await data.baseCatalog("base", [
      memServer("open"),
      memServer("fetch", { egress: { mode: "allow", allow_hosts: ["other.example:443"] } }),
      memServer("sealed", { egress: { mode: "none" } }),
    ]);
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    const replaced = proxiesOf(d.runtime, "alice");
    expect(replaced).toHaveLength(1);
    expect(replaced[0]!.id).not.toBe(proxy.id);
    const denied = (await auditLines(d)).filter((l) => l.action === "egress_denied");
    expect(denied.map((l) => (l.details as { destination: string }).destination)).toEqual([
      "other.example:443",
    ]);
  });

  it("does not hold the removal when the proxy's log cannot be read: the lines are lost, and a warning says so", async () => {
    const data = await egressTree(["open", "fetch"]);
    const d = await start(data);
    const proxy = proxiesOf(d.runtime, "alice")[0]!;
    d.runtime.inject({
      operation: "container_logs",
      error: new RuntimeError("Unavailable", "log driver gone"),
      when: (id) => id === proxy.id,
      times: Number.POSITIVE_INFINITY,
    });
    await data.enable("alice", ["open"]);
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    expect(proxiesOf(d.runtime, "alice")).toHaveLength(0);
    expect(d.logged("could not be read before its removal")).toEqual([
      expect.objectContaining({ container: proxy.name }),
    ]);
  });

  it("reads a removed proxy's log past maxBytes, up to DRAIN_MAX_READS reads, and says when it gives up", async () => {
    const { d, proxy, audit, collector, logs } = await collectorSetUp();
    const write = (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        const t = `2026-11-30T11:${String(Math.floor(i / 60)).padStart(2, "0")}:${String(i % 60).padStart(2, "0")}.000Z`;
        d.runtime.writeLog(proxy.id, t, denial("fetch", `h${i}.example:443`, 1, t));
      }
    };
    write(0, 30);
    // One read holds about a dozen of these lines: the drain reads on until the log is done.
    expect((await collector(4096).drain(proxy.id, proxy.name, "alice")).denials).toBe(30);
    expect(audit.events).toHaveLength(30);

    write(30, 600);
    const bounded = await collector(1024).drain(proxy.id, proxy.name, "alice");
    expect(bounded.denials).toBeGreaterThan(DRAIN_MAX_READS);
    expect(bounded.denials).toBeLessThan(600);
    expect(audit.events).toHaveLength(30 + bounded.denials);
    expect(logs.join("")).toContain("the rest is lost");
  });

  it("a poll and a drain at once read each line once", async () => {
    const { d, proxy, audit, collector: newCollector } = await collectorSetUp();
    const collector = newCollector();
    const t = "2026-11-30T10:06:00.000Z";
    d.runtime.writeLog(proxy.id, t, denial("fetch", "once.example:443", 1, t));
    const [poll, drain] = await Promise.all([
      collector.pollOnce(),
      collector.drain(proxy.id, proxy.name, "alice"),
    ]);
    expect(poll.denials + drain.denials).toBe(1);
    expect(audit.events).toHaveLength(1);
  });
});
