// The reconcile core on the in-memory engine behaving as a Swarm (capabilities.inPlaceUpdate, nodes): a changed
// spec is one in-place update, users are placed on one node each and spread, a drained or failed node's users
// move, a moved user keeps its ports, and status shows node, url and the hardening Swarm cannot express.
import { readFile } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { statusFilePath, UserStatus } from "../../../src/contracts/status-file.js";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import type { ActualNode } from "../../../src/docker/runtime.js";
import { LABELS } from "../../../src/labels.js";
import { waitFor } from "../../helpers/daemon.js";
import { TestDataDir } from "../../helpers/data-dir.js";
import {
  type MemoryDaemon,
  containersOf,
  disposeMemoryDaemon,
  memServer,
  memoryDaemon,
} from "../../helpers/memory-daemon.js";

const open: MemoryDaemon[] = [];
afterEach(async () => {
  for (const d of open.splice(0)) await disposeMemoryDaemon(d);
});

function nodes(): ActualNode[] {
  return [1, 2, 3].map((i) => ({
    id: `node-${i}`,
    hostname: `host${i}`,
    addr: `10.0.0.${i}`,
    state: "ready" as const,
    availability: "active" as const,
    role: i === 1 ? ("manager" as const) : ("worker" as const),
  }));
}

async function swarmDaemon(users: Record<string, string[]>): Promise<MemoryDaemon> {
  const data = await TestDataDir.create();
  await data.baseCatalog(
    "base",
    ["a", "b"].map((id) => memServer(id)),
  );
  for (const [user, enabled] of Object.entries(users)) await data.enable(user, enabled);
  const runtime = new MemoryRuntime({ inPlaceUpdate: true, nodes: nodes() });
  const d = await memoryDaemon({
    data,
    runtime,
    env: {
      MCP_PORTAL_BACKEND: "swarm",
      // Servers get a url when a gateway serves their ports (on Swarm: the node gateways behind the entry).
      MCP_PORTAL_GATEWAY: "on",
      MCP_PORTAL_PUBLIC_URL: "https://mcp.example.test",
      MCP_PORTAL_SWARM_POLL_SECONDS: "1",
    },
  });
  open.push(d);
  return d;
}

async function status(d: MemoryDaemon, userId: string): Promise<UserStatus> {
  return UserStatus.parse(JSON.parse(await readFile(statusFilePath(d.data.stateDir, userId), "utf8")));
}

function placements(d: MemoryDaemon, userId: string): Set<string | undefined> {
  return new Set(
    [...d.runtime.containers.values()]
      .filter((c) => c.labels[LABELS.userId] === userId)
      .map((c) => c.placement),
  );
}

