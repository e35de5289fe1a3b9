import { Registry } from "prom-client";
import { registerApi } from "./api/api.js";
import { DockerContainerReader } from "./api/engine/container-reader.js";
import { DEFAULT_CONSOLE_DIR } from "./console/console-assets.js";
import { registerConsole } from "./console/serve-console.js";
import { cachedReachability, createHttpServer, type HttpServer, parseListen } from "./api/http-server.js";
import { MergedCatalogCache } from "./catalog/merged-cache.js";
import type { Config } from "./config.js";
import { runtimeFor } from "./docker/backend.js";
import { EgressDenialCollector } from "./reconcile/egress-denial-collector.js";
import { dockerFromEnv } from "./docker/connect.js";
import { InstrumentedRuntime } from "./docker/instrumented-runtime.js";
import type { ContainerRuntime } from "./docker/runtime.js";
import { AuditLog, parseAuditMaxBytes } from "./observability/audit.js";
import { createLogger, type LogLevel, type Logger } from "./observability/logger.js";
import { createMetrics, type Metrics } from "./observability/metrics.js";
import { NetworkAllocator, allocatorOptions } from "./reconcile/allocator.js";
import { AuditedRuntime } from "./docker/audited-runtime.js";
import { Executor } from "./reconcile/executor.js";
import { Observer } from "./reconcile/observer.js";

import { Controller } from "./reconcile/controller.js";
import { type Clock, systemClock } from "./util/clock.js";
import { GlobalInputsStore, UserInputsStore } from "./reconcile/desired-inputs.js";
import { GatewayAccessWriter } from "./reconcile/gateway-access-writer.js";
import { GatewayHealthReader } from "./reconcile/gateway-health.js";
import { IdleStore } from "./reconcile/idle-store.js";
import { TrafficReader } from "./reconcile/traffic-reader.js";
import { WakeInbox } from "./reconcile/wake-inbox.js";
import { ImagePuller } from "./reconcile/image-puller.js";
import { PruneGuard } from "./reconcile/prune-guard.js";
import { Reconciler } from "./reconcile/reconciler.js";
import { DEFAULT_START_BACKOFF, StartBackoff } from "./reconcile/start-backoff.js";
import { StatusStore } from "./reconcile/status.js";
import type { SecretKeys } from "./reconcile/user-secrets.js";
import { loadDigestKey } from "./secrets/digest.js";
import { SECRET_KEYS_ENV, SECRET_KEYS_FILE_ENV, loadKeyRing } from "./secrets/key-ring.js";
import { PORTAL_VERSION } from "./version.js";
import { EventBus } from "./events/event-bus.js";
import { Placer } from "./swarm/placer.js";
import { swarmSpecWarnings } from "./swarm/service-spec.js";
import { IDLE_NOT_APPLIED_ON_SWARM } from "./validate/idle-backend.js";
import { SwarmWatcher } from "./swarm/swarm-watcher.js";
import { publishStatusChange } from "./events/status-events.js";

export interface DaemonOptions {
  config: Config;
  env: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Replaces the Docker Engine adapter (MemoryRuntime in unit tests and simulations). */
  runtime?: ContainerRuntime;
  clock?: Clock;
  listen?: boolean;
  watch?: boolean;
  /**
   * Keep users' inputs between reconciles until told they changed (default: when watching). A caller that
   * reports every file change itself (controller.notifyDataChange), as a simulation does, may keep them too.
   */
  cacheInputs?: boolean;
  startBackoff?: typeof DEFAULT_START_BACKOFF;
  /** The built web console (default dist/console-ui of this package). */
  consoleDir?: string;
}

