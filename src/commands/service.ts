import type { ParseArgsConfig } from "node:util";
import { ConfigError } from "../config.js";
import type { Logger } from "../observability/logger.js";
import { errorMessage } from "./common.js";
import { type CommandIo, UsageError } from "./io.js";

/* The shell of the long-running commands (run, gateway): options, start, and a bounded stop on SIGTERM/SIGINT. */

export interface Service {
  readonly logger: Logger;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The options both long-running commands take; each adds its own. */
export const SERVICE_OPTIONS = {
  "data-dir": { type: "string" },
  "state-dir": { type: "string" },
  installation: { type: "string" },
  backend: { type: "string" },
  listen: { type: "string" },
  "log-level": { type: "string" },
  pretty: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

/** The configuration overrides of the shared options but `--listen`, whose variable differs per command. */
export function serviceOverrides(values: {
  "data-dir"?: string | undefined;
  "state-dir"?: string | undefined;
  installation?: string | undefined;
  backend?: string | undefined;
  "log-level"?: string | undefined;
  pretty?: boolean | undefined;
}) {
  return {
    MCP_PORTAL_DATA_DIR: values["data-dir"],
    MCP_PORTAL_STATE_DIR: values["state-dir"],
    MCP_PORTAL_INSTALLATION: values.installation,
    MCP_PORTAL_BACKEND: values.backend,
    LOG_LEVEL: values["log-level"],
    LOG_PRETTY: values.pretty,
  };
}

/**
 * Runs the option parser of a long-running command: "help" prints the usage (exit 0); a bad option prints its
 * message and the usage, a bad configuration only its message (both exit 2). Returns the options or the exit code.
 */
export function serviceOptions<T extends object>(
  io: CommandIo,
  usage: string,
  parse: () => T | "help",
): T | number {
  let options: T | "help";
  try {
    options = parse();
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`${error.message}\n\n${usage}`);
      return 2;
    }
    if (error instanceof ConfigError) {
      io.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (options === "help") {
    io.stdout.write(usage);
    return 0;
  }
  return options;
}

/** Builds the service; a failure prints "cannot start" and gives exit code 1. */
export async function createService<S extends Service>(
  io: CommandIo,
  create: () => Promise<S>,
): Promise<S | number> {
  try {
    return await create();
  } catch (error) {
    io.stderr.write(`cannot start: ${errorMessage(error)}\n`);
    return 1;
  }
}

export interface ServeMessages {
  /** Logged (with the signal) when a stop begins. */
  stopping: string;
  stopped: string;
  startFailed: string;
  /** How long a stop may take before the process gives up and exits 1. */
  stopDeadlineMs: number;
}

/**
 * Starts the service, then `afterStart` (a throw there counts as a failed start: exit 1), and waits for SIGTERM
 * or SIGINT to stop it (exit 0). The handlers go in before start so a signal during a slow start is not lost.
 */
export async function serveUntilSignal(
  service: Service,
  messages: ServeMessages,
  afterStart: () => void | Promise<void>,
): Promise<number> {
  const { logger } = service;
  let resolveStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, messages.stopping);
    const deadline = setTimeout(() => {
      logger.error("shutdown took too long; exiting");
      process.exit(1);
    }, messages.stopDeadlineMs);
    deadline.unref();
    void service.stop().then(() => {
      logger.info(messages.stopped);
      resolveStopped();
    });
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  try {
    await service.start();
    await afterStart();
  } catch (error) {
    logger.error({ err: errorMessage(error) }, messages.startFailed);
    await service.stop().catch(() => undefined);
    return 1;
  }
  await stopped;
  return 0;
}
