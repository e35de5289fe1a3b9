// What the gateway enforces (tool policy, rate limits) goes from the tree to <state-dir>/users/<id>/gateway-access.json
// and into status, and never into a container's spec: changing it replaces nothing.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { GatewayAccessFile, gatewayAccessPath } from "../../../src/contracts/gateway-access.js";
import { UserStatus, statusFilePath } from "../../../src/contracts/status-file.js";
import { gatewayAccess } from "../../../src/desired/gateway-access.js";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import type { ContainerSpec } from "../../../src/desired/types.js";
import { EnabledServersFile } from "../../../src/schema/enabled-servers.js";
import { PolicyFile } from "../../../src/schema/policy.js";
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

describe("gatewayAccess (pure)", () => {
  it("puts the admin's deny first, keeps the user's allow, and resolves the rate limits", () => {
    const enabled = EnabledServersFile.parse({
      servers: [
        { id: "github", tools: { allow: ["search_*", "get_*"], deny: ["get_secret"] } },
        { id: "time" },
      ],
    });
    const policy = PolicyFile.parse({
      server_tools: { github: { deny: ["delete_*", "get_secret"] } },
      rate_limits: {
        per_user: { requests: 600, window_seconds: 60 },
        per_server: { requests: 120, window_seconds: 60 },
        servers: { time: { requests: 10, window_seconds: 1 } },
        users: { bob: { requests: 5, window_seconds: 60 } },
      },
    });
    expect(gatewayAccess("alice", enabled, policy)).toEqual({
      api_version: "mcp-portal/v1",
      user_id: "alice",
      rate_limit: { requests: 600, window_seconds: 60 },
      servers: {
        github: {
          tools: { allow: ["search_*", "get_*"], deny: ["delete_*", "get_secret"] },
          rate_limit: { requests: 120, window_seconds: 60 },
        },
        time: { tools: { deny: [] }, rate_limit: { requests: 10, window_seconds: 1 } },
      },
    });
    expect(gatewayAccess("bob", enabled, policy).rate_limit).toEqual({ requests: 5, window_seconds: 60 });
    // No policy.json: no limits, nothing denied.
    expect(gatewayAccess("alice", enabled, PolicyFile.parse({})).servers.time).toEqual({
      tools: { deny: [] },
    });
    expect(GatewayAccessFile.safeParse(gatewayAccess("alice", enabled, policy)).success).toBe(true);
  });

  it("refuses bad globs in the tree: spaces, empty, over 128 characters, too many", () => {
    const entry = (tools: unknown) => EnabledServersFile.safeParse({ servers: [{ id: "a", tools }] }).success;
    expect(entry({ allow: ["ok_*", "a?c"] })).toBe(true);
    expect(entry({ allow: ["has space"] })).toBe(false);
    expect(entry({ deny: [""] })).toBe(false);
    expect(entry({ deny: ["x".repeat(129)] })).toBe(false);
    expect(entry({ deny: Array.from({ length: 257 }, (_, i) => `t${i}`) })).toBe(false);
    expect(entry({ allow: ["a"], other: true })).toBe(false);
    expect(PolicyFile.safeParse({ server_tools: { a: { deny: ["x y"] } } }).success).toBe(false);
    expect(
      PolicyFile.safeParse({ rate_limits: { per_user: { requests: 0, window_seconds: 60 } } }).success,
    ).toBe(false);
  });
});

describe("gateway-access.json on the in-memory engine", () => {
  /** Records, for each container created, whether the user's access file existed at that moment. */
  class WatchingRuntime extends MemoryRuntime {
    readonly accessFileAtCreate: boolean[] = [];
    stateDir = "";
    override async createContainer(spec: ContainerSpec, name: string) {
      const user = spec.labels["mcp.portal.user_id"] ?? "";
      this.accessFileAtCreate.push(existsSync(gatewayAccessPath(this.stateDir, user)));
      return super.createContainer(spec, name);
    }
  }

  async function accessFile(d: MemoryDaemon, user: string): Promise<GatewayAccessFile> {
    return GatewayAccessFile.parse(
      JSON.parse(await readFile(gatewayAccessPath(d.data.stateDir, user), "utf8")),
    );
  }
  async function status(d: MemoryDaemon, user: string): Promise<UserStatus> {
    return UserStatus.parse(JSON.parse(await readFile(statusFilePath(d.data.stateDir, user), "utf8")));
  }

  it("is written before the user's containers exist; a policy change rewrites it, replaces nothing, and shows in status", async () => {
    const data = await TestDataDir.create();
    await data.baseCatalog("base", [memServer("a"), memServer("b")]);
    await data.enable("alice", [{ id: "a", tools: { deny: ["slow"] } }, "b"]);
    await data.policy({ rate_limits: { per_server: { requests: 50, window_seconds: 60 } } });
    const runtime = new WatchingRuntime();
    runtime.stateDir = data.stateDir;
    const d = await memoryDaemon({
      data,
      runtime,
      env: { MCP_PORTAL_GATEWAY: "on", MCP_PORTAL_PUBLIC_URL: "https://mcp.example.com" },
    });
    open.push(d);
    expect(runtime.accessFileAtCreate).toEqual([true, true]);
    expect((await accessFile(d, "alice")).servers.a).toEqual({
      tools: { deny: ["slow"] },
      rate_limit: { requests: 50, window_seconds: 60 },
    });
    const before = await status(d, "alice");
    const a = before.servers.find((s) => s.id === "a")!;
    expect(a).toMatchObject({
      url: `https://mcp.example.com:${a.host_port}/mcp`,
      tools: { deny: ["slow"] },
      rate_limit: { requests: 50, window_seconds: 60 },
    });
    const ids = containersOf(d.runtime, "alice")
      .map((c) => c.id)
      .sort();
    const hashes = containersOf(d.runtime, "alice").map((c) => c.labels["mcp.portal.spec_hash"]);

    // The user narrows the policy, the admin denies a tool for everyone.
    await data.enable("alice", [{ id: "a", tools: { allow: ["echo", "add"], deny: ["slow"] } }, "b"]);
    await data.policy({ server_tools: { b: { deny: ["add"] } } });
    await d.daemon.controller.resync();
    await d.daemon.controller.idle();

    expect(
      containersOf(d.runtime, "alice")
        .map((c) => c.id)
        .sort(),
    ).toEqual(ids);
    expect(containersOf(d.runtime, "alice").map((c) => c.labels["mcp.portal.spec_hash"])).toEqual(hashes);
    expect(d.daemon.runtime.callCounts.get("container_create") ?? 0).toBe(2);
    expect((await accessFile(d, "alice")).servers).toEqual({
      a: { tools: { allow: ["echo", "add"], deny: ["slow"] } },
      b: { tools: { deny: ["add"] } },
    });
    const after = await status(d, "alice");
    expect(after.servers.map((s) => [s.id, s.tools, s.rate_limit])).toEqual([
      ["a", { allow: ["echo", "add"], deny: ["slow"] }, undefined],
      ["b", { deny: ["add"] }, undefined],
    ]);
    expect(after.servers.map((s) => s.container_id)).toEqual(before.servers.map((s) => s.container_id));
  });

  it("is not written with the gateway off (no url either)", async () => {
    const data = await TestDataDir.create();
    await data.baseCatalog("base", [memServer("a")]);
    await data.enable("alice", ["a"]);
    const d = await memoryDaemon({ data });
    open.push(d);
    expect(existsSync(gatewayAccessPath(data.stateDir, "alice"))).toBe(false);
    expect((await status(d, "alice")).servers[0]).not.toHaveProperty("url");
  });
});
