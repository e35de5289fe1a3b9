import { pino } from "pino";
import type { DestinationStream, Level, Logger } from "pino";

export type { Logger } from "pino";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = Level | "silent";

/**
 * Paths that may hold secret material, redacted by the logger itself so no call site can leak them.
 * `*.x` matches one level below the root only, so the root key is listed too; deeper common shapes are spelled out.
 */
export const REDACT_PATHS: readonly string[] = [
  ...["value", "secret", "secrets", "token", "password", "env", "environment"].flatMap((key) => [
    key,
    `*.${key}`,
    `*.*.${key}`,
  ]),
  "authorization",
  "headers.authorization",
  "headers.cookie",
  "*.headers.authorization",
  "*.headers.cookie",
  "req.headers.authorization",
  "req.headers.cookie",
];

export const REDACTED = "[REDACTED]";

export interface LoggerOptions {
  level?: LogLevel;
  /** Human-readable output through pino-pretty (a devDependency); JSON lines otherwise. */
  pretty?: boolean;
  /** Where JSON lines go (default stdout). Ignored when `pretty` is set: pino-pretty writes to stdout. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = {
    level: options.level ?? "info",
    base: { name: "mcp-portal", pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
  };
  if (options.pretty === true) {
    const transport = prettyTransport();
    if (transport !== undefined) return pino(base, transport);
    const logger = pino(base, options.destination);
    logger.warn("pino-pretty is not installed; logging JSON");
    return logger;
  }
  return options.destination === undefined ? pino(base) : pino(base, options.destination);
}

function prettyTransport(): DestinationStream | undefined {
  try {
    // Resolved (and the module loaded, in a worker thread) only when pretty output is asked for.
    return pino.transport({
      target: "pino-pretty",
      options: { destination: 1, translateTime: "SYS:standard" },
    });
  } catch {
    return undefined;
  }
}

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}
