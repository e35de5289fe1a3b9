/**
 * The Swarm backend on the three-node lab (scripts/swarm-lab.sh, as root): cold converge and no-op resync.
 *
 *  1. Cold converge: 10 users x 3 stdio busybox servers (30 services, 10 attachable overlays) from an empty swarm
 *     by the in-process controller (createDaemon on the manager, MCP_PORTAL_BACKEND=swarm), until every service
 *     has a running task. start() returns once the first full sync has created everything; Swarm then starts the
 *     tasks on their nodes.
 *  2. Baseline: everything removed, then the very requests the controller sent (the overlay create bodies of
 *     SwarmRuntime, the service create bodies of serviceSpec with the same placement) straight through dockerode,
 *     per user in the controller's order (network, then its services), with the controller's concurrency, until
 *     every service has a running task. controller / baseline is the controller's overhead.
 *  3. No-op resync with the 30 services converged: controller.resync() + idle(), 10 times: median wall time, the
 *     runtime calls and the HTTP requests to the manager per resync (whatever the number of services: services,
 *     tasks and networks listed once each).
 *
 * Rounds alternate their order (C B, B C, C B); the figures are medians of the 3 rounds.
 * Run: npm run bench:swarm   (BENCH_USERS, BENCH_SERVERS_PER_USER, BENCH_ROUNDS override the defaults)
 */
import { performance } from "node:perf_hooks";
import Docker from "dockerode";
import { loadConfig } from "../src/config.js";
import { SwarmRuntime, overlayNetworkBody } from "../src/docker/swarm-runtime.js";
import { LABELS } from "../src/labels.js";
import { serviceSpec } from "../src/swarm/service-spec.js";
import { TestDataDir } from "../test/helpers/data-dir.js";
import { startSwarmLab } from "../test/helpers/swarm-lab.js";
import { benchEnv, startBenchDaemon, writeFleet } from "./lib/fleet.js";
import {
  benchInstallation,
  checkInterrupted,
  fmtMs,
  median,
  onCleanup,
  out,
  pool,
  runBench,
  sleep,
} from "./lib/harness.js";

