/**
 * Scale to zero (README, "Idle servers"), with the controller and the gateway in-process on the real engine:
 *
 *  1. Wake latency: one stdio and one streamable-HTTP MCP server (the test images) with a 2 s idle timeout, an
 *     official MCP SDK client connected to each through the gateway. Each round waits until both are Idle, then
 *     times one `tools/call` per server: from the request to its answer (wake request, start, re-initialize,
 *     answer). Reference, same run: after the rounds the controller and the gateway stop, and the same containers
 *     are stopped and started again straight through the engine API (`docker start`), timed to the call's return.
 *  2. Memory: BENCH_IDLE_SERVERS (default 500) enabled stdio busybox servers (50 per user) all running, then 90 %
 *     of them given an idle timeout (which replaces nothing) and left to idle while 10 % stay on. The engine
 *     host's memory in use (/proc/meminfo: MemTotal - MemAvailable) after each state settled, same run; and, less
 *     noisy on a shared host, the fleet's own memory (containerd shims' RSS + the containers' memory cgroups).
 *
 * Every object carries a unique `mcp.portal.installation` and is removed at the end, also on failure or Ctrl-C.
 * Run: npm run bench:idle   (BENCH_IDLE_ROUNDS=10, BENCH_IDLE_SERVERS=500, BENCH_IDLE_ONLY=wake|memory)
 */
import { execFile } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import Docker from "dockerode";
import { createToken } from "../src/auth/token-store.js";
import { UserStatus, statusFilePath } from "../src/contracts/status-file.js";
import { loadGatewayConfig } from "../src/gateway/config.js";
import { createGatewayProcess } from "../src/gateway/process.js";
import { LABELS } from "../src/labels.js";
import { createLogger } from "../src/observability/logger.js";
import { TestDataDir, stdioServer } from "../test/helpers/data-dir.js";
import { benchEnv, requireEngine, startBenchDaemon, userId } from "./lib/fleet.js";
import {
  benchInstallation,
  checkInterrupted,
  fmtMs,
  onCleanup,
  out,
  percentile,
  removeInstallation,
  runBench,
  sleep,
} from "./lib/harness.js";

