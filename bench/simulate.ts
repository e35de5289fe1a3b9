// bench:simulate: the whole controller (as `run` wires it) on the in-memory engine at 1,000 / 10,000 / 100,000
// containers (users x 5 servers): cold plan+apply throughput, no-op resync wall and CPU (from the kept listing
// and with a full listing), heap. One JSON line per
// size on stdout; progress on stderr. See bench/README.md.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { loadConfig } from "../src/config.js";
import { createDaemon } from "../src/daemon.js";
import { MemoryRuntime } from "../src/docker/memory-runtime.js";
import { benchLogger, median, runBench } from "./lib/harness.js";

const SERVERS_PER_USER = 5;
const SIZES = (process.env.BENCH_SIZES ?? "1000,10000,100000").split(",").map(Number);
const RESYNCS = Number(process.env.BENCH_RESYNCS ?? 5);

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error("run with --expose-gc (npm run bench:simulate does)");
  collect();
  collect();
}

const heapMb = (): number => Math.round((process.memoryUsage().heapUsed / 1024 / 1024) * 10) / 10;
const log = (line: string): void => void process.stderr.write(`${line}\n`);

/** A tree of `users` users, each enabling the five servers of one base catalog, on a tmpfs when there is one. */
async function writeTree(root: string, users: number): Promise<void> {
  const servers = Array.from({ length: SERVERS_PER_USER }, (_, i) => ({
    id: `s${i}`,
    name: `s${i}`,
    image: `mcp/sim-${i}`,
    tag: "1",
    resources: { memory_mb: 32, cpu_shares: 16, pids_limit: 32 },
  }));
  await mkdir(path.join(root, "catalogs/base"), { recursive: true });
  await writeFile(
    path.join(root, "catalogs/base/sim.json"),
    JSON.stringify({ version: "1", source: "base", metadata: { name: "sim" }, servers }),
  );
  const enabled = JSON.stringify({ servers: servers.map((s) => ({ id: s.id })) });
  for (let u = 0; u < users; u += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, users - u) }, async (_, i) => {
        const dir = path.join(root, "users", `u${u + i}`);
        await mkdir(dir, { recursive: true });
        await writeFile(path.join(dir, "enabled-servers.json"), enabled);
      }),
    );
  }
}

