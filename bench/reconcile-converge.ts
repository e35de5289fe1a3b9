/**
 * Reconcile loop: cold converge, no-op resync and memory.
 *
 *  1. Cold converge: 200 users x 5 stdio busybox servers (1,000 containers, 200 networks, 400 data/cache volumes) from
 *     an empty engine by the in-process controller: createDaemon, then start(), which returns once the first full
 *     sync has reconciled every user. Concurrency is the config default (MCP_PORTAL_CONCURRENCY, 4).
 *  2. No-op resync with the fleet converged: the first resync after the converge (it lists everything: the
 *     converge created networks), then controller.resync() + idle() 10 times as the periodic resync runs between
 *     full listings (from the listing events keep current), then 10 times with a full listing (as every
 *     MCP_PORTAL_RELIST_SECONDS): median wall time, split into the listing part (resync(): list calls + reading
 *     users/) and the per-user reconciles (idle()), and the Docker API calls per resync (delta of the instrumented
 *     runtime's callCounts); after each full one, the same 3 list calls alone through the same adapter (the
 *     engine's share of the wall time).
 *  3. Memory: of this process (tsx + controller) after converge and after the 10 resyncs; and of the controller as
 *     users run it, `node dist/cli.js run` in its own process, after it converged the fleet and after resyncs.
 *  4. Engine baseline: everything removed, then the very requests the controller sent (network create body of
 *     DockerodeRuntime.createNetwork, volume creates, container create bodies from containerCreateOptions, starts)
 *     straight through dockerode, per user in the controller's order (network, volumes, then create + start per
 *     server), with the same concurrency across users. controller / baseline is the controller's overhead.
 *
 * Rounds alternate their order (C B, B C, C B, ...) to cancel order effects; the figures are medians.
 * Every object carries a unique `mcp.portal.installation` and is removed at the end, also on failure or Ctrl-C.
 * Run: npm run bench:converge   (BENCH_USERS, BENCH_SERVERS_PER_USER, BENCH_ROUNDS override the defaults;
 * BENCH_ROUNDS=0 runs step 3's `node dist/cli.js run` alone: its memory at a size where rounds would take hours;
 * BENCH_PROCESS_RUN=0 leaves that step out, to fit the rounds at 1,000 containers into an engine's free window)
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import Docker from "dockerode";
import { loadConfig } from "../src/config.js";
import {
  DockerodeRuntime,
  containerCreateOptions,
  networkCreateOptions,
} from "../src/docker/dockerode-runtime.js";
import type { ContainerSpec } from "../src/desired/types.js";
import type { NetworkSpec, VolumeSpec } from "../src/docker/runtime.js";
import { LABELS, ownerFilters } from "../src/labels.js";
import { TestDataDir } from "../test/helpers/data-dir.js";
import { LABEL_INSTALLATION } from "../test/helpers/docker-objects.js";
import { type BenchDaemon, benchEnv, requireEngine, startBenchDaemon, writeFleet } from "./lib/fleet.js";
import {
  benchInstallation,
  checkInterrupted,
  countRunning,
  countsDelta,
  fmtMb,
  fmtMs,
  median,
  type OpStats,
  onCleanup,
  out,
  pool,
  removeInstallation,
  removeVolumesByName,
  runBench,
  sleep,
  statsTable,
  timeOp,
} from "./lib/harness.js";

const REPO = path.resolve(import.meta.dirname, "..");
const USERS = Number(process.env.BENCH_USERS ?? 200);
const SERVERS_PER_USER = Number(process.env.BENCH_SERVERS_PER_USER ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PROCESS_RUN = process.env.BENCH_PROCESS_RUN !== "0";
const RESYNCS = 10;
const TARGET_RATIO = 1.1;
const TARGET_RSS_MB = 200;
const TARGET_RESYNC_MS = 100;
/** After a mass removal the engine keeps working (shim exits, overlay unmounts, veth teardown) for a moment. */
const SETTLE_MS = 3_000;
/** Users' networks come from a pool no test uses (see benchEnv). */
const SUBNET_POOL = "10.231.0.0/16";

