import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, open, readFile } from "node:fs/promises";
import path from "node:path";
import { parseListen } from "../api/http-server.js";
import type { Config } from "../config.js";
import {
  type GatewayIdentity,
  type GatewayVerdict,
  canonicalStateDir,
  describeVerdict,
  formatListen,
  judgeGateway,
  probeGateway,
  readIdentityFile,
} from "../gateway/identity.js";
import type { Logger } from "../observability/logger.js";
import { type BackoffPolicy, backoffDelay } from "../util/backoff.js";
import { PORTAL_VERSION } from "../version.js";

export const DEFAULT_GATEWAY_LISTEN = "127.0.0.1:8081";
export const GATEWAY_LOG_FILE = "gateway.log";
/** The gateway process's raw stdout/stderr (what bypasses its logger, e.g. a crash), replaced at each start. */
export const GATEWAY_OUTPUT_FILE = "gateway.out";

/** Another installation's gateway (or something else) answers on the gateway's address. */
export class GatewayConflictError extends Error {
  readonly code = "GATEWAY_CONFLICT";
}

export interface GatewaySupervisorOptions {
  config: Pick<Config, "dataDir" | "stateDir" | "installation">;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Leave the gateway running when `run` stops (a later `run` of this installation adopts it). */
  keep: boolean;
  /** How to run the CLI (default: this node, its exec args and entry script). */
  command?: { execPath: string; args: string[] };
  /** Restart backoff after unexpected exits (default 1 s doubling to 30 s; reset after 60 s of running). */
  restartBackoff?: BackoffPolicy & { healthyAfterMs: number };
  /** How long a started gateway may take to answer /identity (default 30 s). */
  readyTimeoutMs?: number;
  /** How long a stopping gateway may take before SIGKILL (default 20 s). */
  stopTimeoutMs?: number;
  /** How often an adopted gateway (not our child) is checked (default 5 s). */
  monitorIntervalMs?: number;
}

type Managed =
  | { kind: "child"; child: ChildProcess; startedAt: number; exited: Promise<void> }
  | { kind: "adopted"; identity: GatewayIdentity };

/**
 * `run`'s gateway: finds the one already serving this installation (adopts it) or starts `mcp-portal gateway` as
 * its own process (output in <state-dir>/gateway.log, rotated), restarts it with backoff when it exits
 * unexpectedly, and stops it (SIGTERM, waiting for it) when `run` stops, unless `keep`. A started gateway is
 * linked to `run` by an IPC channel (unless `keep`), so it stops itself even when `run` is killed with SIGKILL.
 * Whatever answers on the gateway's address is identity-checked: another installation's gateway, or anything
 * that does not report an identity, is refused (GatewayConflictError at start, an error log while supervising).
 */
