// A resync costs the same few listings whatever the number of services: the controller on the in-memory engine
// behaving as a Swarm, and SwarmRuntime's own HTTP calls against a recording modem (services, tasks and networks
// are each listed once; nothing is inspected per service).
import type Docker from "dockerode";
import { afterEach, describe, expect, it } from "vitest";
import type { ContainerSpec } from "../../../src/desired/types.js";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import type { ActualNode } from "../../../src/docker/runtime.js";
import { SwarmRuntime } from "../../../src/docker/swarm-runtime.js";
import { LABELS, MANAGED_BY, ownerFilters } from "../../../src/labels.js";
import { serviceSpec } from "../../../src/swarm/service-spec.js";
import { TestDataDir } from "../../helpers/data-dir.js";
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

const NODES: ActualNode[] = [1, 2, 3].map((i) => ({
  id: `node-${i}`,
  hostname: `host${i}`,
  addr: `10.0.0.${i}`,
  state: "ready",
  availability: "active",
  role: i === 1 ? "manager" : "worker",
}));

async function swarmFleet(users: number): Promise<MemoryDaemon> {
  const data = await TestDataDir.create();
  await data.baseCatalog("base", [memServer("a"), memServer("b")]);
  for (let i = 0; i < users; i++) await data.enable(`u${i}`, ["a", "b"]);
  const d = await memoryDaemon({
    data,
    runtime: new MemoryRuntime({ inPlaceUpdate: true, nodes: NODES }),
    env: { MCP_PORTAL_BACKEND: "swarm", MCP_PORTAL_SWARM_POLL_SECONDS: "3600" },
  });
  open.push(d);
  await d.daemon.controller.idle();
  return d;
}

/** The calls of one no-op resync, by operation. */
async function noOpResync(d: MemoryDaemon): Promise<Map<string, number>> {
  d.runtime.resetCalls();
  await d.daemon.controller.resync();
  await d.daemon.controller.idle();
  return new Map(d.runtime.calls);
}

describe("resync cost on Swarm (in-memory)", () => {
  it("lists services, networks and volumes once, for 4 users as for 40, and changes nothing", async () => {
    const small = await noOpResync(await swarmFleet(4));
    const large = await noOpResync(await swarmFleet(40));
    expect(large).toEqual(small);
    for (const [operation, count] of large) {
      expect(operation).toMatch(/_list$/);
      expect(count).toBe(1);
    }
    expect(large.get("container_list")).toBe(1);
  });
});

/** A docker whose modem records every call and answers listings of `services` services with one task each. */
function recordingDocker(services: number): { docker: Docker; paths: string[] } {
  const paths: string[] = [];
  const labels = { [LABELS.managedBy]: MANAGED_BY, [LABELS.installation]: "unit" };
  const answers: Record<string, unknown> = {
    "/services?": Array.from({ length: services }, (_, i) => ({
      ID: `svc${i}`,
      Version: { Index: 10 + i },
      CreatedAt: "2026-01-01T00:00:00Z",
      Spec: {
        Name: `mcp-u${i}-a`,
        Labels: { ...labels, [LABELS.userId]: `u${i}` },
        TaskTemplate: { ContainerSpec: { Image: "mcp/a:1" }, Placement: { Constraints: ["node.id==n1"] } },
        Mode: { Replicated: { Replicas: 1 } },
      },
    })),
    "/tasks?": Array.from({ length: services }, (_, i) => ({
      ID: `task${i}`,
      ServiceID: `svc${i}`,
      NodeID: "n1",
      CreatedAt: "2026-01-01T00:00:01Z",
      DesiredState: "running",
      Status: { State: "running", Timestamp: "2026-01-01T00:00:02Z" },
    })),
    "/nodes?": [
      {
        ID: "n1",
        Description: { Hostname: "host1" },
        Spec: { Role: "manager", Availability: "active" },
        Status: { State: "ready", Addr: "10.0.0.1" },
      },
    ],
    "/networks?": [],
  };
  const docker = {
    modem: {
      dial(options: { path: string }, cb: (err: unknown, data: unknown) => void) {
        paths.push(options.path);
        const answer = answers[options.path];
        if (answer === undefined) cb(Object.assign(new Error("unexpected"), { statusCode: 500 }), undefined);
        else cb(null, answer);
      },
    },
  } as unknown as Docker;
  return { docker, paths };
}