const USERS = Number(process.env.BENCH_USERS ?? 10);
const SERVERS_PER_USER = Number(process.env.BENCH_SERVERS_PER_USER ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RESYNCS = 10;
/** Upper bound on one converge (30 tasks starting on three nodes of one 2-core machine take well under this). */
const CONVERGE_TIMEOUT_MS = 300_000;
/** Upper bound on removing one round's services and networks (tasks get their 10 s stop grace period). */
const CLEANUP_TIMEOUT_MS = 180_000;

interface Capture {
  networks: Record<string, unknown>[];
  /** Per user (its network name), its services' create bodies in the controller's order. */
  services: Map<string, Record<string, unknown>[]>;
}

/** A manager connection whose HTTP requests are counted. */
function countingDocker(socketPath: string): { docker: Docker; requests: Map<string, number> } {
  const docker = new Docker({ socketPath });
  const requests = new Map<string, number>();
  const modem = docker.modem as unknown as {
    dial: (o: { path?: string; method?: string }, cb: unknown) => void;
  };
  const dial = modem.dial.bind(modem);
  modem.dial = (options, cb) => {
    const key = `${options.method ?? "GET"} ${(options.path ?? "").replace(/\?.*$/, "").replace(/\/[0-9a-z]{25}(\/|$)/, "/{id}$1")}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
    dial(options, cb);
  };
  return { docker, requests };
}

/** Waits until every service of the installation has a running task; returns when that was first seen. */
async function allRunning(docker: Docker, installation: string, expected: number): Promise<number> {
  const deadline = performance.now() + CONVERGE_TIMEOUT_MS;
  for (;;) {
    checkInterrupted();
    const [services, tasks] = await Promise.all([
      docker.listServices({ filters: { label: [`${LABELS.installation}=${installation}`] } }),
      docker.listTasks({ filters: { "desired-state": ["running"] } }),
    ]);
    const ids = new Set(services.map((s) => s.ID));
    const running = new Set(
      (tasks as { ServiceID: string; Status: { State: string } }[])
        .filter((t) => ids.has(t.ServiceID) && t.Status.State === "running")
        .map((t) => t.ServiceID),
    );
    if (services.length === expected && running.size === expected) return performance.now();
    if (performance.now() > deadline)
      throw new Error(`only ${running.size} of ${expected} services running after ${CONVERGE_TIMEOUT_MS} ms`);
    await sleep(200);
  }
}

/**
 * Removes the installation's services, then its networks once their tasks are gone, and waits until the manager
 * lists neither (Swarm removes an overlay asynchronously: its name stays taken for a moment).
 */
async function removeAll(docker: Docker, installation: string): Promise<void> {
  const filters = { label: [`${LABELS.installation}=${installation}`] };
  const deadline = performance.now() + CLEANUP_TIMEOUT_MS;
  for (;;) {
    const services = await docker.listServices({ filters });
    await Promise.all(
      services.map((s) =>
        docker
          .getService(s.ID)
          .remove()
          .catch(() => undefined),
      ),
    );
    const networks = await docker.listNetworks({ filters });
    await Promise.all(
      networks.map((n) =>
        docker
          .getNetwork(n.Id)
          .remove()
          .catch(() => undefined),
      ),
    );
    if (services.length === 0 && networks.length === 0) return;
    if (performance.now() > deadline)
      throw new Error(
        `${services.length} services and ${networks.length} networks still there after cleanup`,
      );
    await sleep(1000);
  }
}

async function controllerRound(
  socketPath: string,
  installation: string,
  measureResync: boolean,
): Promise<{ createdMs: number; runningMs: number; capture: Capture; resync?: string[] }> {
  const data = await TestDataDir.create();
  onCleanup(() => data.dispose());
  await writeFleet(data, USERS, SERVERS_PER_USER);
  const env = {
    ...benchEnv(data.root, installation, "10.64.0.0/16"),
    MCP_PORTAL_BACKEND: "swarm",
    MCP_PORTAL_GATEWAY: "on",
    // The watcher's periodic listing would mix into the resync's counts: the bench measures the resync alone.
    MCP_PORTAL_SWARM_POLL_SECONDS: "3600",
    DOCKER_HOST: `unix://${socketPath}`,
  };
  const config = loadConfig(env);
  const { docker, requests } = countingDocker(socketPath);
  const { daemon, timed, startMs, stop } = await startBenchDaemon(env, {
    runtime: () =>
      new SwarmRuntime(docker, {
        timeoutMs: config.dockerTimeoutMs,
        restartDelayMs: config.swarm.restartDelayMs,
        crashLoopFailures: config.swarm.crashLoopFailures,
        crashLoopWindowMs: config.swarm.crashLoopWindowMs,
      }),
  });
  const t0 = performance.now() - startMs;
  const created = performance.now();
  const running = await allRunning(docker, installation, USERS * SERVERS_PER_USER);
  const capture: Capture = {
    networks: timed.networks.map((n) => overlayNetworkBody(n)),
    services: new Map(),
  };
  for (const c of timed.containers) {
    const list = capture.services.get(c.spec.network) ?? [];
    list.push(
      serviceSpec(c.spec, c.name, {
        restartDelayMs: config.swarm.restartDelayMs,
        placementNodeId: c.placement?.nodeId,
        volumeLabels: () => undefined,
      }),
    );
    capture.services.set(c.spec.network, list);
  }
  let resync: string[] | undefined;
  if (measureResync) {
    await daemon.controller.idle();
    const times: number[] = [];
    const perResync: string[] = [];
    for (let i = 0; i < RESYNCS; i++) {
      timed.reset();
      requests.clear();
      const start = performance.now();
      await daemon.controller.resync();
      await daemon.controller.idle();
      times.push(performance.now() - start);
      if (i === RESYNCS - 1) {
        const calls = [...timed.stats].map(([op, s]) => `${op} ${s.count}`).join(", ");
        const http = [...requests].map(([r, n]) => `${r} ${n}`).join(", ");
        perResync.push(`runtime calls: ${calls}`, `HTTP requests to the manager: ${http}`);
      }
    }
    resync = [`median ${fmtMs(median(times))} (${times.map((t) => fmtMs(t)).join(", ")})`, ...perResync];
  }
  await stop();
  await data.dispose();
  return { createdMs: created - t0, runningMs: running - t0, capture, ...(resync ? { resync } : {}) };
}

async function baselineRound(
  socketPath: string,
  installation: string,
  capture: Capture,
  concurrency: number,
): Promise<{ createdMs: number; runningMs: number }> {
  const docker = new Docker({ socketPath });
  const t0 = performance.now();
  await pool(capture.networks, concurrency, async (network) => {
    checkInterrupted();
    await docker.createNetwork(network as unknown as Docker.NetworkCreateOptions);
    for (const body of capture.services.get(network.Name as string) ?? [])
      await docker.createService(body as unknown as Docker.CreateServiceOptions);
  });
  const created = performance.now();
  const running = await allRunning(docker, installation, USERS * SERVERS_PER_USER);
  return { createdMs: created - t0, runningMs: running - t0 };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench:swarm starts the three-node lab: run it as root");
  out(
    `bench:swarm: ${USERS} users x ${SERVERS_PER_USER} servers = ${USERS * SERVERS_PER_USER} services, ${ROUNDS} rounds`,
  );
  const labStart = performance.now();
  const lab = await startSwarmLab({ images: ["mcp-portal-test/busybox:1"] });
  onCleanup(() => lab.down());
  out(`lab up in ${fmtMs(performance.now() - labStart)} (${lab.nodes.map((n) => n.name).join(", ")})`);
  const socketPath = lab.nodes[0]!.sock;
  const manager = new Docker({ socketPath });
  const installation = benchInstallation("swarm");
  onCleanup(() => removeAll(manager, installation));
  const concurrency = loadConfig({ MCP_PORTAL_DATA_DIR: "." }).concurrency;
  const controller: { createdMs: number; runningMs: number }[] = [];
  const baseline: { createdMs: number; runningMs: number }[] = [];
  let capture: Capture | undefined;
  let resync: string[] | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 || !capture ? ["C", "B"] : ["B", "C"];
    for (const phase of order) {
      checkInterrupted();
      if (phase === "C") {
        const result = await controllerRound(socketPath, installation, resync === undefined);
        capture = result.capture;
        resync ??= result.resync;
        controller.push(result);
        out(
          `  round ${round + 1} controller: created ${fmtMs(result.createdMs)}, all running ${fmtMs(result.runningMs)}`,
        );
      } else {
        const result = await baselineRound(socketPath, installation, capture!, concurrency);
        baseline.push(result);
        out(
          `  round ${round + 1} dockerode:  created ${fmtMs(result.createdMs)}, all running ${fmtMs(result.runningMs)}`,
        );
      }
      await removeAll(manager, installation);
    }
  }
  const c = median(controller.map((r) => r.runningMs));
  const b = median(baseline.map((r) => r.runningMs));
  out();
  out(
    `cold converge (all ${USERS * SERVERS_PER_USER} tasks running): controller ${fmtMs(c)} vs dockerode ${fmtMs(b)}: ratio ${(c / b).toFixed(2)}`,
  );
  out(
    `  creates only: controller ${fmtMs(median(controller.map((r) => r.createdMs)))} vs dockerode ${fmtMs(median(baseline.map((r) => r.createdMs)))}`,
  );
  out(`no-op resync (${USERS * SERVERS_PER_USER} services converged, ${RESYNCS} runs):`);
  for (const line of resync ?? []) out(`  ${line}`);
}

void runBench(main);
