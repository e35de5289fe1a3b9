// A fleet of users running stdio busybox servers (test/helpers/data-dir.ts), and an in-process daemon over it.
import { performance } from "node:perf_hooks";
import Docker from "dockerode";
import { type Config, loadConfig } from "../../src/config.js";
import { createDaemon, type Daemon } from "../../src/daemon.js";
import { DockerodeRuntime } from "../../src/docker/dockerode-runtime.js";
import type { ContainerRuntime } from "../../src/docker/runtime.js";
import { type TestDataDir, stdioServer } from "../../test/helpers/data-dir.js";
import { TEST_BUSYBOX_IMAGE } from "../../test/helpers/docker-objects.js";
import { TimedRuntime, benchLogger, onCleanup } from "./harness.js";

export const userId = (u: number): string => `user-${String(u).padStart(3, "0")}`;
export const serverId = (s: number): string => `srv-${s}`;

/** One base catalog of `servers` stdio servers; `users` users with all of them enabled. */
export async function writeFleet(data: TestDataDir, users: number, servers: number): Promise<void> {
  const ids = Array.from({ length: servers }, (_, s) => serverId(s));
  await data.baseCatalog(
    "bench",
    ids.map((id) => stdioServer(id)),
  );
  for (let u = 0; u < users; u++) await data.enable(userId(u), ids);
}

export async function requireEngine(docker: Docker): Promise<void> {
  await docker.ping();
  await docker
    .getImage(TEST_BUSYBOX_IMAGE)
    .inspect()
    .catch(() => {
      throw new Error(`image ${TEST_BUSYBOX_IMAGE} missing: run scripts/build-test-images.sh`);
    });
}

/**
 * The daemon's environment: defaults everywhere but the subnet pool (concurrency 4, debounce 300 ms unless the caller's environment
 * sets MCP_PORTAL_CONCURRENCY / MCP_PORTAL_DEBOUNCE_MS), no HTTP listener, no periodic resync during the
 * measurement, a short stop timeout (only removals between samples wait for it).
 */
export function benchEnv(dataDir: string, installation: string, subnetPool: string): Record<string, string> {
  const env: Record<string, string> = {
    MCP_PORTAL_DATA_DIR: dataDir,
    MCP_PORTAL_INSTALLATION: installation,
    // A pool of its own: integration tests running on the same engine take subnets from the default pool,
    // and the converge baseline replays the controller's subnets after a cleanup.
    MCP_PORTAL_USER_NETWORK_SUBNET_BASE: subnetPool,
    MCP_PORTAL_LISTEN: "127.0.0.1:0",
    MCP_PORTAL_RESYNC_SECONDS: "3600",
    MCP_PORTAL_STOP_TIMEOUT_SECONDS: "1",
    LOG_LEVEL: "info",
  };
  for (const key of ["MCP_PORTAL_CONCURRENCY", "MCP_PORTAL_DEBOUNCE_MS"]) {
    const value = process.env[key];
    if (value) env[key] = value;
  }
  return env;
}

export interface BenchDaemon {
  daemon: Daemon;
  timed: TimedRuntime;
  /** createDaemon(): wiring only. */
  createMs: number;
  /** start(): the first full sync, every user reconciled once. */
  startMs: number;
  stop: () => Promise<void>;
}

/**
 * createDaemon + start() in this process, with every engine call timed; stopped by the cleanup too. The engine
 * backend by default; `runtime` makes another (a Swarm manager) from the same config.
 */
export async function startBenchDaemon(
  env: Record<string, string>,
  options: {
    onLogLine?: (line: string, at: number) => void;
    runtime?: (config: Config) => ContainerRuntime;
  } = {},
): Promise<BenchDaemon> {
  const config = loadConfig(env);
  const inner: ContainerRuntime =
    options.runtime?.(config) ?? new DockerodeRuntime(new Docker(), { timeoutMs: config.dockerTimeoutMs });
  const timed = new TimedRuntime(inner);
  const t0 = performance.now();
  const daemon = await createDaemon({
    config,
    env,
    logger: benchLogger(options.onLogLine),
    runtime: timed.runtime,
    listen: false,
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await daemon.stop();
  };
  onCleanup(stop);
  const t1 = performance.now();
  await daemon.start();
  const t2 = performance.now();
  return { daemon, timed, createMs: t1 - t0, startMs: t2 - t1, stop };
}