/** The object graph of the daemon, wired in one place. */
export interface Daemon {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  runtime: InstrumentedRuntime;
  controller: Controller;
  reconciler: Reconciler;
  statuses: StatusStore;
  audit: AuditLog;
  events: EventBus;
  secrets: SecretKeys | undefined;
  global: GlobalInputsStore;
  http: HttpServer | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function loadSecretKeys(
  env: NodeJS.ProcessEnv,
  stateDir: string,
  logger: Logger,
): Promise<SecretKeys | undefined> {
  if (!env[SECRET_KEYS_ENV]?.trim() && !env[SECRET_KEYS_FILE_ENV]?.trim()) {
    logger.warn(`${SECRET_KEYS_ENV} is not set: servers that require secrets stay blocked`);
    return undefined;
  }
  const keyRing = await loadKeyRing(env);
  return { keyRing, digestKey: await loadDigestKey(stateDir, keyRing) };
}

export async function createDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const logger =
    options.logger ?? createLogger({ level: config.logLevel as LogLevel, pretty: config.logPretty });
  const registry = new Registry();
  const metrics = createMetrics(registry, { version: PORTAL_VERSION });
  const audit = new AuditLog({
    stateDir: config.stateDir,
    maxBytes: parseAuditMaxBytes(options.env),
    logger,
    onWriteError: () => metrics.auditWriteErrorsTotal.inc(),
  });
  const inner = options.runtime ?? runtimeFor(config, options.env);
  const runtime = new InstrumentedRuntime(inner, metrics);
  // Swarm: the controller places each user's services on one node and moves them off nodes that cannot run them.
  const placer = config.backend === "swarm" ? new Placer() : undefined;
  const keys = await loadSecretKeys(options.env, config.stateDir, logger);
  const secrets = keys && { ...keys, maxFileBytes: config.maxFileBytes };
  const allocator = new NetworkAllocator(allocatorOptions(config));
  const watch = options.watch ?? true;
  const cacheInputs = options.cacheInputs ?? watch;
  const global = new GlobalInputsStore(config.overlays, config.maxFileBytes);
  // Inputs are kept between reconciles only while a watcher reports every change of the tree.
  const users = new UserInputsStore({
    maxFileBytes: config.maxFileBytes,
    missingFileGraceMs: config.missingFileGraceSeconds * 1000,
    cache: cacheInputs,
    clock,
  });
  const statuses = new StatusStore(config.stateDir);
  // Swarm: the node gateways probe task containers (not services) and write one health file per node; their
  // verdicts are not joined into status yet (README, "Several hosts").
  const health =
    config.gateway && config.backend === "engine" ? new GatewayHealthReader(config.stateDir) : undefined;
  // Scale to zero needs the gateway (it sees the traffic and asks for wakes) and the Docker Engine backend: on
  // Swarm no idle timeout is applied (status and validate say so; README, "Idle servers").
  let enqueue: (userId: string) => void = () => undefined;
  const idle =
    config.gateway && config.backend === "engine"
      ? {
          store: new IdleStore(config.stateDir, clock, (error) =>
            logger.error({ err: String(error) }, "cannot write idle.json"),
          ),
          inbox: new WakeInbox({
            stateDir: config.stateDir,
            clock,
            logger,
            onRequest: (userId) => enqueue(userId),
          }),
          traffic: new TrafficReader(config.stateDir),
        }
      : undefined;
  const events = new EventBus();
  const starts = new StartBackoff(options.startBackoff ?? DEFAULT_START_BACKOFF, clock);
  const observer = new Observer(runtime, config.installation);
  // Restricted egress runs on the engine backend only (Swarm refuses it): only there are proxies to read.
  const egressDenials =
    config.backend === "engine"
      ? new EgressDenialCollector({
          runtime,
          audit,
          metrics,
          logger,
          stateDir: config.stateDir,
          installation: config.installation,
          pollMs: config.egressDenialPollSeconds * 1000,
          maxBytes: config.egressDenialMaxBytes,
        })
      : undefined;
  const executor = new Executor({
    runtime: new AuditedRuntime(runtime, audit, clock, logger),
    allocator,
    images: new ImagePuller(clock),
    starts,
    metrics,
    installation: config.installation,
    stopTimeoutSeconds: config.stopTimeoutSeconds,
    ...(egressDenials ? { egressDenials } : {}),
  });
  const pruneGuard = new PruneGuard(
    {
      share: config.massPrune.share,
      minimum: config.massPrune.minimum,
      windowMs: 60_000,
      allow: config.massPrune.allow,
    },
    config.stateDir,
    clock,
    (change) => {
      logger.warn({ by: change.by }, `mass-prune guard ${change.kind}: ${change.reason}`);
      if (change.kind === "released")
        void audit.write({
          event_type: "ACTION_BLOCKED",
          user_id: null,
          action: "release_prune_guard",
          resource: "installation",
          result: "success",
          details: { by: change.by, reason: change.reason },
        });
    },
  );
  const reconciler = new Reconciler({
    config,
    observer,
    global,
    users,
    catalogs: new MergedCatalogCache(config.stateDir),
    secrets,
    allocator,
    executor,
    starts,
    statuses,
    pruneGuard,
    audit,
    clock,
    ...(health ? { health, access: new GatewayAccessWriter(config.stateDir) } : {}),
    ...(idle
      ? { idle: { store: idle.store, wakes: idle.inbox, traffic: idle.traffic } }
      : {
          idleNotApplied:
            config.backend === "swarm"
              ? IDLE_NOT_APPLIED_ON_SWARM
              : "idle servers (scale to zero) need the gateway (MCP_PORTAL_GATEWAY=on); without it every server stays on",
        }),
    cacheRoot: cacheInputs,
    inPlaceUpdate: runtime.capabilities.inPlaceUpdate,
    ...(placer ? { placer, specWarnings: swarmSpecWarnings } : {}),
    onStatus: (previous, next) => publishStatusChange(events, previous, next, new Date(clock.now())),
  });
  const ctl = new Controller({
    config,
    runtime,
    observer,
    reconciler,
    global,
    users,
    allocator,
    pruneGuard,
    metrics,
    logger,
    audit,
    clock,
    watch,
    inputsCached: cacheInputs,
    ...(health ? { health } : {}),
    ...(idle ? { idle: { store: idle.store, inbox: idle.inbox } } : {}),
    ...(placer ? { placer } : {}),
  });
  const swarmWatcher = placer
    ? new SwarmWatcher({
        runtime,
        placer,
        installation: config.installation,
        clock,
        logger,
        pollMs: config.swarm.pollMs,
        onUsers: (userIds) => {
          for (const userId of userIds) {
            observer.markStale(userId);
            ctl.enqueue(userId);
          }
        },
      })
    : undefined;
  enqueue = (userId) => ctl.enqueue(userId);
  const http =
    options.listen === false
      ? undefined
      : createHttpServer({
          registry,
          logger,
          health: {
            isShuttingDown: () => ctl.isStopping,
            firstSyncDone: () => ctl.firstSyncDone,
            dockerReachable: cachedReachability(
              () => runtime.ping(),
              () => clock.now(),
            ),
          },
        });