async function simulate(containers: number, base: string): Promise<Record<string, number>> {
  const users = Math.ceil(containers / SERVERS_PER_USER);
  const root = path.join(base, `sim-${containers}`);
  await rm(root, { recursive: true, force: true });
  await writeTree(root, users);
  const env = {
    MCP_PORTAL_DATA_DIR: root,
    MCP_PORTAL_STATE_DIR: path.join(root, ".state"),
    MCP_PORTAL_INSTALLATION: "sim",
    MCP_PORTAL_GATEWAY: "off",
    MCP_PORTAL_DEBOUNCE_MS: "0",
    MCP_PORTAL_RESYNC_SECONDS: "86400",
    MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "10.0.0.0/8",
    MCP_PORTAL_USER_NETWORK_SUBNET_SIZE: "24",
    // The range below is made to hold every user exactly: no block may be left out.
    MCP_PORTAL_PORT_EXCLUDE: "",
    LOG_LEVEL: "info",
  };
  // One host has ~64k ports: the simulated fleet is several hosts' worth, so the allocator gets one range of
  // 5 ports per user past 65535 (the in-memory engine, like a fleet of hosts, does not care).
  const config = {
    ...loadConfig(env),
    portRange: { start: 20_000, end: 20_000 + users * SERVERS_PER_USER - 1 },
    portsPerUser: SERVERS_PER_USER,
  };
  config.defaultLimits = { ...config.defaultLimits, max_ports: SERVERS_PER_USER };
  let runtime: MemoryRuntime | undefined = new MemoryRuntime();
  gc();
  const heapBefore = heapMb();
  let daemon: Awaited<ReturnType<typeof createDaemon>> | undefined = await createDaemon({
    config,
    env,
    runtime,
    logger: benchLogger(),
    listen: false,
    watch: false,
    // The bench changes no file during the run; inputs stay cached as they do behind the file watcher.
    cacheInputs: true,
  });
  const coldStart = performance.now();
  const coldCpu = process.cpuUsage();
  await daemon.start();
  const coldMs = performance.now() - coldStart;
  const coldCpuMs = cpuMs(process.cpuUsage(coldCpu));
  let running = 0;
  for (const c of runtime.containers.values()) if (c.state === "running") running++;
  if (running !== users * SERVERS_PER_USER)
    throw new Error(`expected ${users * SERVERS_PER_USER} running containers, found ${running}`);
  log(`  ${containers}: cold converge ${Math.round(coldMs)} ms (${Math.round((running / coldMs) * 1000)}/s)`);

  // The first resync after a cold start lists everything (the converge created networks) and re-decides every
  // user once; then the periodic resync as it runs between full listings (from the listing events keep current),
  // and the one every MCP_PORTAL_RELIST_SECONDS that lists the engine again.
  const first = await measureResyncs(daemon, runtime, 1, false);
  const kept = await measureResyncs(daemon, runtime, RESYNCS, false);
  const full = await measureResyncs(daemon, runtime, RESYNCS, true);
  log(
    `  ${containers}: first resync ${Math.round(first.walls[0]!)} ms; no-op resync, kept listing ` +
      `${kept.walls.map((w) => Math.round(w)).join(", ")} ms; full listing ${full.walls.map((w) => Math.round(w)).join(", ")} ms`,
  );
  gc();
  const heapWith = heapMb();
  await daemon.stop();
  daemon = undefined;
  // The engine's share: the heap with the controller gone and the engine kept. Labels the controller made and the
  // engine stores (as a real engine stores its own copy) count as the engine's.
  gc();
  const heapEngine = heapMb();
  log(
    `  ${containers}: heap with controller ${heapWith} MB, engine alone ${heapEngine} MB (${runtime.containers.size} containers)`,
  );
  runtime = undefined;
  const result = {
    containers: users * SERVERS_PER_USER,
    users,
    cold_ms: Math.round(coldMs),
    cold_cpu_ms: Math.round(coldCpuMs),
    cold_containers_per_s: Math.round((running / coldMs) * 1000),
    first_resync_ms: round1(first.walls[0]!),
    resync_ms: round1(median(kept.walls)),
    resync_cpu_ms: round1(median(kept.cpus)),
    resync_engine_calls: median(kept.calls),
    full_resync_ms: round1(median(full.walls)),
    full_resync_cpu_ms: round1(median(full.cpus)),
    full_resync_engine_calls: median(full.calls),
    heap_mb: round1(heapWith - heapBefore),
    engine_heap_mb: round1(heapEngine - heapBefore),
    controller_heap_mb: round1(heapWith - heapEngine),
  };
  await rm(root, { recursive: true, force: true });
  return result;
}

/** `count` resyncs, each waited for to the end (queue drained), after a GC: wall, CPU and engine calls of each. */
async function measureResyncs(
  daemon: Awaited<ReturnType<typeof createDaemon>>,
  runtime: MemoryRuntime,
  count: number,
  fullListing: boolean,
): Promise<{ walls: number[]; cpus: number[]; calls: number[] }> {
  const walls: number[] = [];
  const cpus: number[] = [];
  const calls: number[] = [];
  for (let i = 0; i < count; i++) {
    gc();
    runtime.resetCalls();
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    await daemon.controller.resync({ fullListing });
    await daemon.controller.idle();
    walls.push(performance.now() - t0);
    cpus.push(cpuMs(process.cpuUsage(cpu)));
    calls.push(runtime.callCount());
  }
  return { walls, cpus, calls };
}

function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

await runBench(async () => {
  const base = existsSync("/dev/shm") ? "/dev/shm/mcp-portal-bench" : path.join(tmpdir(), "mcp-portal-bench");
  await mkdir(base, { recursive: true });
  log(`bench:simulate: in-memory engine, data and state dirs under ${base}, node ${process.version}`);
  const results: Record<string, number>[] = [];
  try {
    for (const size of SIZES) {
      const result = await simulate(size, base);
      results.push(result);
      process.stdout.write(`${JSON.stringify(result)}\n`);
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  for (let i = 1; i < results.length; i++) {
    const a = results[i - 1]!;
    const b = results[i]!;
    log(
      `  ${a.containers} -> ${b.containers} containers (x${(b.containers! / a.containers!).toFixed(0)}): resync x${(b.resync_ms! / a.resync_ms!).toFixed(1)}, cpu x${(b.resync_cpu_ms! / a.resync_cpu_ms!).toFixed(1)}; ` +
        `full listing x${(b.full_resync_ms! / a.full_resync_ms!).toFixed(1)}, cpu x${(b.full_resync_cpu_ms! / a.full_resync_cpu_ms!).toFixed(1)}`,
    );
  }
});
