// Runs the controller against the real engine for integration tests: in-process (to inspect its state) or
// as a child process (to kill it).
import { spawn, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import { loadConfig } from "../../src/config.js";
import { createDaemon, type Daemon } from "../../src/daemon.js";
import { createLogger } from "../../src/observability/logger.js";
import type { UserStatus } from "../../src/contracts/status-file.js";

/** A port range of its own per test daemon: installations on one engine do not see each other's ports. */
export function testPortRange(): { start: number; end: number } {
  const start = 30_000 + randomInt(0, 300) * 100;
  return { start, end: start + 999 };
}

export function testEnv(
  dataDir: string,
  installation: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  const ports = testPortRange();
  return {
    MCP_PORTAL_DATA_DIR: dataDir,
    MCP_PORTAL_INSTALLATION: installation,
    MCP_PORTAL_PORT_RANGE_START: String(ports.start),
    MCP_PORTAL_PORT_RANGE_END: String(ports.end),
    MCP_PORTAL_PORTS_PER_USER: "10",
    MCP_PORTAL_DEBOUNCE_MS: "100",
    MCP_PORTAL_STOP_TIMEOUT_SECONDS: "1",
    MCP_PORTAL_RESYNC_SECONDS: "600",
    MCP_PORTAL_LISTEN: "127.0.0.1:0",
    // Most tests exercise the controller alone: HTTP servers publish their ports themselves. The gateway's own
    // tests turn it on (then containers publish nothing and readiness comes from MCP probes).
    MCP_PORTAL_GATEWAY: "off",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...extra,
  };
}

export interface StartedDaemon {
  daemon: Daemon;
  logs: string[];
  stop(): Promise<void>;
}

export async function startDaemon(
  env: Record<string, string>,
  options: { listen?: boolean } = {},
): Promise<StartedDaemon> {
  const config = loadConfig(env);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString("utf8"));
      done();
    },
  });
  const logger = createLogger({
    level: (env.LOG_LEVEL === "silent" ? "info" : env.LOG_LEVEL) as "info",
    destination: sink,
  });
  const daemon = await createDaemon({
    config,
    env,
    logger,
    listen: options.listen ?? false,
    startBackoff: { baseMs: 500, maxMs: 5_000, healthyAfterMs: 3_000 },
  });
  await daemon.start();
  return { daemon, logs, stop: () => daemon.stop() };
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`,
  );
}

export async function readStatus(stateDir: string, userId: string): Promise<UserStatus | undefined> {
  try {
    return JSON.parse(
      await readFile(path.join(stateDir, "users", userId, "status.json"), "utf8"),
    ) as UserStatus;
  } catch {
    return undefined;
  }
}

const REPO = path.resolve(import.meta.dirname, "../..");

/** The CLI as a child process (`node --import tsx src/cli.ts run`), for kill -9 and signal tests. */
export function spawnDaemon(
  env: Record<string, string>,
  args: string[] = [],
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(REPO, "src/cli.ts"), "run", ...args], {
    cwd: REPO,
    env: { ...process.env, ...env, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}
