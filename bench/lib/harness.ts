// Shared by the reconcile-loop benchmarks: unique installations, cleanup that runs even on Ctrl-C, a runtime
// that times every engine call and remembers what was created, statistics and formatting.
import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import type Docker from "dockerode";
import type { ContainerSpec } from "../../src/desired/types.js";
import type { ContainerRuntime, NetworkSpec, Placement, VolumeSpec } from "../../src/docker/runtime.js";
import { createLogger, type Logger } from "../../src/observability/logger.js";
import { LABEL_INSTALLATION, cleanupInstallation } from "../../test/helpers/docker-objects.js";

export { benchInstallation } from "./installation.js";

// ---------------------------------------------------------------------------------------------------------
// Cleanup that runs once, on the normal path (finally) and on SIGINT/SIGTERM/SIGHUP.

type Step = () => Promise<unknown>;
const steps: Step[] = [];
let running: Promise<void> | undefined;

/** Registers a cleanup step; steps run last-registered first. */
export function onCleanup(step: Step): void {
  steps.push(step);
}

export function runCleanup(): Promise<void> {
  running ??= (async () => {
    while (steps.length > 0) {
      const step = steps.pop() as Step;
      try {
        await step();
      } catch (error) {
        process.stderr.write(
          `cleanup step failed: ${error instanceof Error ? error.message : String(error)}\n`,
        );
      }
    }
  })();
  return running;
}

let interrupted: string | undefined;

/** Throws once a signal asked the run to stop: loops call it so nothing new is created during the cleanup. */
export function checkInterrupted(): void {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
}

let mainSettled: Promise<void> | undefined;
/** How long a signal waits for the requests in flight to settle before the cleanup starts regardless. */
const SETTLE_ON_SIGNAL_MS = 10_000;

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  // `on`, not `once`: Ctrl-C reaches npm, tsx and this process together, and tsx relays it once more, so a
  // second signal arrives while the cleanup runs; with the default action it would kill the cleanup half-way.
  process.on(signal, () => {
    if (interrupted) {
      process.stderr.write(
        `${signal} during the cleanup: ignored (it finishes on its own; SIGKILL stops it)\n`,
      );
      return;
    }
    interrupted = signal;
    process.stderr.write(`\n${signal}: cleaning up before exit...\n`);
    // Loops stop at their next checkInterrupted(); what is in flight finishes first, so the cleanup's listing
    // sees it (a container created after the listing would keep its network alive).
    const settled = Promise.race([mainSettled ?? Promise.resolve(), sleep(SETTLE_ON_SIGNAL_MS)]);
    void settled.then(runCleanup).finally(() => process.exit(130));
  });
}