interface Memory {
  rss: number;
  heapUsed: number;
  /** After a forced GC (run with --expose-gc, as the npm script does). */
  rssAfterGc?: number;
  heapAfterGc?: number;
}

function memory(): Memory {
  const before = process.memoryUsage();
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return { rss: before.rss, heapUsed: before.heapUsed };
  gc();
  const after = process.memoryUsage();
  return { rss: before.rss, heapUsed: before.heapUsed, rssAfterGc: after.rss, heapAfterGc: after.heapUsed };
}

const fmtMem = (m: Memory): string =>
  `RSS ${fmtMb(m.rss)}, heap used ${fmtMb(m.heapUsed)}` +
  (m.rssAfterGc !== undefined && m.heapAfterGc !== undefined
    ? `; after GC: RSS ${fmtMb(m.rssAfterGc)}, heap used ${fmtMb(m.heapAfterGc)}`
    : "");

interface Requests {
  networks: NetworkSpec[];
  volumes: VolumeSpec[];
  containers: { spec: ContainerSpec; name: string }[];
}

/** One converge, by the controller or by the baseline. */
interface Phase {
  ms: number;
  /** CPU time of this process (user + system) meanwhile. */
  cpuMs: number;
  stats: Map<string, OpStats>;
}

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};

const meanOf = (stats: ReadonlyMap<string, OpStats>, op: string): string => {
  const s = stats.get(op);
  return s ? fmtMs(s.totalMs / s.count) : "-";
};

/** The engine's speed during a phase: mean client-side time of the calls both phases make. */
const engineLine = (p: Phase): string =>
  `mean start ${meanOf(p.stats, "startContainer")}, create ${meanOf(p.stats, "createContainer")}, ` +
  `network ${meanOf(p.stats, "createNetwork")}; this process's CPU ${fmtMs(p.cpuMs)}`;

interface ControllerRun {
  phase: Phase;
  convergeMs: number;
  createDaemonMs: number;
  calls: Record<string, number>;
  profile: string;
  memBefore: Memory;
  memConverged: Memory;
  memResynced: Memory;
  firstResyncMs: number;
  kept: ResyncSeries;
  full: ResyncSeries;
  requests: Requests;
}

/** No-op resyncs of one kind, each waited for to the end. */
interface ResyncSeries {
  ms: number[];
  listMs: number[];
  reconcileMs: number[];
  cpuMs: number[];
  calls: Record<string, number>[];
  /** The observer's three list calls alone (same adapter), one after each resync (full listings only). */
  floorMs: number[];
  floorCpuMs: number[];
}

const emptySeries = (): ResyncSeries => ({
  ms: [],
  listMs: [],
  reconcileMs: [],
  cpuMs: [],
  calls: [],
  floorMs: [],
  floorCpuMs: [],
});

/** `RESYNCS` no-op resyncs (`fullListing`: each lists the engine), with the listing floor after each full one. */
async function resyncSeries(
  daemon: BenchDaemon["daemon"],
  bare: DockerodeRuntime,
  installation: string,
  fullListing: boolean,
): Promise<ResyncSeries> {
  const series = emptySeries();
  for (let i = 0; i < RESYNCS; i++) {
    const before = new Map(daemon.runtime.callCounts);
    const cpuBefore = process.cpuUsage();
    const t0 = performance.now();
    await daemon.controller.resync({ fullListing });
    const t1 = performance.now();
    await daemon.controller.idle();
    const t2 = performance.now();
    series.ms.push(t2 - t0);
    series.listMs.push(t1 - t0);
    series.reconcileMs.push(t2 - t1);
    series.cpuMs.push(cpuMs(cpuBefore));
    series.calls.push(countsDelta(before, daemon.runtime.callCounts));
    if (!fullListing) continue;
    // The same three lists with nothing of the controller around them, right after: the engine's share.
    const floor = await listingFloor(bare, installation);
    series.floorMs.push(floor.ms);
    series.floorCpuMs.push(floor.cpuMs);
  }
  return series;
}

