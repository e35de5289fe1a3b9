// `plan` on the in-memory engine: the same decision the loop makes, without Docker. A controller converges a
// tree, then `plan` is asked about changes to it.
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { computePlan, formatPlan } from "../../../src/commands/plan.js";
import { loadConfig } from "../../../src/config.js";
import { TestDataDir } from "../../helpers/data-dir.js";
import { TextSink } from "../../helpers/cli-io.js";
import {
  type MemoryDaemon,
  disposeMemoryDaemon,
  memServer,
  memoryDaemon,
} from "../../helpers/memory-daemon.js";

const open: MemoryDaemon[] = [];
afterEach(async () => {
  for (const d of open.splice(0)) await disposeMemoryDaemon(d);
});

async function converged(): Promise<MemoryDaemon> {
  const data = await TestDataDir.create();
  await data.baseCatalog("base", [memServer("a"), memServer("b")]);
  await data.enable("alice", ["a", "b"]);
  await data.enable("bob", ["a"]);
  const d = await memoryDaemon({ data });
  open.push(d);
  return d;
}

async function plan(d: MemoryDaemon, user?: string, extra: Record<string, string> = {}) {
  const env = {
    MCP_PORTAL_DATA_DIR: d.data.root,
    MCP_PORTAL_INSTALLATION: "unit",
    MCP_PORTAL_GATEWAY: "off",
  };
  const io = { stdin: Readable.from([]), stdout: new TextSink(), stderr: new TextSink(), env };
  const config = loadConfig({
    ...env,
    MCP_PORTAL_PORT_RANGE_START: "20000",
    MCP_PORTAL_PORT_RANGE_END: "29999",
    MCP_PORTAL_PORTS_PER_USER: "10",
    ...extra,
  });
  return computePlan({ config, user, output: "json" }, io, d.runtime);
}

describe("plan on the in-memory engine", () => {
  it("is in sync on a converged tree and makes no mutating call", async () => {
    const d = await converged();
    d.runtime.resetCalls();
    const view = await plan(d);
    expect(view.in_sync).toBe(true);
    expect(view.version).toBe(2);
    expect(d.runtime.callCount()).toBe(
      d.runtime.callCount("ping", "container_list", "network_list", "volume_list"),
    );
  });

  it("counts what a suspended user holds back instead of 0", async () => {
    const d = await converged();
    await d.data.enable("alice", ["a"], { suspend: true });
    const view = await plan(d, "alice");
    const alice = view.users[0]!;
    expect(alice).toMatchObject({ suspended: true, in_sync: true, steps: [] });
    // Disabling b would stop and remove its container: two engine calls held back.
    expect(alice.held_steps).toBe(2);
    expect(formatPlan(view)).toContain("alice: suspended, nothing changes (2 step(s) held back)");
  });

  it("warns when more users need a new port block or subnet than the pools have free, and names the pool", async () => {
    const d = await converged();
    for (const user of ["carol", "dave", "erin"]) await d.data.enable(user, ["a"]);
    // alice and bob hold 20000-20009 and 20010-20019 and the only two /27s of 10.199.0.0/26.
    const view = await plan(d, undefined, {
      MCP_PORTAL_PORT_RANGE_END: "20039",
      MCP_PORTAL_PORT_EXCLUDE: "",
      MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "10.199.0.0/26",
    });
    expect(view.warnings.slice(0, 2)).toEqual([
      '3 users need a new port block, but only 2 are free (blocks of 10 ports in 20000-20039): 1 would stay Stalled (PortPoolExhausted); widen MCP_PORTAL_PORT_RANGE_START/_END or lower MCP_PORTAL_PORTS_PER_USER (README, "Capacity")',
      '2 users need a new subnet, but only 0 are free (/27 subnets of 10.199.0.0/26): 2 would stay Stalled (SubnetPoolExhausted); widen MCP_PORTAL_USER_NETWORK_SUBNET_BASE or raise MCP_PORTAL_USER_NETWORK_SUBNET_SIZE (README, "Capacity")',
    ]);
    const blocked = view.users.filter((u) => u.blocked_reason);
    expect(blocked.map((u) => u.user_id)).toEqual(["erin"]);
    expect(blocked[0]?.blocked_reason).toBe(
      "PortPoolExhausted: no free port block left: all 4 blocks of 10 ports in 20000-20039 are held; widen " +
        "MCP_PORTAL_PORT_RANGE_START/_END or lower MCP_PORTAL_PORTS_PER_USER (both apply to new users; existing " +
        "blocks stay as they are)",
    );
    expect(formatPlan(view)).toContain("warning: 3 users need a new port block, but only 2 are free");
    // Pools with room: no word.
    const roomy = await plan(d);
    expect(roomy.warnings.join("\n")).not.toMatch(/need a new (port block|subnet)/);
  });

  it("counts a restricted server's egress network as a second subnet the user needs", async () => {
    const data = await TestDataDir.create();
    await data.baseCatalog("base", [memServer("a"), memServer("sealed", { egress: { mode: "none" } })]);
    await data.enable("alice", ["a"]);
    const d = await memoryDaemon({ data });
    open.push(d);
    // alice holds the first /27 of a /26: one is free. carol needs her network and her egress network.
    await d.data.enable("carol", ["a", "sealed"]);
    const pools = { MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "10.199.0.0/26" };
    const view = await plan(d, undefined, pools);
    expect(view.warnings).toContain(
      '2 new subnets are needed (1 of them egress networks), but only 1 are free (/27 subnets of 10.199.0.0/26): 1 would stay Stalled (SubnetPoolExhausted); widen MCP_PORTAL_USER_NETWORK_SUBNET_BASE or raise MCP_PORTAL_USER_NETWORK_SUBNET_SIZE (README, "Capacity")',
    );
    // Without the restricted server one subnet does: no word.
    await d.data.enable("carol", ["a"]);
    expect((await plan(d, undefined, pools)).warnings.join("\n")).not.toMatch(/subnet/);
  });

  it("is in sync after tool policies and rate limits change: they are no part of any container's spec", async () => {
    const d = await converged();
    await d.data.enable("alice", [
      { id: "a", tools: { allow: ["echo", "get_*"], deny: ["get_secret"] } },
      "b",
    ]);
    await d.data.policy({
      server_tools: { b: { deny: ["delete_*"] } },
      rate_limits: { per_user: { requests: 10, window_seconds: 60 } },
    });
    d.runtime.resetCalls();
    const view = await plan(d);
    expect(view.in_sync).toBe(true);
    expect(view.users.flatMap((u) => u.steps)).toEqual([]);
    expect(d.runtime.callCount()).toBe(
      d.runtime.callCount("ping", "container_list", "network_list", "volume_list"),
    );
  });

  it("names the mass-prune guard when a run would remove most containers", async () => {
    const d = await converged();
    await d.data.removeUser("alice");
    await d.data.removeUser("bob");
    const view = await plan(d, undefined, { MCP_PORTAL_MASS_PRUNE_MIN: "1" });
    expect(view.users.every((u) => u.deleted)).toBe(true);
    expect(view.warnings.join("\n")).toContain("the mass-prune guard would trip");
  });
});
