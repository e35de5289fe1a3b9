import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { Registry } from "prom-client";
import { cachedReachability, createHttpServer, type HttpServer } from "../api/http-server.js";
import { loadAdminToken } from "../auth/admin-token.js";
import { Authenticator } from "../auth/authenticate.js";
import { OidcVerifier } from "../auth/oidc.js";
import { AuditLog } from "../observability/audit.js";
import { TokenCache } from "../auth/token-store.js";
import { DockerodeAttacher } from "../docker/attach.js";
import { dockerFromEnv } from "../docker/connect.js";
import { DockerodeRuntime } from "../docker/dockerode-runtime.js";
import { createLogger, type LogLevel, type Logger } from "../observability/logger.js";
import { type Clock, systemClock } from "../util/clock.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { PORTAL_VERSION } from "../version.js";
import type { GatewayConfig } from "./config.js";
import { Gateway, type GatewayDeps } from "./gateway.js";
import {
  GATEWAY_KIND,
  type GatewayIdentity,
  IDENTITY_PATH,
  canonicalStateDir,
  describeVerdict,
  formatListen,
  identityFilePath,
  judgeGateway,
  probeGateway,
  readIdentityFile,
} from "./identity.js";
import { type GatewayMetrics, createGatewayMetrics } from "./metrics.js";

export interface GatewayProcessOptions {
  config: GatewayConfig;
  env: NodeJS.ProcessEnv;
  logger?: Logger;
  clock?: Clock;
  /**
   * Serve /healthz, /readyz, /metrics and /identity on config.listen and write the identity file (default true);
   * false for an in-process gateway in tests.
   */
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
  const oidc = config.identity.oidc
    ? new OidcVerifier(config.identity.oidc, {
        onResult: (result) => metrics.oidcTokensTotal.inc({ result }),
      })
    : undefined;
  const authenticator = new Authenticator(await loadAdminToken(env), tokens, oidc);
  // The gateway's own audit log: the controller's audit.log rotates by rename within the controller's process.
  const audit = new AuditLog({
    stateDir: path.join(config.stateDir, "gateway"),
    maxBytes: config.auditMaxBytes,
    logger,
    onWriteError: () => metrics.auditWriteErrorsTotal.inc(),
  });
  const gateway = new Gateway({
    config,
    runtime,
    attacher,
    authenticate: (header, audiences) => authenticator.authenticate(header, { audiences }),
    audit,
    clock,
    logger,
    metrics,
    ...(options.tuning ? { tuning: options.tuning } : {}),
  });
  const startedAt = new Date(clock.now()).toISOString();
  const stateDir = canonicalStateDir(config.stateDir);
  let listening = formatListen(config.listen);
  const identity = (): GatewayIdentity => ({
    kind: GATEWAY_KIND,
    installation: config.installation,
    state_dir: stateDir,
    version: PORTAL_VERSION,
    pid: process.pid,
    listen: listening,
    started_at: startedAt,
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
  http?.get(IDENTITY_PATH, async (_request, reply) =>
    reply.header("cache-control", "no-store").send(identity()),
  );
  const identityFile = identityFilePath(config.stateDir);
  return {
    config,
    logger,
    metrics,
    gateway,
    http,
    async start() {
      if (http) {
        await refuseOtherGateway(config, stateDir);
        await http.listen({ host: config.listen.host, port: config.listen.port });
        const address = http.server.address();
        if (address && typeof address === "object")
          listening = formatListen({ host: config.listen.host, port: address.port });
        await writeFileAtomic(identityFile, `${JSON.stringify(identity(), null, 2)}\n`);
      }
      await gateway.start();
    },
    async stop() {
      await gateway.stop();
      await audit.close();
      await http?.close();
      if (http) await removeIfOurs(identityFile);
    },
  };
}

/**
 * Two gateways on one state dir would fight over users' ports and health.json: refuse to start when something
 * answers on our own listener, or when the identity file names another live gateway of this state dir.
 */
async function refuseOtherGateway(config: GatewayConfig, stateDir: string): Promise<void> {
  const own = formatListen(config.listen);
  if (config.listen.port !== 0) {
    const probed = await probeGateway(own);
    if (probed.kind !== "nothing") {
      const verdict = judgeGateway(probed, {
        installation: config.installation,
        stateDir,
        version: PORTAL_VERSION,
      });
      throw new Error(`${describeVerdict(own, verdict)}; stop it, or set MCP_PORTAL_GATEWAY_LISTEN`);
    }
  }
  const file = await readIdentityFile(config.stateDir);
  if (file?.kind !== "identity" || file.identity.listen === own || file.identity.pid === process.pid) return;
  const probed = await probeGateway(file.identity.listen);
  if (
    probed.kind === "identity" &&
    probed.identity.state_dir === stateDir &&
    probed.identity.pid === file.identity.pid
  ) {
    throw new Error(
      `gateway pid ${probed.identity.pid} (installation "${probed.identity.installation}", listening on ` +
        `${probed.identity.listen}) already serves the state dir ${stateDir}`,
    );
  }
}

async function removeIfOurs(file: string): Promise<void> {
  try {
    const content = JSON.parse(await readFile(file, "utf8")) as { pid?: unknown };
    if (content.pid === process.pid) await rm(file, { force: true });
  } catch {
    // absent or unreadable: nothing of ours to remove
  }
}
