// Port blocks and subnets end to end on the in-memory engine: the defaults hold more users than 0.1's did, an
// installation made with other sizes keeps every container when it moves to the defaults, and a pool that runs
// out (or a user's full block) is named in status and metrics.
import { readFile } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { statusFilePath, UserStatus } from "../../../src/contracts/status-file.js";
import { parseIpv4Cidr, overlaps } from "../../../src/desired/subnets.js";
import { LABELS, parsePortBlockLabel } from "../../../src/labels.js";
import { TestDataDir } from "../../helpers/data-dir.js";
import {
  type MemoryDaemon,
  disposeMemoryDaemon,
  memServer,
  memoryDaemon,
  runningServers,
} from "../../helpers/memory-daemon.js";

const open: MemoryDaemon[] = [];
afterEach(async () => {
  for (const d of open.splice(0)) await disposeMemoryDaemon(d);
});

/** The helper's port settings dropped: the configuration's defaults apply. */
const DEFAULT_POOLS = {
  MCP_PORTAL_PORT_RANGE_START: undefined,
  MCP_PORTAL_PORT_RANGE_END: undefined,
  MCP_PORTAL_PORTS_PER_USER: undefined,
};

async function tree(users: number, servers: number): Promise<TestDataDir> {
  const data = await TestDataDir.create();
  const ids = Array.from({ length: servers }, (_, i) => `s${i}`);
  await data.baseCatalog(
    "base",
    ids.map((id) => memServer(id, { resources: { memory_mb: 16, cpu_shares: 16 } })),
  );
  for (let u = 0; u < users; u++) await data.enable(`u${String(u).padStart(3, "0")}`, ids);
  return data;
}

async function start(options: Parameters<typeof memoryDaemon>[0]): Promise<MemoryDaemon> {
  const d = await memoryDaemon(options);
  open.push(d);
  return d;
}

async function status(d: MemoryDaemon, userId: string): Promise<UserStatus> {
  return UserStatus.parse(JSON.parse(await readFile(statusFilePath(d.data.stateDir, userId), "utf8")));
}

async function gauge(d: MemoryDaemon, name: string): Promise<number | undefined> {
  return (await d.daemon.metrics.registry.getSingleMetric(name)?.get())?.values[0]?.value;
}

