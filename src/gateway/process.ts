import { Registry } from "prom-client";
import { cachedReachability, createHttpServer, type HttpServer } from "../api/http-server.js";
import { loadAdminToken } from "../auth/admin-token.js";
import { Authenticator } from "../auth/authenticate.js";
import { TokenCache } from "../auth/token-store.js";
import { DockerodeAttacher } from "../docker/attach.js";
import { dockerFromEnv } from "../docker/connect.js";
import { DockerodeRuntime } from "../docker/dockerode-runtime.js";
import { createLogger, type LogLevel, type Logger } from "../observability/logger.js";
import { type Clock, systemClock } from "../reconcile/clock.js";
import { PORTAL_VERSION } from "../version.js";
import type { GatewayConfig } from "./config.js";
import { Gateway, type GatewayDeps } from "./gateway.js";
import { type GatewayMetrics, createGatewayMetrics } from "./metrics.js";

export interface GatewayProcessOptions {
  config: GatewayConfig;
  env: NodeJS.ProcessEnv;
  logger?: Logger;
  clock?: Clock;
  /** Serve /healthz, /readyz and /metrics on config.listen (default true). */
  listen?: boolean;
  tuning?: GatewayDeps["tuning"];
}

/** The gateway process's object graph, wired in one place. */
export interface GatewayProcess {
  config: GatewayConfig;
  logger: Logger;
  metrics: GatewayMetrics;
  gateway: Gateway;
  http: HttpServer | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function createGatewayProcess(options: GatewayProcessOptions): Promise<GatewayProcess> {
  const { config, env } = options;
  const clock = options.clock ?? systemClock;
  const logger =
    options.logger ??
    createLogger({ level: config.logLevel as LogLevel, pretty: config.logPretty }).child({
      component: "gateway",
    });
  const metrics = createGatewayMetrics(new Registry(), { version: PORTAL_VERSION });
  const docker = dockerFromEnv(env);
  const runtime = new DockerodeRuntime(docker, { timeoutMs: config.dockerTimeoutMs });
  const attacher = new DockerodeAttacher(docker, { timeoutMs: Math.min(config.dockerTimeoutMs, 10_000) });
  const tokens = new TokenCache(config.stateDir, (message) =>
    logger.error({ err: message }, "token store unusable"),
  );
  const authenticator = new Authenticator(await loadAdminToken(env), tokens);
  const gateway = new Gateway({
    config,
    runtime,
    attacher,
    authenticate: (header) => authenticator.authenticate(header),
    clock,
    logger,
    metrics,
    ...(options.tuning ? { tuning: options.tuning } : {}),
  });
  const http =
    options.listen === false
      ? undefined
      : createHttpServer({
          registry: metrics.registry,
          logger,
          health: {
            isShuttingDown: () => gateway.isStopping,
            firstSyncDone: () => gateway.firstSyncDone,
            dockerReachable: cachedReachability(
              () => runtime.ping(),
              () => clock.now(),
            ),
          },
        });
  return {
    config,
    logger,
    metrics,
    gateway,
    http,
    async start() {
      if (http) await http.listen({ host: config.listen.host, port: config.listen.port });
      await gateway.start();
    },
    async stop() {
      await gateway.stop();
      await http?.close();
    },
  };
}