const REPO = path.resolve(import.meta.dirname, "..");
const ROUNDS = Number(process.env.BENCH_IDLE_ROUNDS ?? 10);
const FLEET = Number(process.env.BENCH_IDLE_SERVERS ?? 500);
const PER_USER = 50;
const docker = new Docker();

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    checkInterrupted();
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function memoryInUse(): Promise<number> {
  const info = await readFile("/proc/meminfo", "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(info)?.[1] ?? NaN);
  return (kb("MemTotal") - kb("MemAvailable")) * 1024;
}
const fmtGb = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GB`;

/**
 * What the fleet itself holds, less noisy than the host figure on a shared machine: the resident memory of each
 * running container's containerd shim plus its memory cgroup's usage (cgroup v1 or v2 paths of dockerd's
 * cgroupfs/systemd layouts; a path that does not exist counts 0). Kernel memory outside those (network
 * namespaces, veths) is not in it.
 */
async function fleetMemory(containerIds: readonly string[]): Promise<{ shims: number; cgroups: number }> {
  const wanted = new Set(containerIds);
  let shims = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes("containerd-shim")) continue;
    const args = cmdline.split("\0");
    const id = args[args.indexOf("-id") + 1];
    if (id === undefined || !wanted.has(id)) continue;
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    shims += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) * 1024;
  }
  let cgroups = 0;
  for (const id of containerIds) {
    for (const file of [
      `/sys/fs/cgroup/memory/docker/${id}/memory.usage_in_bytes`,
      `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.current`,
    ]) {
      const text = await readFile(file, "utf8").catch(() => undefined);
      if (text !== undefined) {
        cgroups += Number(text.trim()) || 0;
        break;
      }
    }
  }
  return { shims, cgroups };
}

async function statusOf(stateDir: string, user: string): Promise<UserStatus | undefined> {
  try {
    return UserStatus.parse(JSON.parse(await readFile(statusFilePath(stateDir, user), "utf8")));
  } catch {
    return undefined;
  }
}

async function wakeLatency(): Promise<void> {
  out("## wake latency");
  await promisify(execFile)("bash", [path.join(REPO, "scripts/build-mcp-test-images.sh")], { cwd: REPO });
  const installation = benchInstallation("idle");
  const data = await TestDataDir.create();
  onCleanup(() => data.dispose());
  onCleanup(() => removeInstallation(docker, installation));
  const common = {
    resources: { memory_mb: 128, cpu_shares: 64, pids_limit: 64 },
    health_check: { interval_seconds: 1, timeout_seconds: 3, retries: 2 },
    idle_timeout_seconds: 2,
  };
  await data.baseCatalog("idle", [
    {
      id: "stdio",
      name: "stdio",
      image: "mcp-portal-test/mcp-stdio",
      tag: "1",
      transport: "stdio",
      ...common,
    },
    {
      id: "http",
      name: "http",
      image: "mcp-portal-test/mcp-http",
      tag: "1",
      transport: "streamable-http",
      ports: [{ container_port: 8080 }],
      ...common,
    },
  ]);
  await data.enable("alice", ["stdio", "http"]);
  const token = (await createToken(data.stateDir, "alice")).token;
  const env = {
    ...benchEnv(data.root, installation, "10.233.0.0/16"),
    MCP_PORTAL_GATEWAY: "on",
    MCP_PORTAL_PORT_RANGE_START: "39000",
    MCP_PORTAL_PORT_RANGE_END: "39099",
    MCP_PORTAL_PORTS_PER_USER: "10",
  };
  const controller = await startBenchDaemon(env);
  const gateway = await createGatewayProcess({
    config: loadGatewayConfig(env),
    env,
    listen: false,
    logger: createLogger({ level: "warn", destination: new Writable({ write: (_c, _e, done) => done() }) }),
    tuning: { idle: { viewPollMs: 100, trafficWriteMs: 200 } },
  });
  await gateway.start();
  onCleanup(() => gateway.stop());
  const servers = ["stdio", "http"] as const;
  const clients = new Map<string, Client>();
  const ids = new Map<string, string>();
  for (const server of servers) {
    await waitUntil(
      `${server} Ready`,
      async () => {
        const s = (await statusOf(data.stateDir, "alice"))?.servers.find((x) => x.id === server);
        return s?.health === "Ready" || s?.phase === "Idle";
      },
      60_000,
    );
    const port = (await statusOf(data.stateDir, "alice"))!.servers.find((s) => s.id === server)!.host_port;
    const client = new Client({ name: "bench-idle", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${token}` } },
      }),
    );
    onCleanup(() => client.close());
    clients.set(server, client);
    const list = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.serverId}=${server}`] },
    });
    ids.set(server, list[0]!.Id);
  }
  const samples: Record<string, number[]> = { stdio: [], http: [] };
  for (let round = 0; round < ROUNDS; round++) {
    await waitUntil(
      "both idle",
      async () =>
        (await statusOf(data.stateDir, "alice"))?.servers.every((s) => s.phase === "Idle") === true &&
        (
          await Promise.all(
            servers.map(async (s) => (await docker.getContainer(ids.get(s)!).inspect()).State.Running),
          )
        ).every((r) => !r),
      30_000,
    );
    await Promise.all(
      servers.map(async (server) => {
        const started = performance.now();
        await clients.get(server)!.callTool({ name: "echo", arguments: { text: `round ${round}` } });
        samples[server]!.push(performance.now() - started);
      }),
    );
  }
  await gateway.stop();
  await controller.stop();
  const reference: Record<string, number[]> = { stdio: [], http: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const server of servers) {
      const c = docker.getContainer(ids.get(server)!);
      await c.stop({ t: 1 }).catch(() => undefined);
      const started = performance.now();
      await c.start();
      reference[server]!.push(performance.now() - started);
    }
  }
  for (const server of servers) {
    const s = samples[server]!;
    const r = reference[server]!;
    out(
      `  ${server.padEnd(5)} wake (request -> answer): p50 ${fmtMs(percentile(s, 50))}, p95 ${fmtMs(percentile(s, 95))}` +
        ` | docker start of the same container: p50 ${fmtMs(percentile(r, 50))}, p95 ${fmtMs(percentile(r, 95))}` +
        ` | ratio p50 ${(percentile(s, 50) / percentile(r, 50)).toFixed(2)} (${s.length} rounds)`,
    );
  }
  await removeInstallation(docker, installation);
}

async function memory(): Promise<void> {
  out(`## memory: ${FLEET} enabled servers, 10 % active`);
  const installation = benchInstallation("idlemem");
  const data = await TestDataDir.create();
  onCleanup(() => data.dispose());
  onCleanup(() => removeInstallation(docker, installation, 16));
  const users = Math.ceil(FLEET / PER_USER);
  const ids = Array.from({ length: PER_USER }, (_, s) => `srv-${s}`);
  const catalog = (idle: boolean) =>
    data.baseCatalog(
      "bench",
      // Server srv-0..srv-4 of each user (10 %) stay on; the others idle after 5 s once given the timeout.
      ids.map((id, s) => stdioServer(id, idle && s >= PER_USER / 10 ? { idle_timeout_seconds: 5 } : {})),
    );
  await catalog(false);
  for (let u = 0; u < users; u++)
    await data.enable(userId(u), ids.slice(0, Math.min(PER_USER, FLEET - u * PER_USER)));
  const before = await memoryInUse();
  const env = {
    ...benchEnv(data.root, installation, "10.234.0.0/16"),
    MCP_PORTAL_GATEWAY: "on",
    MCP_PORTAL_PORTS_PER_USER: "100",
    // 50 servers per user need more addresses than the default /27 user network holds (29 after the gateway).
    MCP_PORTAL_USER_NETWORK_SUBNET_SIZE: "25",
    MCP_PORTAL_USER_MAX_CONTAINERS: "100",
    MCP_PORTAL_USER_MAX_MEMORY_MB: "100000",
    MCP_PORTAL_USER_MAX_CPU_SHARES: "100000",
    MCP_PORTAL_RESYNC_SECONDS: "10",
  };
  const started = performance.now();
  const controller = await startBenchDaemon(env);
  const runningIds = async () =>
    (
      await docker.listContainers({
        filters: { label: [`${LABELS.installation}=${installation}`], status: ["running"] },
      })
    ).map((c) => c.Id);
  const running = async () => (await runningIds()).length;
  const fmtFleet = (m: { shims: number; cgroups: number }) =>
    `${fmtGb(m.shims + m.cgroups)} (shims ${fmtGb(m.shims)}, containers ${fmtGb(m.cgroups)})`;
  // The first sync may end with some starts still to come (engine errors are retried): all must run first.
  await waitUntil(`${FLEET} running`, async () => (await running()) >= FLEET, 600_000);
  out(`  converged ${await running()} running containers in ${fmtMs(performance.now() - started)}`);
  await sleep(10_000);
  const allRunning = await memoryInUse();
  const allRunningFleet = await fleetMemory(await runningIds());
  await catalog(true);
  controller.daemon.controller.notifyDataChange({
    scope: "global",
    file: "catalogs/base/bench.json",
    event: "change",
  });
  const target = Math.ceil(FLEET / 10);
  await waitUntil(`${target} running`, async () => (await running()) <= target, 600_000);
  await sleep(10_000);
  const active = await memoryInUse();
  const activeFleet = await fleetMemory(await runningIds());
  out(`  host memory in use before the fleet: ${fmtGb(before)}`);
  out(`  all ${FLEET} running: ${fmtGb(allRunning)} (${fmtGb(allRunning - before)} for the fleet)`);
  out(
    `  ${target} running, ${FLEET - target} idle: ${fmtGb(active)} (${fmtGb(active - before)} for the fleet; ` +
      `${((1 - (active - before) / (allRunning - before)) * 100).toFixed(0)} % less)`,
  );
  out(`  the fleet's own memory, all running: ${fmtFleet(allRunningFleet)}`);
  out(
    `  the fleet's own memory, ${target} running: ${fmtFleet(activeFleet)} (` +
      `${((1 - (activeFleet.shims + activeFleet.cgroups) / (allRunningFleet.shims + allRunningFleet.cgroups)) * 100).toFixed(0)} % less)`,
  );
  // Every create happened in the converge: giving 90 % of the fleet an idle timeout replaced nothing.
  out(`  containers created: ${controller.timed.containers.length} (${FLEET} expected)`);
  await controller.stop();
  await removeInstallation(docker, installation, 16);
}

void runBench(async () => {
  await requireEngine(docker);
  out(`bench:idle (${new Date().toISOString()})`);
  // BENCH_IDLE_ONLY=wake|memory runs one part (each part's comparison is within itself).
  const only = process.env.BENCH_IDLE_ONLY;
  if (only !== "memory") await wakeLatency();
  if (only !== "wake") await memory();
});