describe("in-place updates and placement (MemoryRuntime as a Swarm)", () => {
  it("places each user's servers together on one node, spreads users, and reports node, url and warnings", async () => {
    const d = await swarmDaemon({ u1: ["a", "b"], u2: ["a", "b"], u3: ["a", "b"], u4: ["a", "b"] });
    const used = new Set<string | undefined>();
    for (const user of ["u1", "u2", "u3", "u4"]) {
      const placed = placements(d, user);
      expect(placed.size).toBe(1);
      expect([...placed][0]).toMatch(/^node-\d$/);
      used.add([...placed][0]);
    }
    expect(used.size).toBe(3);
    const node = d.runtime.nodes.find((n) => n.id === [...placements(d, "u1")][0])!.hostname;
    // The node is known once the watcher's next poll saw the tasks (Swarm places them after the create).
    const s = await waitFor(
      "status with nodes",
      async () => {
        const current = await status(d, "u1");
        return current.servers.every((x) => x.node !== undefined) ? current : undefined;
      },
      5_000,
    );
    for (const server of s.servers) {
      expect(server.node).toBe(node);
      expect(server.url).toBe(`https://mcp.example.test:${server.host_port}/mcp`);
      expect(server.warnings?.join("\n")).toMatch(/no-new-privileges/);
      expect(server.warnings?.join("\n")).toMatch(/noexec/);
      expect(server.warnings?.join("\n")).toMatch(/swap/);
    }
  });

  it("applies a changed spec as one update step: same id, same name, no create, stop, remove or rename", async () => {
    const d = await swarmDaemon({ alice: ["a"] });
    const before = containersOf(d.runtime, "alice", "a")[0]!;
    d.runtime.resetCalls();
    await d.data.baseCatalog("base", [memServer("a", { tag: "2" }), memServer("b")]);
    d.daemon.controller.notifyDataChange({
      scope: "global",
      file: "catalogs/base/base.json",
      event: "change",
    });
    await waitFor(
      "updated",
      () => containersOf(d.runtime, "alice", "a")[0]?.image === "mcp/a:2" || undefined,
      5_000,
    );
    await d.daemon.controller.idle();
    const after = containersOf(d.runtime, "alice", "a");
    expect(after).toHaveLength(1);
    expect(after[0]!.id).toBe(before.id);
    expect(after[0]!.name).toBe(before.name);
    expect(after[0]!.placement).toBe(before.placement);
    expect(d.runtime.callCount("container_update")).toBe(1);
    expect(
      d.runtime.callCount("container_create", "container_stop", "container_remove", "container_rename"),
    ).toBe(0);
    const steps = d.logged("applying").at(-1)!.steps as string[];
    expect(steps.map((s) => s.split(" (")[0])).toEqual([
      "a: pull image mcp/a:2 if absent",
      `a: update ${before.name} in place`,
    ]);
  });

  it("moves the users of a drained node and of a failed node to usable nodes, keeping ids and ports", async () => {
    const d = await swarmDaemon({ u1: ["a", "b"], u2: ["a", "b"], u3: ["a", "b"] });
    const drained = [...placements(d, "u1")][0]!;
    const onIt = ["u1", "u2", "u3"].filter((u) => placements(d, u).has(drained));
    const ids = containersOf(d.runtime, "u1", "a").map((c) => c.id);
    const port = containersOf(d.runtime, "u1", "a")[0]!.labels[LABELS.hostPort];
    d.runtime.setNode(drained, { availability: "drain" });
    await waitFor(
      "moved off the drained node",
      () => onIt.every((u) => !placements(d, u).has(drained)) || undefined,
      5_000,
    );
    await d.daemon.controller.idle();
    for (const u of onIt) expect(placements(d, u).size).toBe(1);
    expect(containersOf(d.runtime, "u1", "a").map((c) => c.id)).toEqual(ids);
    expect(containersOf(d.runtime, "u1", "a")[0]!.labels[LABELS.hostPort]).toBe(port);

    const failed = [...placements(d, "u1")][0]!;
    d.runtime.setNode(failed, { state: "down" });
    await waitFor("moved off the failed node", () => !placements(d, "u1").has(failed) || undefined, 5_000);
    const last = [...placements(d, "u1")][0]!;
    expect([drained, failed]).not.toContain(last);
    const hostname = d.runtime.nodes.find((n) => n.id === last)!.hostname;
    // Status follows once the moved tasks were listed again.
    await waitFor(
      "status names the new node",
      async () => (await status(d, "u1")).servers.every((x) => x.node === hostname) || undefined,
      5_000,
    );
  });

  it("heals an edited service by updating it back, and a removed one by creating it on the user's node", async () => {
    const d = await swarmDaemon({ alice: ["a", "b"] });
    const node = [...placements(d, "alice")][0];
    const [a] = containersOf(d.runtime, "alice", "a");
    // Someone edits the service behind our back (its spec hash label no longer matches).
    a!.labels = { ...a!.labels, [LABELS.specHash]: "edited" };
    d.runtime.removeContainerExternally(containersOf(d.runtime, "alice", "b")[0]!.id);
    d.daemon.controller.enqueue("alice");
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();
    expect(containersOf(d.runtime, "alice", "a")[0]!.id).toBe(a!.id);
    expect(containersOf(d.runtime, "alice", "a")[0]!.labels[LABELS.specHash]).not.toBe("edited");
    expect(containersOf(d.runtime, "alice", "b")).toHaveLength(1);
    expect(placements(d, "alice")).toEqual(new Set([node]));
  });
});
