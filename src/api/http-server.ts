import Fastify from "fastify";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { LevelWithSilent } from "pino";
import type { Registry } from "prom-client";
import { z } from "zod";
import type { Logger } from "../observability/logger.js";

/*
 * The daemon's HTTP listener: probes and metrics here; the REST API and live events register their routes on the
 * returned instance (`server.register(plugin, { prefix: "/api/v1" })`) before `listen`.
 */

export interface HealthChecks {
  isShuttingDown(): boolean;
  /** Should answer from cached state (e.g. the last ping); it is bounded by `readinessTimeoutMs` anyway. */
  dockerReachable(): boolean | Promise<boolean>;
  firstSyncDone(): boolean;
}

export interface HttpServerOptions {
  registry: Registry;
  health: HealthChecks;
  logger: Logger;
  /** How long /readyz waits for `dockerReachable` before calling Docker unreachable (default 2000 ms). */
  readinessTimeoutMs?: number;
}

export type NotReadyReason = "shutting down" | "initial sync not done" | "docker unreachable";

export type HttpServer = FastifyInstance;

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { registry, health, logger } = options;
  const readinessTimeoutMs = options.readinessTimeoutMs ?? 2000;
  // Typed as Fastify's base logger so the instance is a plain FastifyInstance that route plugins accept as is.
  const loggerInstance: FastifyBaseLogger = logger;
  const server: HttpServer = Fastify({
    loggerInstance,
    // Bounds a slow client's request; long-lived responses (server-sent events) are not affected.
    requestTimeout: 30_000,
    return503OnClosing: true,
  });

  // Probes and scrapes arrive every few seconds: log them only when something goes wrong (never more verbosely
  // than the logger itself is configured).
  const quiet = { logLevel: quietLevel(logger) };

  server.get("/metrics", quiet, async (_request, reply) => {
    const body = await registry.metrics();
    return reply.header("cache-control", "no-store").type(registry.contentType).send(body);
  });

  server.get("/healthz", quiet, async (_request, reply) => {
    return reply.header("cache-control", "no-store").send({ status: "ok" });
  });

  server.get("/readyz", quiet, async (request, reply) => {
    const reason = await notReadyReason(health, readinessTimeoutMs, (error) =>
      request.log.warn({ err: error }, "docker reachability check failed"),
    );
    reply.header("cache-control", "no-store");
    if (reason === undefined) return reply.code(200).send({ status: "ready" });
    return reply.code(503).send({ status: "not ready", reason });
  });

  return server;
}

function quietLevel(logger: Logger): LevelWithSilent {
  const levels = ["warn", "error", "fatal"] as const;
  return levels.find((level) => logger.isLevelEnabled(level)) ?? "silent";
}

async function notReadyReason(
  health: HealthChecks,
  timeoutMs: number,
  onError: (error: unknown) => void,
): Promise<NotReadyReason | undefined> {
  if (health.isShuttingDown()) return "shutting down";
  if (!health.firstSyncDone()) return "initial sync not done";
  if (!(await dockerReachableWithin(health, timeoutMs, onError))) return "docker unreachable";
  return undefined;
}

async function dockerReachableWithin(
  health: HealthChecks,
  timeoutMs: number,
  onError: (error: unknown) => void,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve(health.dockerReachable()), timeout]);
  } catch (error) {
    onError(error);
    return false;
  } finally {
    clearTimeout(timer);
  }
}

// ---- MCP_PORTAL_LISTEN ----

export interface ListenAddress {
  /** Host without brackets, as `server.listen({ host, port })` takes it. */
  host: string;
  port: number;
}

const hostSchema = z.union([
  z.ipv4(),
  z.ipv6(),
  z.hostname().refine((host) => !/^[\d.]+$/.test(host), "not a valid IPv4 address"),
]);
const portSchema = z
  .string()
  .regex(/^\d{1,5}$/, "port must be a number")
  .transform(Number)
  .pipe(z.number().int().min(0).max(65535));

/** zod schema for "host:port" or "[ipv6]:port"; usable inside a config schema. */
export const listenSchema = z
  .string()
  .trim()
  .transform((value, ctx) => {
    const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(value);
    if (bracketed !== null) return { host: bracketed[1] ?? "", port: bracketed[2] ?? "", ipv6: true };
    const colon = value.lastIndexOf(":");
    if (colon <= 0) {
      ctx.addIssue({ code: "custom", message: 'expected "host:port" or "[ipv6]:port"' });
      return z.NEVER;
    }
    const host = value.slice(0, colon);
    if (host.includes(":")) {
      ctx.addIssue({ code: "custom", message: 'an IPv6 address needs brackets: "[::1]:8080"' });
      return z.NEVER;
    }
    return { host, port: value.slice(colon + 1), ipv6: false };
  })
  .pipe(
    z
      .object({ host: hostSchema, port: portSchema, ipv6: z.boolean() })
      .refine((address) => !address.ipv6 || z.ipv6().safeParse(address.host).success, {
        message: "brackets must hold an IPv6 address",
        path: ["host"],
      }),
  )
  .transform(({ host, port }): ListenAddress => ({ host, port }));

export class InvalidListenAddressError extends Error {
  readonly code = "ERR_INVALID_LISTEN_ADDRESS";
  constructor(
    readonly value: string,
    readonly reason: string,
  ) {
    super(`invalid listen address ${JSON.stringify(value)}: ${reason}`);
    this.name = "InvalidListenAddressError";
  }
}

/** Parses MCP_PORTAL_LISTEN: "127.0.0.1:8080", "localhost:8080", "[::1]:8080". */
export function parseListen(value: string): ListenAddress {
  const parsed = listenSchema.safeParse(value);
  if (!parsed.success) {
    const reason = parsed.error.issues
      .map((issue) => (issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
      .join("; ");
    throw new InvalidListenAddressError(value, reason);
  }
  return parsed.data;
}

/** Answers "does Docker respond?" from a ping at most once per `ttlMs`, so frequent probes cost one call. */
export function cachedReachability(
  ping: () => Promise<void>,
  now: () => number,
  ttlMs = 1000,
): () => Promise<boolean> {
  let last: { at: number; ok: boolean } | undefined;
  return async () => {
    const at = now();
    if (last && at - last.at < ttlMs) return last.ok;
    const ok = await ping().then(
      () => true,
      () => false,
    );
    last = { at, ok };
    return ok;
  };
}
