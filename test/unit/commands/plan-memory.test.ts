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

  it("names the mass-prune guard when a run would remove most containers", async () => {
    const d = await converged();
    await d.data.removeUser("alice");
    await d.data.removeUser("bob");
    const view = await plan(d, undefined, { MCP_PORTAL_MASS_PRUNE_MIN: "1" });
    expect(view.users.every((u) => u.deleted)).toBe(true);
    expect(view.warnings.join("\n")).toContain("the mass-prune guard would trip");
  });
});