export class GatewaySupervisor {
  private readonly listen: string;
  private readonly expected: { installation: string; stateDir: string; version: string };
  private managed: Managed | undefined;
  private stopping = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private monitorTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: GatewaySupervisorOptions) {
    this.listen = formatListen(
      parseListen(options.env.MCP_PORTAL_GATEWAY_LISTEN?.trim() || DEFAULT_GATEWAY_LISTEN),
    );
    this.expected = {
      installation: options.config.installation,
      stateDir: canonicalStateDir(options.config.stateDir),
      version: PORTAL_VERSION,
    };
  }

  /** The gateway's pid, when one is managed. */
  get pid(): number | undefined {
    if (!this.managed) return undefined;
    return this.managed.kind === "child" ? this.managed.child.pid : this.managed.identity.pid;
  }

  async start(): Promise<void> {
    const { listen, verdict } = await this.look();
    if (verdict.kind === "stranger" || verdict.kind === "unknown") throw this.conflict(listen, verdict);
    await this.take(listen, verdict);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    clearInterval(this.monitorTimer);
    const managed = this.managed;
    if (!managed) return;
    const { logger, keep } = this.options;
    if (keep) {
      if (managed.kind === "child") managed.child.unref();
      logger.info({ pid: this.pid }, "leaving the gateway running (--keep-gateway)");
      return;
    }
    if (managed.kind === "child") {
      await this.stopChild(managed.child, managed.exited);
    } else {
      await this.stopAdopted(managed.identity);
    }
    logger.info("gateway stopped");
  }

  /** What answers on the gateway's address; with nothing there, a gateway the identity file names elsewhere. */
  private async look(): Promise<{ listen: string; verdict: GatewayVerdict }> {
    const verdict = judgeGateway(await probeGateway(this.listen), this.expected);
    if (verdict.kind !== "none") return { listen: this.listen, verdict };
    const file = await readIdentityFile(this.options.config.stateDir);
    if (file?.kind !== "identity" || file.identity.listen === this.listen)
      return { listen: this.listen, verdict };
    const elsewhere = await probeGateway(file.identity.listen);
    // Only a live gateway that still answers as the one the file names counts; a stale file is ignored.
    if (elsewhere.kind !== "identity" || elsewhere.identity.pid !== file.identity.pid)
      return { listen: this.listen, verdict };
    return { listen: file.identity.listen, verdict: judgeGateway(elsewhere, this.expected) };
  }

  private conflict(listen: string, verdict: GatewayVerdict): GatewayConflictError {
    const advice =
      verdict.kind === "stranger"
        ? "each installation needs its own MCP_PORTAL_GATEWAY_LISTEN"
        : "stop what listens there (a gateway of mcp-portal 0.1 reports no identity: stop it once), " +
          "or set MCP_PORTAL_GATEWAY_LISTEN to a free address";
    return new GatewayConflictError(`cannot use the gateway: ${describeVerdict(listen, verdict)}; ${advice}`);
  }

  /** Adopts our own gateway, replaces one of another version, or starts one where nothing answers. */
  private async take(listen: string, verdict: GatewayVerdict): Promise<void> {
    const { logger } = this.options;
    if (verdict.kind === "ours") {
      this.managed = { kind: "adopted", identity: verdict.identity };
      logger.info(
        { pid: verdict.identity.pid, listen, started_at: verdict.identity.started_at },
        "adopted the running gateway of this installation",
      );
      if (listen !== this.listen)
        logger.warn({ listen, configured: this.listen }, "the adopted gateway listens on another address");
      this.monitorTimer = setInterval(() => void this.checkAdopted(), this.options.monitorIntervalMs ?? 5000);
      this.monitorTimer.unref();
      return;
    }
    if (verdict.kind === "other_version") {
      logger.warn(
        { pid: verdict.identity.pid, version: verdict.identity.version, ours: PORTAL_VERSION },
        "replacing this installation's gateway of another version",
      );
      await this.stopAdopted(verdict.identity);
    }
    await this.spawn();
  }

  private async spawn(): Promise<void> {
    const { config, env, logger, keep } = this.options;
    await mkdir(config.stateDir, { recursive: true });
    const command = this.options.command ?? {
      execPath: process.execPath,
      args: [...process.execArgv, process.argv[1] ?? ""],
    };
    const output = await open(path.join(config.stateDir, GATEWAY_OUTPUT_FILE), "w", 0o600);
    let child: ChildProcess;
    try {
      child = spawn(
        command.execPath,
        [
          ...command.args,
          "gateway",
          "--data-dir",
          config.dataDir,
          "--state-dir",
          config.stateDir,
          "--installation",
          config.installation,
          "--listen",
          this.listen,
          "--log-file",
          path.join(config.stateDir, GATEWAY_LOG_FILE),
        ],
        // Its own process group: a terminal's Ctrl-C reaches `run`, which stops the gateway in order.
        { detached: true, stdio: ["ignore", output.fd, output.fd, ...(keep ? [] : ["ipc" as const])], env },
      );
    } finally {
      await output.close();
    }
    const exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        resolve();
        this.onExit(child, code, signal);
      });
    });
    child.once("error", (error) => logger.error({ err: error.message }, "cannot start the gateway"));
    this.managed = { kind: "child", child, startedAt: Date.now(), exited };
    logger.info(
      { pid: child.pid, listen: this.listen, log: path.join(config.stateDir, GATEWAY_LOG_FILE) },
      "gateway started",
    );
    await this.waitReady(child, exited);
  }

  private async waitReady(child: ChildProcess, exited: Promise<void>): Promise<void> {
    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 30_000);
    let gone = false;
    void exited.then(() => (gone = true));
    while (!gone && !this.stopping && Date.now() < deadline) {
      const probed = await probeGateway(this.listen, 1000);
      if (probed.kind === "identity" && probed.identity.pid === child.pid) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!gone && !this.stopping)
      this.options.logger.warn(
        { pid: child.pid, listen: this.listen },
        "the gateway does not answer yet; see gateway.log",
      );
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || this.managed?.kind !== "child" || this.managed.child !== child) return;
    const { logger } = this.options;
    const policy = this.options.restartBackoff ?? { baseMs: 1000, maxMs: 30_000, healthyAfterMs: 60_000 };
    this.failures = Date.now() - this.managed.startedAt >= policy.healthyAfterMs ? 1 : this.failures + 1;
    const delay = backoffDelay(this.failures, policy);
    this.managed = undefined;
    void this.outputTail().then((output) => {
      logger.error(
        { pid: child.pid, exit_code: code, signal, restart_in_ms: delay, ...(output ? { output } : {}) },
        "the gateway exited unexpectedly; restarting it",
      );
    });
    this.scheduleRestart(delay);
  }

  private scheduleRestart(delay: number): void {
    if (this.stopping) return;
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => void this.restart(), delay);
  }

  /** After an exit (or an adopted gateway vanished): look again, then adopt, start, or refuse and retry later. */
  private async restart(): Promise<void> {
    if (this.stopping) return;
    const { logger } = this.options;
    try {
      const { listen, verdict } = await this.look();
      if (this.stopping) return;
      if (verdict.kind === "stranger" || verdict.kind === "unknown") {
        this.failures += 1;
        logger.error({ err: this.conflict(listen, verdict).message }, "cannot restart the gateway");
        this.scheduleRestart(backoffDelay(this.failures, { baseMs: 1000, maxMs: 30_000 }));
        return;
      }
      await this.take(listen, verdict);
    } catch (error) {
      this.failures += 1;
      logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        "cannot restart the gateway",
      );
      this.scheduleRestart(backoffDelay(this.failures, { baseMs: 1000, maxMs: 30_000 }));
    }
  }

  private async checkAdopted(): Promise<void> {
    const managed = this.managed;
    if (this.stopping || managed?.kind !== "adopted") return;
    const probed = await probeGateway(managed.identity.listen);
    if (this.stopping || this.managed !== managed) return;
    if (probed.kind === "identity" && probed.identity.pid === managed.identity.pid) return;
    clearInterval(this.monitorTimer);
    this.managed = undefined;
    this.options.logger.warn({ pid: managed.identity.pid }, "the adopted gateway is gone; starting one");
    await this.restart();
  }

  private async stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    if (await settlesWithin(exited, this.options.stopTimeoutMs ?? 20_000)) return;
    this.options.logger.error({ pid: child.pid }, "the gateway did not stop in time; killing it");
    child.kill("SIGKILL");
    await settlesWithin(exited, 5000);
  }

  /** Stops a gateway we did not start, after checking once more that it still answers as that gateway. */
  private async stopAdopted(identity: GatewayIdentity): Promise<void> {
    const probed = await probeGateway(identity.listen);
    if (probed.kind !== "identity" || probed.identity.pid !== identity.pid) return;
    if (!signal(identity.pid, "SIGTERM")) return;
    const deadline = Date.now() + (this.options.stopTimeoutMs ?? 20_000);
    while (alive(identity.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (alive(identity.pid)) {
      this.options.logger.error({ pid: identity.pid }, "the gateway did not stop in time; killing it");
      signal(identity.pid, "SIGKILL");
    }
  }

  private async outputTail(): Promise<string | undefined> {
    try {
      const text = await readFile(path.join(this.options.config.stateDir, GATEWAY_OUTPUT_FILE), "utf8");
      return text.trim() === "" ? undefined : text.slice(-2000);
    } catch {
      return undefined;
    }
  }
}

function signal(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false;
  }
}

/** Whether `pid` still runs; an exited process nobody reaped yet (a zombie, Linux /proc) counts as gone. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  if (!HAS_PROC) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

const HAS_PROC = existsSync("/proc/self/stat");

async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