/** Runs `main`, then the cleanup steps whatever happened; a failure sets the exit code. */
export async function runBench(main: () => Promise<void>): Promise<void> {
  const run = main();
  mainSettled = run.then(
    () => undefined,
    () => undefined,
  );
  try {
    await run;
  } catch (error) {
    process.exitCode = 1;
    process.stderr.write(
      `benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
  } finally {
    await runCleanup();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Docker helpers.

const CALL_TIMEOUT_MS = 60_000;

function statusCode(error: unknown): number | undefined {
  const code = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === "number" ? code : undefined;
}

async function quietly(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    const code = statusCode(error);
    if (code !== 404 && code !== 409) throw error;
  }
}

/**
 * Runs `fn` over `items` with at most `concurrency` in flight. After a failure no new item starts, and the
 * promise settles only once the items in flight have (so a cleanup that follows sees everything they made).
 */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
  options: { interruptible: boolean } = { interruptible: true },
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length && !failed; i = next++) {
      try {
        if (options.interruptible) checkInterrupted();
        await fn(items[i] as T, i);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const results = await Promise.allSettled(
    Array.from({ length: Math.min(concurrency, items.length) }, worker),
  );
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (rejected) throw rejected.reason;
}

/**
 * Force-removes everything labelled with the installation, `concurrency` calls at a time (the shared test helper
 * removes one by one, too slow for 200 containers), then runs that helper as a final sweep.
 */
export async function removeInstallation(
  docker: Docker,
  installation: string,
  concurrency = 8,
): Promise<{ containers: number; networks: number; volumes: number; ms: number }> {
  const start = performance.now();
  const filters = JSON.stringify({ label: [`${LABEL_INSTALLATION}=${installation}`] });
  const signal = () => AbortSignal.timeout(CALL_TIMEOUT_MS);
  const cleanup = { interruptible: false };
  const counts = { containers: 0, networks: 0, volumes: 0 };
  // Each kind is tried even when the previous failed (a network still has an endpoint, say); the shared helper
  // sweeps up after all of them.
  const stage = async (run: () => Promise<void>) => {
    try {
      await run();
    } catch {
      // left to the sweep
    }
  };
  await stage(async () => {
    const list = await docker.listContainers({ all: true, filters, abortSignal: signal() });
    counts.containers = list.length;
    await pool(
      list,
      concurrency,
      (c) => quietly(() => docker.getContainer(c.Id).remove({ force: true, v: true, abortSignal: signal() })),
      cleanup,
    );
  });
  await stage(async () => {
    const list = await docker.listNetworks({ filters, abortSignal: signal() });
    counts.networks = list.length;
    await pool(
      list,
      concurrency,
      (n) => quietly(() => docker.getNetwork(n.Id).remove({ abortSignal: signal() })),
      cleanup,
    );
  });
  await stage(async () => {
    const list = (await docker.listVolumes({ filters, abortSignal: signal() })).Volumes ?? [];
    counts.volumes = list.length;
    await pool(
      list,
      concurrency,
      (v) => quietly(() => docker.getVolume(v.Name).remove({ force: true, abortSignal: signal() })),
      cleanup,
    );
  });
  // The sweep lists again and removes one by one; it throws if something still cannot be removed.
  const left = await cleanupInstallation(docker, installation);
  return {
    containers: counts.containers + left.containers,
    networks: counts.networks + left.networks,
    volumes: counts.volumes + left.volumes,
    ms: performance.now() - start,
  };
}

/**
 * Removes volumes by name: a container create naming a volume that does not exist makes the engine create it
 * without labels, which no label sweep would find.
 */
export async function removeVolumesByName(docker: Docker, names: readonly string[]): Promise<void> {
  await pool(
    names,
    8,
    (name) =>
      quietly(() =>
        docker.getVolume(name).remove({ force: true, abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS) }),
      ),
    { interruptible: false },
  );
}

/** Containers of the installation in state `running`. */
export async function countRunning(docker: Docker, installation: string): Promise<number> {
  const list = await docker.listContainers({
    filters: JSON.stringify({ label: [`${LABEL_INSTALLATION}=${installation}`], status: ["running"] }),
  });
  return list.length;
}

// ---------------------------------------------------------------------------------------------------------
// A runtime that times every engine call by method and remembers the create requests.

export interface OpStats {
  count: number;
  totalMs: number;
}

export class TimedRuntime {
  readonly stats = new Map<string, OpStats>();
  readonly networks: NetworkSpec[] = [];
  readonly volumes: VolumeSpec[] = [];
  readonly containers: { spec: ContainerSpec; name: string; placement?: Placement }[] = [];
  readonly runtime: ContainerRuntime;

  constructor(inner: ContainerRuntime) {
    const stats = this.stats;
    const record = (op: string, ms: number) => {
      const s = stats.get(op) ?? { count: 0, totalMs: 0 };
      s.count++;
      s.totalMs += ms;
      stats.set(op, s);
    };
    this.runtime = new Proxy(inner, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function" || typeof prop !== "string" || prop === "events") return value;
        return (...args: unknown[]) => {
          if (prop === "createNetwork") this.networks.push(args[0] as NetworkSpec);
          if (prop === "createVolume") this.volumes.push(args[0] as VolumeSpec);
          if (prop === "createContainer")
            this.containers.push({
              spec: args[0] as ContainerSpec,
              name: args[1] as string,
              ...(args[2] ? { placement: args[2] } : {}),
            });
          const start = performance.now();
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (result instanceof Promise) {
            return result.finally(() => record(prop, performance.now() - start));
          }
          record(prop, performance.now() - start);
          return result;
        };
      },
    });
  }

  reset(): void {
    this.stats.clear();
  }

  table(indent = "    "): string {
    return statsTable(this.stats, indent);
  }
}

/** Times `fn` into `stats` under `op`. */
export async function timeOp<T>(stats: Map<string, OpStats>, op: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    const s = stats.get(op) ?? { count: 0, totalMs: 0 };
    s.count++;
    s.totalMs += performance.now() - start;
    stats.set(op, s);
  }
}

/** One line per operation, most time first: calls, total and mean client-side time, share of the total. */
export function statsTable(stats: ReadonlyMap<string, OpStats>, indent = "    "): string {
  const rows = [...stats.entries()].sort((a, b) => b[1].totalMs - a[1].totalMs);
  const total = rows.reduce((sum, [, s]) => sum + s.totalMs, 0);
  return rows
    .map(
      ([op, s]) =>
        `${indent}${op.padEnd(20)} ${String(s.count).padStart(5)} calls  ${fmtMs(s.totalMs).padStart(9)} total  ` +
        `${fmtMs(s.totalMs / s.count).padStart(8)} mean  ${((s.totalMs / total) * 100).toFixed(1).padStart(5)} %`,
    )
    .join("\n");
}

/** Counts of an instrumented runtime's `callCounts` between two snapshots. */
export function countsDelta(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [op, n] of after) {
    const d = n - (before.get(op) ?? 0);
    if (d !== 0) delta[op] = d;
  }
  return delta;
}

// ---------------------------------------------------------------------------------------------------------
// Logging: the daemon logs at info as in production, into a sink that drops the lines (or hands them over).

export function benchLogger(onLine?: (line: string, at: number) => void): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (onLine) onLine(chunk.toString("utf8"), performance.now());
      done();
    },
  });
  return createLogger({ level: "info", destination: sink });
}

// ---------------------------------------------------------------------------------------------------------
// Statistics and formatting.

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: p95 of 20 samples is the 19th value.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export const fmtMs = (ms: number): string =>
  ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;

export const fmtMb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

export function out(line = ""): void {
  process.stdout.write(`${line}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