describe("SwarmRuntime listing cost", () => {
  const options = { timeoutMs: 1000, restartDelayMs: 1000, crashLoopFailures: 3, crashLoopWindowMs: 60_000 };

  it("lists 30 services with their tasks in two calls (three the first time: the nodes' names)", async () => {
    const { docker, paths } = recordingDocker(30);
    const runtime = new SwarmRuntime(docker, options);
    const first = await runtime.listContainers(ownerFilters("unit"));
    expect(first).toHaveLength(30);
    expect(first.every((w) => w.state === "running" && w.node === "host1" && w.placement === "n1")).toBe(
      true,
    );
    expect(paths).toEqual(["/services?", "/tasks?", "/nodes?"]);
    paths.length = 0;
    await runtime.listContainers(ownerFilters("unit"));
    await runtime.listNetworks(ownerFilters("unit"));
    expect(paths).toEqual(["/services?", "/tasks?", "/networks?"]);
  });

  it("costs the same for 300 services as for 30", async () => {
    const counts = [];
    for (const n of [30, 300]) {
      const { docker, paths } = recordingDocker(n);
      const runtime = new SwarmRuntime(docker, options);
      await runtime.listContainers(ownerFilters("unit"));
      paths.length = 0;
      expect(await runtime.listContainers(ownerFilters("unit"))).toHaveLength(n);
      counts.push(paths.length);
    }
    expect(counts).toEqual([2, 2]);
  });
});

describe("SwarmRuntime and a service edited behind our back", () => {
  const options = { timeoutMs: 1000, restartDelayMs: 1000, crashLoopFailures: 3, crashLoopWindowMs: 60_000 };
  const spec: ContainerSpec = {
    name: "mcp-alice-a-123456",
    image: "mcp/a:1",
    env: { A: "1" },
    labels: {
      [LABELS.managedBy]: MANAGED_BY,
      [LABELS.installation]: "unit",
      [LABELS.userId]: "alice",
      [LABELS.serverId]: "a",
      [LABELS.specHash]: "f".repeat(64),
    },
    user: "1000:1000",
    network: "mcp-net-alice",
    hostPort: 20001,
    exposedPorts: [],
    memoryBytes: 64 * 1024 * 1024,
    cpuShares: 64,
    pidsLimit: 64,
    mounts: [],
    capAdd: [],
    noNewPrivileges: true,
    readOnlyRootfs: true,
    tmpfs: {},
    openStdin: true,
    healthCheck: { interval_seconds: 30, timeout_seconds: 5, retries: 3, start_period_seconds: 0 },
  };

  async function listedHash(edit: (spec: { TaskTemplate: { ContainerSpec: { Env: string[] } } }) => void) {
    const body = serviceSpec(spec, spec.name, { restartDelayMs: 1000, volumeLabels: () => undefined });
    const stored = structuredClone(body) as { TaskTemplate: { ContainerSpec: { Env: string[] } } };
    edit(stored);
    const docker = {
      modem: {
        dial(o: { path: string }, cb: (err: unknown, data: unknown) => void) {
          if (o.path === "/services?")
            cb(null, [
              { ID: "svc1", Version: { Index: 3 }, CreatedAt: "2026-01-01T00:00:00Z", Spec: stored },
            ]);
          else cb(null, []);
        },
      },
    } as unknown as Docker;
    const [listed] = await new SwarmRuntime(docker, options).listContainers(ownerFilters("unit"));
    return listed!.labels[LABELS.specHash];
  }

  it("reports an edited spec as a changed spec hash, an untouched one as it is", async () => {
    expect(await listedHash(() => undefined)).toBe("f".repeat(64));
    expect(await listedHash((s) => s.TaskTemplate.ContainerSpec.Env.push("EDITED=1"))).toBe(
      `edited:${"f".repeat(64)}`,
    );
  });
});