/** The observer's three list calls alone, in parallel as it makes them, through the same adapter. */
async function listingFloor(
  runtime: DockerodeRuntime,
  installation: string,
): Promise<{ ms: number; cpuMs: number }> {
  const filters = ownerFilters(installation);
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all([runtime.listContainers(filters), runtime.listNetworks(), runtime.listVolumes(filters)]);
  return { ms: performance.now() - start, cpuMs: cpuMs(cpu) };
}

async function controllerPhase(
  docker: Docker,
  env: Record<string, string>,
  installation: string,
  withResyncs: boolean,
): Promise<ControllerRun> {
  const memBefore = memory();
  const cpu = process.cpuUsage();
  const bench = await startBenchDaemon(env);
  const cpuConverge = cpuMs(cpu);
  const { daemon, timed } = bench;
  const running = await countRunning(docker, installation);
  const expected = USERS * SERVERS_PER_USER;
  if (running !== expected)
    throw new Error(`controller converged to ${running} running containers, expected ${expected}`);
  const calls = Object.fromEntries(daemon.runtime.callCounts);
  const profile = timed.table();
  const memConverged = memory();

  let firstResyncMs = 0;
  let kept = emptySeries();
  let full = emptySeries();
  if (withResyncs) {
    const bare = new DockerodeRuntime(docker, { timeoutMs: 30_000 });
    const t0 = performance.now();
    await daemon.controller.resync();
    await daemon.controller.idle();
    firstResyncMs = performance.now() - t0;
    kept = await resyncSeries(daemon, bare, installation, false);
    full = await resyncSeries(daemon, bare, installation, true);
  }
  const memResynced = memory();
  await bench.stop();
  return {
    phase: { ms: bench.startMs, cpuMs: cpuConverge, stats: new Map(timed.stats) },
    convergeMs: bench.startMs,
    createDaemonMs: bench.createMs,
    calls,
    profile,
    memBefore,
    memConverged,
    memResynced,
    firstResyncMs,
    kept,
    full,
    requests: {
      networks: [...timed.networks],
      volumes: [...timed.volumes],
      containers: [...timed.containers],
    },
  };
}

/** The engine's own limit: the same requests, straight through dockerode, per user in order, N users at a time. */
async function baselinePhase(docker: Docker, requests: Requests, concurrency: number): Promise<Phase> {
  const stats = new Map<string, OpStats>();
  interface UserRequests {
    network?: NetworkSpec;
    volumes: VolumeSpec[];
    containers: { spec: ContainerSpec; name: string }[];
  }
  const byUser = new Map<string, UserRequests>();
  const entry = (labels: Record<string, string>): UserRequests => {
    const user = labels[LABELS.userId] as string;
    let e = byUser.get(user);
    if (!e) byUser.set(user, (e = { volumes: [], containers: [] }));
    return e;
  };
  for (const n of requests.networks) entry(n.labels).network = n;
  for (const v of requests.volumes) entry(v.labels).volumes.push(v);
  for (const c of requests.containers) entry(c.spec.labels).containers.push(c);
  const cpu = process.cpuUsage();
  const start = performance.now();
  await pool([...byUser.values()], concurrency, async (u) => {
    if (u.network) {
      const spec = u.network;
      await timeOp(stats, "createNetwork", () => docker.createNetwork(networkCreateOptions(spec)));
    }
    // The controller creates the user's labelled volumes before the containers that mount them.
    for (const v of u.volumes)
      await timeOp(stats, "createVolume", () =>
        docker.createVolume({ Name: v.name, Driver: "local", Labels: v.labels }),
      );
    for (const c of u.containers) {
      const container = await timeOp(stats, "createContainer", () =>
        docker.createContainer(containerCreateOptions(c.spec, c.name)),
      );
      await timeOp(stats, "startContainer", () => container.start() as Promise<unknown>);
    }
  });
  return { ms: performance.now() - start, cpuMs: cpuMs(cpu), stats };
}

async function foreignContainers(docker: Docker, installation: string): Promise<number> {
  const list = await docker.listContainers({});
  return list.filter((c) => c.Labels?.[LABEL_INSTALLATION] !== installation).length;
}

