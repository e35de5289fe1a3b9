// The whole controller wired as `run` wires it, on the in-memory engine: fast tests of the reconcile shell, the
// queue, drift healing, prune safety and restarts, with no Docker.
import { rm } from "node:fs/promises";
import { loadConfig } from "../../src/config.js";
import { createDaemon, type Daemon } from "../../src/daemon.js";
import { MemoryRuntime, type MemoryRuntimeOptions } from "../../src/docker/memory-runtime.js";
import { LABELS } from "../../src/labels.js";
import type { Clock } from "../../src/util/clock.js";
import { TestDataDir } from "./data-dir.js";
import { capturedLogger } from "./logs.js";

export interface MemoryDaemon {
  daemon: Daemon;
  runtime: MemoryRuntime;
  data: TestDataDir;
  logs: string[];
  /** Log lines (parsed) whose msg contains `text`. */
  logged(text: string): Record<string, unknown>[];
  /** Stops the daemon (the engine and the data dir stay, for a restart). */
  stop(): Promise<void>;
}

export interface MemoryDaemonOptions {
  data?: TestDataDir;
  runtime?: MemoryRuntime;
  runtimeOptions?: MemoryRuntimeOptions;
  /** Over the helper's settings; `undefined` drops one (so its default applies). */
  env?: Record<string, string | undefined>;
  clock?: Clock;
  /** Start it (initial sync) before returning (default true). */
  start?: boolean;
  /** The crash-loop backoff (default: 10 s doubling, a container counts as healthy after 30 s). */
  startBackoff?: { baseMs: number; maxMs: number; healthyAfterMs: number };
}

export async function memoryDaemon(options: MemoryDaemonOptions = {}): Promise<MemoryDaemon> {
  const data = options.data ?? (await TestDataDir.create());
  const runtime = options.runtime ?? new MemoryRuntime(options.runtimeOptions);
  const merged: Record<string, string | undefined> = {
    MCP_PORTAL_DATA_DIR: data.root,
    MCP_PORTAL_INSTALLATION: "unit",
    MCP_PORTAL_GATEWAY: "off",
    MCP_PORTAL_DEBOUNCE_MS: "0",
    MCP_PORTAL_RESYNC_SECONDS: "3600",
    MCP_PORTAL_STOP_TIMEOUT_SECONDS: "0",
    MCP_PORTAL_PORT_RANGE_START: "20000",
    MCP_PORTAL_PORT_RANGE_END: "29999",
    MCP_PORTAL_PORTS_PER_USER: "10",
    LOG_LEVEL: "debug",
    ...options.env,
  };
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(merged)) if (value !== undefined) env[key] = value;
  const { logger, logs } = capturedLogger("debug");
  const daemon = await createDaemon({
    config: loadConfig(env),
    env,
    logger,
    runtime,
    listen: false,
    watch: false,
    ...(options.clock ? { clock: options.clock } : {}),
    startBackoff: options.startBackoff ?? { baseMs: 10_000, maxMs: 60_000, healthyAfterMs: 30_000 },
  });
  if (options.start !== false) await daemon.start();
  return {
    daemon,
    runtime,
    data,
    logs,
    logged: (text) =>
      logs
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => typeof l.msg === "string" && l.msg.includes(text)),
    stop: () => daemon.stop(),
  };
}

/** Removes the data dir of a memory daemon (its engine is garbage). */
export async function disposeMemoryDaemon(d: MemoryDaemon): Promise<void> {
  await d.stop();
  await rm(d.data.root, { recursive: true, force: true });
}

/** `user/server` of every running managed container, sorted. */
export function runningServers(runtime: MemoryRuntime): string[] {
  return [...runtime.containers.values()]
    .filter((c) => c.state === "running" && c.labels[LABELS.serverId] !== undefined)
    .map((c) => `${c.labels[LABELS.userId]}/${c.labels[LABELS.serverId]}`)
    .sort();
}

/** Managed containers of one user and server. */
export function containersOf(runtime: MemoryRuntime, userId: string, serverId?: string) {
  return [...runtime.containers.values()].filter(
    (c) =>
      c.labels[LABELS.userId] === userId &&
      (serverId === undefined || c.labels[LABELS.serverId] === serverId),
  );
}

/** A catalog server for the in-memory engine (its image always exists there). */
export function memServer(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    name: id,
    image: `mcp/${id}`,
    tag: "1",
    resources: { memory_mb: 32, cpu_shares: 32 },
    ...extra,
  };
}