  if (http) {
    // REST API, live events and OpenAPI under /api/v1 (before listen); throws on a bad admin token.
    await registerApi(http, {
      config,
      env: options.env,
      events,
      global,
      statuses,
      secrets,
      audit,
      controller: ctl,
      logger,
      readOnly: config.readOnlyApi,
      console: {
        installation: config.installation,
        publishHost: config.publishHost,
        gateway: config.gateway,
        containers: new DockerContainerReader(
          dockerFromEnv(options.env),
          config.installation,
          config.dockerTimeoutMs,
        ),
        planning: { config, runtime },
      },
    });
    // The web console on `/`, same origin as the API it calls.
    await registerConsole(http, { dir: options.consoleDir ?? DEFAULT_CONSOLE_DIR, logger });
  }

  return {
    config,
    logger,
    metrics,
    runtime,
    controller: ctl,
    reconciler,
    statuses,
    audit,
    events,
    secrets,
    global,
    http,
    async start() {
      if (http) {
        const { host, port } = parseListen(config.listen);
        await http.listen({ host, port });
      }
      await runtime.ping();
      // The nodes first: the first reconciles place users.
      await swarmWatcher?.start();
      await ctl.start();
      egressDenials?.start();
    },
    async stop() {
      await egressDenials?.stop();
      await swarmWatcher?.stop();
      await ctl.stop();
      await http?.close();
      await audit.close();
    },
  };
}