/** What must not change across an upgrade: every container, its port, every network, its subnet and label. */
function engineState(d: MemoryDaemon) {
  return {
    containers: [...d.runtime.containers.values()]
      .map((c) => ({
        user: c.labels[LABELS.userId],
        id: c.id,
        name: c.name,
        hostPort: c.labels[LABELS.hostPort],
        specHash: c.labels[LABELS.specHash],
        state: c.state,
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    networks: [...d.runtime.networks.values()]
      .map((n) => ({
        user: n.labels[LABELS.userId],
        id: n.id,
        name: n.name,
        subnets: n.subnets,
        block: n.labels[LABELS.portBlock],
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** Makes the networks' `port_block` labels what 0.1 wrote: the block start alone. */
function unsizeBlockLabels(runtime: MemoryDaemon["runtime"]): void {
  for (const network of runtime.networks.values()) {
    const labels = network.labels as Record<string, string>;
    labels[LABELS.portBlock] = String(parsePortBlockLabel(labels[LABELS.portBlock])!.start);
  }
}

describe("port and subnet pools on the in-memory engine", () => {
  it("converges 300 users x 5 servers on the default pools (0.1's held 100 users), all Running", async () => {
    const d = await start({ data: await tree(300, 5), env: DEFAULT_POOLS });
    expect(d.daemon.config.portsPerUser).toBe(16);
    expect(runningServers(d.runtime)).toHaveLength(1500);
    const pool = parseIpv4Cidr("10.199.0.0/16")!;
    const blocks: { start: number; end: number }[] = [];
    for (const network of d.runtime.networks.values()) {
      const subnet = parseIpv4Cidr(network.subnets[0] ?? "");
      expect(subnet?.prefixLength).toBe(27);
      expect(overlaps(pool, subnet!)).toBe(true);
      const label = parsePortBlockLabel(network.labels[LABELS.portBlock]);
      expect(label).toMatchObject({ size: 16, legacy: false });
      blocks.push({ start: label!.start, end: label!.start + 15 });
    }
    expect(blocks).toHaveLength(300);
    blocks.sort((a, b) => a.start - b.start);
    for (let i = 1; i < blocks.length; i++) expect(blocks[i]!.start).toBeGreaterThan(blocks[i - 1]!.end);
    expect(blocks[0]!.start).toBeGreaterThanOrEqual(10000);
    expect(blocks[blocks.length - 1]!.end).toBeLessThanOrEqual(29999);
    for (const c of d.runtime.containers.values()) {
      const port = Number(c.labels[LABELS.hostPort]);
      const block = blocks.find((b) => b.start <= port && port <= b.end);
      expect(block, `${c.name} port ${port}`).toBeDefined();
    }
    expect((await status(d, "u299")).phase).toBe("Ready");
    expect(await gauge(d, "mcp_portal_port_pool_allocated")).toBe(300 * 16);
    expect(await gauge(d, "mcp_portal_port_pool_capacity")).toBe(1231 * 16);
    expect(await gauge(d, "mcp_portal_subnet_pool_allocated")).toBe(300);
    expect(await gauge(d, "mcp_portal_subnet_pool_capacity")).toBe(2048);
  }, 120_000);

  it("upgrade: blocks of 100 with unsized labels and /24s stay as they are on the defaults; new users get new ones", async () => {
    const data = await tree(4, 3);
    // 0.1's defaults: blocks of 100 from 20000, /24s from 172.20.0.0/16.
    const old = await start({
      data,
      env: {
        MCP_PORTAL_PORT_RANGE_START: "20000",
        MCP_PORTAL_PORT_RANGE_END: "29999",
        MCP_PORTAL_PORTS_PER_USER: "100",
        MCP_PORTAL_PORT_EXCLUDE: "",
        MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "172.20.0.0/16",
        MCP_PORTAL_USER_NETWORK_SUBNET_SIZE: "24",
      },
    });
    expect(runningServers(old.runtime)).toHaveLength(12);
    unsizeBlockLabels(old.runtime);
    const before = engineState(old);
    expect(before.networks.map((n) => n.block).sort()).toEqual(["20000", "20100", "20200", "20300"]);
    expect(before.networks.map((n) => n.subnets[0]).sort()).toEqual([
      "172.20.0.0/24",
      "172.20.1.0/24",
      "172.20.2.0/24",
      "172.20.3.0/24",
    ]);
    await old.stop();
    open.splice(open.indexOf(old), 1);

    await data.enable("new", ["s0", "s1"]);
    old.runtime.resetCalls();
    const d = await start({ data, runtime: old.runtime, env: DEFAULT_POOLS });
    const after = engineState(d);
    expect(after.containers.filter((c) => c.user !== "new")).toEqual(before.containers);
    expect(after.networks.filter((n) => n.user !== "new")).toEqual(before.networks);
    for (const op of ["container_create", "container_remove", "container_stop", "network_remove"] as const)
      expect(d.runtime.calls.get(op) ?? 0, op).toBe(op === "container_create" ? 2 : 0);
    for (const network of before.networks) {
      const start = Number(network.block);
      const user = network.user!;
      expect((await status(d, user)).port_block).toEqual({ start, end: start + 99 });
      // Without a policy value max_ports is the user's own block, as before the upgrade.
      expect((await status(d, user)).resources?.limits.max_ports).toBe(100);
    }

    const fresh = after.networks.find((n) => n.user === "new")!;
    expect(fresh.block).toBe("10000:16");
    expect(fresh.subnets).toEqual(["10.199.0.0/27"]);
    expect(runningServers(d.runtime)).toContain("new/s1");
    expect((await status(d, "new")).port_block).toEqual({ start: 10000, end: 10015 });
  });

  // Unsized labels of an installation that ran with blocks of 10 are 10 apart: each legacy block ends where the
  // next begins, so none loses its ports to a neighbour's 100.
  it("upgrade: unsized blocks of 10, back to back, keep every container on the defaults", async () => {
    const data = await tree(4, 3);
    const old = await start({ data, env: { MCP_PORTAL_PORT_EXCLUDE: "" } });
    expect(old.daemon.config.portsPerUser).toBe(10);
    unsizeBlockLabels(old.runtime);
    const before = engineState(old);
    expect(before.networks.map((n) => n.block).sort()).toEqual(["20000", "20010", "20020", "20030"]);
    await old.stop();
    open.splice(open.indexOf(old), 1);

    old.runtime.resetCalls();
    const d = await start({ data, runtime: old.runtime, env: DEFAULT_POOLS });
    expect(engineState(d)).toEqual(before);
    expect(d.runtime.callCount("container_create", "container_remove", "network_create")).toBe(0);
    const blocks = await Promise.all(before.networks.map(async (n) => (await status(d, n.user!)).port_block));
    expect(blocks.sort((a, b) => a!.start - b!.start)).toEqual([
      { start: 20000, end: 20009 },
      { start: 20010, end: 20019 },
      { start: 20020, end: 20029 },
      { start: 20030, end: 20129 },
    ]);
  });

  it("a user the port pool cannot take is Stalled with PortPoolExhausted naming the pool, until it grows", async () => {
    const data = await tree(3, 1);
    const small = {
      MCP_PORTAL_PORT_RANGE_START: "20000",
      MCP_PORTAL_PORT_RANGE_END: "20031",
      MCP_PORTAL_PORTS_PER_USER: undefined,
      MCP_PORTAL_PORT_EXCLUDE: "",
    };
    const d = await start({ data, env: small });
    expect(runningServers(d.runtime)).toHaveLength(2);
    // Users are reconciled concurrently: whichever asked last found the pool empty.
    const users = ["u000", "u001", "u002"];
    const last = users.find((u) => !runningServers(d.runtime).includes(`${u}/s0`))!;
    const stalled = await status(d, last);
    expect(stalled.phase).toBe("Stalled");
    expect(stalled.conditions.find((c) => c.type === "Stalled")).toMatchObject({
      status: "True",
      reason: "PortPoolExhausted",
      message:
        "no free port block left: all 2 blocks of 16 ports in 20000-20031 are held; widen " +
        "MCP_PORTAL_PORT_RANGE_START/_END or lower MCP_PORTAL_PORTS_PER_USER (both apply to new users; " +
        "existing blocks stay as they are)",
    });
    expect(await gauge(d, "mcp_portal_port_pool_allocated")).toBe(32);
    expect(await gauge(d, "mcp_portal_port_pool_capacity")).toBe(32);
    await d.stop();
    open.splice(open.indexOf(d), 1);

    const grown = await start({
      data,
      runtime: d.runtime,
      env: { ...small, MCP_PORTAL_PORT_RANGE_END: "20047" },
    });
    expect(runningServers(grown.runtime)).toEqual(["u000/s0", "u001/s0", "u002/s0"]);
    expect((await status(grown, last)).phase).toBe("Ready");
  });

  it("a user the subnet pool cannot take is Stalled with SubnetPoolExhausted naming the pool", async () => {
    const d = await start({
      data: await tree(3, 1),
      env: { MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "10.9.0.0/26" },
    });
    expect(runningServers(d.runtime)).toHaveLength(2);
    const last = ["u000", "u001", "u002"].find((u) => !runningServers(d.runtime).includes(`${u}/s0`))!;
    const stalled = await status(d, last);
    expect(stalled.phase).toBe("Stalled");
    expect(stalled.conditions.find((c) => c.type === "Stalled")).toMatchObject({
      reason: "SubnetPoolExhausted",
      message: expect.stringContaining("all 2 /27 subnets of 10.9.0.0/26 are taken") as unknown,
    });
    expect(await gauge(d, "mcp_portal_subnet_pool_allocated")).toBe(2);
    expect(await gauge(d, "mcp_portal_subnet_pool_capacity")).toBe(2);
  });

  it("a user whose policy max_ports exceeds the block gets PortBlockFull; within the block it is LimitExceeded", async () => {
    const data = await tree(0, 4);
    await data.enable("wide", ["s0", "s1", "s2", "s3"]);
    await data.enable("narrow", ["s0", "s1", "s2", "s3"]);
    await data.policy({
      default_limits: { max_containers: 10 },
      users: { wide: { limits: { max_ports: 5 } }, narrow: { limits: { max_ports: 2 } } },
    });
    const d = await start({ data, env: { MCP_PORTAL_PORTS_PER_USER: "3" } });
    const wide = await status(d, "wide");
    expect(wide.servers.map((s) => [s.id, s.phase, s.reason])).toEqual([
      ["s0", "Running", undefined],
      ["s1", "Running", undefined],
      ["s2", "Running", undefined],
      ["s3", "Blocked", "PortBlockFull"],
    ]);
    expect(wide.servers[3]?.message).toBe(
      `every port of the user's block ${wide.port_block!.start}-${wide.port_block!.end} (3 ports) is taken; ` +
        `policy.json gives max_ports 5, more than the block holds: a block keeps the size it was made with ` +
        `(README, "Capacity": how to move a user to a larger block)`,
    );
    const narrow = await status(d, "narrow");
    expect(narrow.servers.map((s) => [s.id, s.reason])).toEqual([
      ["s0", undefined],
      ["s1", undefined],
      ["s2", "LimitExceeded"],
      ["s3", "LimitExceeded"],
    ]);
    expect(narrow.servers[2]?.message).toBe("max_ports 2 reached");
  });
});