async function main(): Promise<void> {
  const docker = new Docker();
  await requireEngine(docker);
  const installation = benchInstallation("conv");
  onCleanup(() => removeInstallation(docker, installation));
  const data = await TestDataDir.create();
  onCleanup(() => data.dispose());
  await writeFleet(data, USERS, SERVERS_PER_USER);
  const env = benchEnv(data.root, installation, SUBNET_POOL);
  const concurrency = loadConfig(env).concurrency;
  const total = USERS * SERVERS_PER_USER;
  const foreignAtStart = await foreignContainers(docker, installation);
  out(
    `reconcile converge: ${USERS} users x ${SERVERS_PER_USER} stdio servers = ${total} containers + ${USERS} networks, ` +
      `concurrency ${concurrency}, installation ${installation}, ${ROUNDS} round(s)`,
  );
  out(`  other running containers on the engine at start: ${foreignAtStart}`);

  const controllerMs: number[] = [];
  const baselineMs: number[] = [];
  let first: ControllerRun | undefined;
  let requests: Requests | undefined;
  let baselineStats: Map<string, OpStats> | undefined;
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(1))
      .join(" ");
  const loadAtStart = load();
  const clean = async () => {
    const removed = await removeInstallation(docker, installation);
    out(
      `    removed ${removed.containers} containers, ${removed.networks} networks, ${removed.volumes} volumes in ${fmtMs(removed.ms)}`,
    );
    await sleep(SETTLE_MS);
  };
  const runController = async (round: number) => {
    checkInterrupted();
    const run = await controllerPhase(docker, env, installation, first === undefined);
    first ??= run;
    requests ??= run.requests;
    // A baseline interrupted mid-way could leave volumes the engine created without labels.
    const volumeNames = [
      ...new Set(run.requests.containers.flatMap((c) => c.spec.mounts.map((m) => m.volumeName))),
    ];
    onCleanup(() => removeVolumesByName(docker, volumeNames));
    controllerMs.push(run.convergeMs);
    out(`  round ${round}: controller converge ${fmtMs(run.convergeMs)}  (${engineLine(run.phase)})`);
    await clean();
  };
  const runBaseline = async (round: number) => {
    checkInterrupted();
    const phase = await baselinePhase(docker, requests as Requests, concurrency);
    const ms = phase.ms;
    baselineStats ??= phase.stats;
    const running = await countRunning(docker, installation);
    if (running !== total) throw new Error(`baseline left ${running} running containers, expected ${total}`);
    baselineMs.push(ms);
    out(`  round ${round}: dockerode baseline   ${fmtMs(ms)}  (${engineLine(phase)})`);
    await clean();
  };
  for (let round = 1; round <= ROUNDS; round++) {
    if (round === 1 || round % 2 === 1) {
      await runController(round);
      await runBaseline(round);
    } else {
      await runBaseline(round);
      await runController(round);
    }
  }
  checkInterrupted();
  let proc: ProcessRun | undefined;
  if (PROCESS_RUN) {
    out("  the controller as users run it (node dist/cli.js run, its own process): converging...");
    proc = await processRun(docker, env, installation, total);
    await clean();
  }
  const foreignAtEnd = await foreignContainers(docker, installation);
  const loadAtEnd = load();

  if (first === undefined) {
    out("");
    out(
      `load average ${loadAtStart} at start, ${loadAtEnd} at end, ${cpus().length} CPUs; no rounds (BENCH_ROUNDS=0)`,
    );
    printProcessMemory(proc, total);
    return;
  }
  const r = first;
  const ctl = median(controllerMs);
  const base = median(baselineMs);
  const ratio = ctl / base;
  const convergeCalls = Object.values(r.calls).reduce((a, b) => a + b, 0);
  const many = (values: number[]) =>
    values.length > 1 ? ` (median of ${values.length}: ${values.map(fmtMs).join(", ")})` : "";

  out("");
  out(
    `cold converge, ${total} containers (other running containers on the engine: ${foreignAtStart} at start, ` +
      `${foreignAtEnd} at end; load average ${loadAtStart} at start, ${loadAtEnd} at end, ${cpus().length} CPUs)`,
  );
  out(
    `  controller, start() until the first sync is done: ${fmtMs(ctl)}${many(controllerMs)} = ${fmtMs(ctl / total)} per container` +
      ` (createDaemon ${fmtMs(r.createDaemonMs)} not counted)`,
  );
  out(
    `  dockerode baseline, same network/volume/container create + start requests, concurrency ${concurrency}: ` +
      `${fmtMs(base)}${many(baselineMs)} = ${fmtMs(base / total)} per container`,
  );
  out(
    `  ratio controller / baseline: ${ratio.toFixed(2)}  (target <= ${TARGET_RATIO}: ${ratio <= TARGET_RATIO ? "met" : "NOT met"})`,
  );
  out(
    `  Docker API calls by the controller during converge: ${convergeCalls} (` +
      Object.entries(r.calls)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v}`)
        .join(", ") +
      ")",
  );
  out(
    `  controller's engine calls by client-side time (summed over concurrent calls), first controller run:`,
  );
  out(r.profile);
  out(`  baseline's engine calls, first baseline run:`);
  out(statsTable(baselineStats ?? new Map()));
  out("");
  out(`no-op resync, ${total} containers converged; the first after the converge: ${fmtMs(r.firstResyncMs)}`);
  printResyncSeries(`${RESYNCS} periodic resyncs from the listing events keep current`, r.kept, 0);
  printResyncSeries(`${RESYNCS} resyncs with a full listing (every MCP_PORTAL_RELIST_SECONDS)`, r.full, 3);
  out("");
  out("memory of the process running the controller (tsx + controller in-process)");
  out(`  before createDaemon:                    ${fmtMem(r.memBefore)}`);
  out(`  after converge (${total} managed):       ${fmtMem(r.memConverged)}`);
  out(`  after ${RESYNCS} no-op resyncs:               ${fmtMem(r.memResynced)}`);
  printProcessMemory(proc, total);
}

