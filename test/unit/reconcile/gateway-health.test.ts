import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { gatewayHealthPath } from "../../../src/contracts/gateway-health.js";
import type { ServerStatus } from "../../../src/contracts/status-file.js";
import { changedUsers, verdicts } from "../../../src/reconcile/controller.js";
import { GatewayHealthReader } from "../../../src/reconcile/gateway-health.js";
import { applyGatewayHealth, nextStatus } from "../../../src/reconcile/status-projection.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function entry(server: string, container: string, state: "Starting" | "Ready" | "Unhealthy", message = "") {
  return {
    user_id: "alice",
    server_id: server,
    container_id: container,
    host_port: 20000,
    state,
    since: "2026-01-01T00:00:00Z",
    consecutive_failures: state === "Unhealthy" ? 3 : 0,
    message,
  };
}

async function writeHealth(stateDir: string, servers: unknown[]): Promise<void> {
  const file = gatewayHealthPath(stateDir);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify({ updated_at: new Date().toISOString(), servers }));
}

describe("gateway health in user status", () => {
  it("is Ready only for the probed container, Unhealthy after failed probes, Starting otherwise", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "health-"));
    dirs.push(stateDir);
    const reader = new GatewayHealthReader(stateDir);
    expect((await reader.read()).size).toBe(0);
    await writeHealth(stateDir, [
      entry("a", "c-a", "Ready"),
      entry("b", "c-b", "Unhealthy", "ping timed out"),
      entry("c", "old", "Ready"),
    ]);
    const servers: ServerStatus[] = [
      { id: "a", phase: "Running", container_id: "c-a" },
      { id: "b", phase: "Running", container_id: "c-b" },
      { id: "c", phase: "Running", container_id: "new" },
      { id: "d", phase: "Blocked", reason: "MissingSecret" },
    ];
    applyGatewayHealth("alice", servers, await reader.read());
    expect(servers.map((s) => [s.id, s.phase, s.health])).toEqual([
      ["a", "Running", "Ready"],
      ["b", "Unhealthy", "Unhealthy"],
      ["c", "Running", "Starting"],
      ["d", "Blocked", undefined],
    ]);
    expect(servers[1]?.message).toBe("ping timed out");
  });

  it("keeps the last good reading when the file is torn, and makes the user Ready only when all probes pass", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "health-"));
    dirs.push(stateDir);
    const reader = new GatewayHealthReader(stateDir);
    await writeHealth(stateDir, [entry("a", "c-a", "Ready")]);
    expect((await reader.read()).get("alice/a")?.state).toBe("Ready");
    await writeFile(gatewayHealthPath(stateDir), '{"updated_at": "x", "servers": [');
    expect((await reader.read()).get("alice/a")?.state).toBe("Ready");

    const observe = (servers: ServerStatus[]) =>
      nextStatus(
        undefined,
        {
          userId: "alice",
          generation: "g",
          suspended: false,
          network: null,
          portBlock: null,
          servers,
          resources: null,
          errors: [],
          record: { time: "t", result: "success", mutations: 0, duration_ms: 1, summary: "" },
        },
        new Date(0),
      );
    expect(observe([{ id: "a", phase: "Running", health: "Starting" }]).phase).toBe("Progressing");
    expect(observe([{ id: "a", phase: "Running", health: "Ready" }]).phase).toBe("Ready");
    expect(observe([{ id: "a", phase: "Unhealthy", health: "Unhealthy", reason: "Unhealthy" }]).phase).toBe(
      "Degraded",
    );
  });

  it("names only users whose servers' verdict changed, not those whose probe time or counter moved", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "health-"));
    dirs.push(stateDir);
    const reader = new GatewayHealthReader(stateDir);
    const bob = { ...entry("x", "c-x", "Ready"), user_id: "bob" };
    await writeHealth(stateDir, [entry("a", "c-a", "Ready"), entry("b", "c-b", "Unhealthy", "timeout"), bob]);
    const before = verdicts(await reader.read());
    await writeHealth(stateDir, [
      { ...entry("a", "c-a", "Ready"), last_probe_at: "2026-01-01T00:01:00Z" },
      { ...entry("b", "c-b", "Unhealthy", "timeout"), consecutive_failures: 7 },
      bob,
    ]);
    expect(changedUsers(before, verdicts(await reader.read()))).toEqual(new Set());
    await writeHealth(stateDir, [
      entry("a", "c-a", "Ready"),
      entry("b", "c-b", "Unhealthy", "timeout"),
      { ...bob, state: "Unhealthy" },
    ]);
    expect(changedUsers(before, verdicts(await reader.read()))).toEqual(new Set(["bob"]));
    await writeHealth(stateDir, [entry("a", "c-new", "Starting"), bob]);
    expect(changedUsers(before, verdicts(await reader.read()))).toEqual(new Set(["alice"]));
  });
});