function printResyncSeries(title: string, series: ResyncSeries, expectedCalls: number): void {
  const med = median(series.ms);
  const totals = series.calls.map((c) => Object.values(c).reduce((a, b) => a + b, 0));
  const shapes = [...new Set(series.calls.map((c) => JSON.stringify(c)))];
  out(`  ${title}:`);
  out(
    `    wall time median ${fmtMs(med)}, min ${fmtMs(Math.min(...series.ms))}, max ${fmtMs(Math.max(...series.ms))}` +
      `  (target < ${TARGET_RESYNC_MS} ms: ${med < TARGET_RESYNC_MS ? "met" : "NOT met"})`,
  );
  out(
    `      listing (resync(): list calls + users/ directory): median ${fmtMs(median(series.listMs))}; ` +
      `${USERS} no-op reconciles (idle()): median ${fmtMs(median(series.reconcileMs))}`,
  );
  out(
    `      CPU time of this process per resync: median ${fmtMs(median(series.cpuMs))} ` +
      `(wall time above it is waiting for the engine's answers or for a CPU on a busy host)`,
  );
  if (series.floorMs.length > 0)
    out(
      `      the same 3 list calls alone (same adapter, no controller), after each resync: median ` +
        `${fmtMs(median(series.floorMs))} wall, ${fmtMs(median(series.floorCpuMs))} CPU: the engine's answer and its decoding`,
    );
  out(
    `    Docker API calls per resync: ${[...new Set(totals)].join(" / ")} ${shapes.join(" | ")}` +
      `  (expected ${expectedCalls}: ${totals.every((n) => n === expectedCalls) ? "yes" : "NO"})`,
  );
}

function printProcessMemory(proc: ProcessRun | undefined, total: number): void {
  if (proc === undefined) {
    out("memory of the controller as users run it: not measured in this run (BENCH_PROCESS_RUN=0)");
    return;
  }
  out(
    "memory of the controller as users run it (node dist/cli.js run --no-gateway, its own process, no tsx)",
  );
  out(`  converged ${total} containers in ${fmtMs(proc.convergedMs)} (process start to all running)`);
  out(
    `  RSS during the converge (sampled every ${RSS_SAMPLE_MS / 1000} s): at most ${proc.rssConvergeMaxMb.toFixed(1)} MB`,
  );
  out(
    `  RSS after converge ${proc.rssConvergedMb.toFixed(1)} MB, after ${proc.resyncs} periodic resyncs ` +
      `(≈ ${proc.fullListings} of them with a full listing) ${proc.rssIdleMb.toFixed(1)} MB, peak (VmHWM) ${proc.peakMb.toFixed(1)} MB` +
      `  (target < ${TARGET_RSS_MB} MB: ${proc.peakMb < TARGET_RSS_MB ? "met" : "NOT met"})`,
  );
}

interface ProcessRun {
  convergedMs: number;
  rssConvergeMaxMb: number;
  rssConvergedMb: number;
  rssIdleMb: number;
  /** VmHWM: the most the process was resident at any moment of its life. */
  peakMb: number;
  resyncs: number;
  fullListings: number;
}

const RSS_SAMPLE_MS = 5_000;

/** A field of /proc/<pid>/status in kB (VmRSS, VmHWM), as MB. */
async function procStatusMb(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no ${field} for pid ${pid}`);
  return kb / 1024;
}

/**
 * `node dist/cli.js run` converging the fleet from an empty engine, as an operator runs it: RSS once every
 * container runs (sampled during the converge too), after six periodic resyncs (MCP_PORTAL_RESYNC_SECONDS 10, and
 * MCP_PORTAL_RELIST_SECONDS 20 so that every second one lists everything), and its peak (VmHWM).
 */
async function processRun(
  docker: Docker,
  env: Record<string, string>,
  installation: string,
  total: number,
): Promise<ProcessRun> {
  const cli = path.join(REPO, "dist/cli.js");
  await readFile(cli).catch(() => {
    throw new Error("dist/cli.js missing: run npm run build first");
  });
  const resyncSeconds = 10;
  const relistSeconds = 20;
  const resyncs = 6;
  const started = performance.now();
  const child = spawn(process.execPath, [cli, "run", "--no-gateway"], {
    env: {
      ...process.env,
      ...env,
      MCP_PORTAL_RESYNC_SECONDS: String(resyncSeconds),
      MCP_PORTAL_RELIST_SECONDS: String(relistSeconds),
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  onCleanup(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  });
  try {
    const pid = child.pid!;
    const deadline = Date.now() + 20 * 60_000;
    let rssConvergeMaxMb: number | undefined;
    let sampledAt = 0;
    while ((await countRunning(docker, installation)) < total) {
      if (child.exitCode !== null) throw new Error(`node dist/cli.js run exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error("node dist/cli.js run did not converge within 20 minutes");
      checkInterrupted();
      if (Date.now() - sampledAt >= RSS_SAMPLE_MS) {
        rssConvergeMaxMb = Math.max(rssConvergeMaxMb ?? 0, await procStatusMb(pid, "VmRSS"));
        sampledAt = Date.now();
      }
      await sleep(1_000);
    }
    const convergedMs = performance.now() - started;
    // Let the initial sync finish its bookkeeping, then measure; then after the periodic resyncs, which list
    // everything every relistSeconds (so both kinds of resync are in the figure).
    await sleep(2_000);
    const rssConvergedMb = await procStatusMb(pid, "VmRSS");
    await sleep(resyncSeconds * resyncs * 1000 + 2_000);
    const rssIdleMb = await procStatusMb(pid, "VmRSS");
    const peakMb = await procStatusMb(pid, "VmHWM");
    return {
      convergedMs,
      rssConvergeMaxMb: rssConvergeMaxMb ?? rssConvergedMb,
      rssConvergedMb,
      rssIdleMb,
      peakMb,
      resyncs,
      fullListings: Math.floor((resyncSeconds * resyncs) / relistSeconds),
    };
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
}

await runBench(main);
