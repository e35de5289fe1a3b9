import type { AuthResult } from "../auth/authenticate.js";
import type { AuditWriter } from "../observability/audit.js";
import { AccessControl } from "./access-control.js";
import { AccessStore } from "./access-store.js";
import { RateLimiter } from "./rate-limit.js";
import type { ContainerAttacher } from "../docker/attach.js";
import type { ContainerRuntime } from "../docker/runtime.js";
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
import { PORTAL_VERSION } from "../version.js";
import type { GatewayConfig } from "./config.js";
import { Discovery } from "./discovery.js";
import { Endpoint, type ServerTarget, type Upstream } from "./endpoint.js";
import { type HealthState, markUnavailable } from "./health.js";
import { HealthFile, healthFilePath } from "./health-file.js";
import { HttpServerUpstream } from "./http-server.js";
import { IdleGate } from "./idle-gate.js";
import { type GatewayMetrics, HEALTH_STATES } from "./metrics.js";
import { StdioServerUpstream } from "./stdio-server.js";
import type { StdioMuxOptions } from "./stdio-mux.js";

export interface GatewayDeps {
  config: GatewayConfig;
  runtime: ContainerRuntime;
  attacher: ContainerAttacher;
  authenticate: (authorization: string | undefined, audiences: readonly string[]) => Promise<AuthResult>;
  /** Where tool calls are audited (`<state-dir>/gateway/audit.log`); absent: only counted. */
  audit?: AuditWriter;
  clock: Clock;
  logger: Logger;
  metrics: GatewayMetrics;
  /** What serves a target (default: a stdio multiplexer or an HTTP proxy, by transport); tests pass their own. */
  createUpstream?: (target: ServerTarget, logger: Logger) => Upstream;
  /** Tuning for tests: request waits, bind retries, multiplexer timeouts, idle polling. */
  tuning?: {
    readyWaitMs?: number;
    bindRetryMs?: number;
    idle?: { viewPollMs?: number; wakeRetryMs?: number; trafficWriteMs?: number };
    mux?: Partial<Omit<StdioMuxOptions, "clock" | "clientInfo" | "onEvent" | "serverUserId">>;
  };
}

export const GATEWAY_CLIENT_INFO = { name: "mcp-portal-gateway", version: PORTAL_VERSION };

/**
 * Serves every server container of the installation on its user's host port: discovery (list, watch, re-list)
 * decides which containers to serve; one Endpoint per `<user>/<server>` listens, authorizes, relays and probes;
 * the health of all of them goes to `<state-dir>/gateway/health.json`.
 */
export class Gateway {
  readonly endpoints = new Map<string, Endpoint>();
  readonly health: HealthFile;
  /** Scale to zero: traffic, idle servers and wakes (README, "Idle servers"). */
  readonly idle: IdleGate;
  private readonly discovery: Discovery;
  readonly access: AccessStore;
  private readonly control: AccessControl;
  private stopping = false;
  private applying: Promise<void> = Promise.resolve();
  private recheckTimer: unknown;
  private rechecking: Promise<void> = Promise.resolve();

  constructor(private readonly deps: GatewayDeps) {
    const { clock, logger, config, metrics } = deps;
    this.health = new HealthFile(
      config.healthFile ?? healthFilePath(config.stateDir),
      () => clock.now(),
      (error) =>
        logger.error(
          { err: error instanceof Error ? error.message : String(error) },
          "cannot write health file",
        ),
    );
    this.idle = new IdleGate({
      stateDir: config.stateDir,
      clock,
      logger,
      registry: metrics.registry,
      wakeTimeoutMs: config.wakeTimeoutMs,
      ...(deps.tuning?.idle ? { tuning: deps.tuning.idle } : {}),
    });
    this.access = new AccessStore(config.stateDir, {
      onInvalid: (userId, message) =>
        logger.error(
          { user_id: userId, err: message },
          "gateway-access.json cannot be used: the last good version applies (none: every tool of the user is refused)",
        ),
    });
    this.control = new AccessControl({
      store: this.access,
      limiter: new RateLimiter(() => clock.now()),
      metrics,
      audit: deps.audit,
    });
    this.discovery = new Discovery({
      runtime: deps.runtime,
      installation: config.installation,
      clock,
      logger,
      resyncMs: config.resyncMs,
      onTargets: (targets) => this.apply(targets),
      onEventsReconnect: () => metrics.dockerEventsReconnectsTotal.inc(),
    });
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  get firstSyncDone(): boolean {
    return this.discovery.firstSyncDone;
  }

  async start(): Promise<void> {
    await this.idle.start();
    await this.discovery.start();
    this.health.sync();
    this.scheduleRecheck();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.deps.clock.clearTimeout(this.recheckTimer);
    await this.rechecking;
    await this.discovery.stop();
    await this.applying;
    const now = this.deps.clock.now();
    await Promise.all(
      [...this.endpoints.values()].map(async (endpoint) => {
        await endpoint.close();
        // Nobody serves the port any more: say so, rather than leave the last state standing.
        const { userId, serverId, hostPort } = endpoint.currentTarget;
        this.health.set(endpoint.key, {
          userId,
          serverId,
          hostPort,
          health: markUnavailable(endpoint.currentHealth, now, "gateway stopped: the port is not served"),
        });
      }),
    );
    this.endpoints.clear();
    this.updateStateGauge();
    await this.idle.stop();
    await this.health.flush();
  }

  /** Re-lists now (tests; the periodic resync and events do this on their own). */
  resync(): Promise<void> {
    return this.discovery.list();
  }

  /**
   * Checks the served users' gateway-access.json files now (the timer does it every policyRecheckMs): a user whose
   * access changed has every connected client told to list its tools again.
   */
  recheckAccess(): Promise<void> {
    const run = this.rechecking.then(async () => {
      const users = new Set([...this.endpoints.values()].map((e) => e.currentTarget.userId));
      const changed = new Set(await this.access.refresh(users));
      this.deps.metrics.accessFilesInvalid.set(this.access.invalidCount);
      for (const endpoint of this.endpoints.values()) {
        if (!changed.has(endpoint.currentTarget.userId)) continue;
        endpoint.toolsChanged();
      }
      if (changed.size > 0)
        this.deps.logger.info({ users: [...changed] }, "tool policy or rate limits changed");
    });
    this.rechecking = run.catch((error: unknown) =>
      this.deps.logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        "checking gateway-access.json files failed",
      ),
    );
    return this.rechecking;
  }

  private scheduleRecheck(): void {
    if (this.stopping) return;
    this.recheckTimer = this.deps.clock.setTimeout(() => {
      void this.recheckAccess().finally(() => this.scheduleRecheck());
    }, this.deps.config.policyRecheckMs);
  }

  /**
   * Updates are applied one after the other. The chain itself never holds a rejection: a failed update is logged
   * and counted, and the next one (each carries the full set of targets) is applied regardless. The caller still
   * learns of the failure (discovery then lists again soon).
   */
  private apply(targets: Map<string, ServerTarget>): Promise<void> {
    const run = this.applying.then(() => this.applyNow(targets));
    this.applying = run.catch((error: unknown) => {
      this.deps.metrics.applyFailuresTotal.inc();
      this.deps.logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        "applying discovered servers failed",
      );
    });
    return run;
  }

  private async applyNow(targets: Map<string, ServerTarget>): Promise<void> {
    if (this.stopping) return;
    for (const [key, endpoint] of [...this.endpoints]) {
      const target = targets.get(key);
      if (target && target.transport === endpoint.currentTarget.transport) continue;
      this.endpoints.delete(key);
      await endpoint.close();
      this.control.forget(endpoint.currentTarget);
      this.health.delete(key);
      this.deps.logger.info(
        { user_id: endpoint.currentTarget.userId, server_id: endpoint.currentTarget.serverId },
        "server no longer served",
      );
    }
    for (const [key, target] of targets) {
      const endpoint = this.endpoints.get(key);
      if (endpoint) {
        endpoint.update(target);
        continue;
      }
      const created = this.createEndpoint(target);
      this.endpoints.set(key, created);
      created.open();
    }
    this.updateStateGauge();
  }

  private createEndpoint(target: ServerTarget): Endpoint {
    const { clock, metrics, config } = this.deps;
    const logger = this.deps.logger.child({ user_id: target.userId, server_id: target.serverId });
    const upstream = (this.deps.createUpstream ?? ((t, l) => this.defaultUpstream(t, l)))(target, logger);
    return new Endpoint(target, {
      upstream,
      listenHost: config.publishHost,
      authenticate: this.deps.authenticate,
      identity: config.identity,
      admit: (t, caller, req) => this.control.admit(t, caller, req),
      origins: { allowed: config.allowedOrigins, publishHost: config.publishHost },
      clock,
      logger,
      metrics,
      onHealth: (t, health, previous) => this.onHealth(t, health, previous, logger),
      idle: this.idle,
      ...(this.deps.tuning?.readyWaitMs !== undefined ? { readyWaitMs: this.deps.tuning.readyWaitMs } : {}),
      ...(this.deps.tuning?.bindRetryMs !== undefined ? { bindRetryMs: this.deps.tuning.bindRetryMs } : {}),
    });
  }

  private defaultUpstream(target: ServerTarget, logger: Logger): Upstream {
    const { attacher, clock, metrics, config, tuning } = this.deps;
    const { limits } = config;
    return target.transport === "stdio"
      ? new StdioServerUpstream({
          userId: target.userId,
          attach: (containerId) => attacher.attachStdio(containerId),
          clock,
          logger,
          metrics,
          clientInfo: GATEWAY_CLIENT_INFO,
          mux: {
            requestTimeoutMs: limits.requestTimeoutMs,
            maxInflightPerSession: limits.maxInflightPerSession,
            maxInflightPerServer: limits.maxInflightPerServer,
            maxSubscriptionsPerSession: limits.maxSubscriptionsPerSession,
            maxSessions: limits.maxSessionsPerServer,
            ...tuning?.mux,
          },
          maxBatchMessages: limits.maxBatchMessages,
          modern: { waitMs: limits.requestTimeoutMs, maxWaiting: limits.maxInflightPerServer },
          stderrLinesPerMinute: limits.stderrLinesPerMinute,
        })
      : new HttpServerUpstream(target, {
          inspect: (containerId) => attacher.inspectEndpoint(containerId),
          logger,
          metrics,
          clientInfo: GATEWAY_CLIENT_INFO,
          probeMaxBytes: limits.probeMaxBytes,
          responseTimeoutMs: limits.requestTimeoutMs,
          maxConcurrent: limits.maxInflightPerServer,
          maxSessions: limits.maxSessionsPerServer,
          clock,
          bridge: {
            mux: {
              requestTimeoutMs: limits.requestTimeoutMs,
              maxInflightPerSession: limits.maxInflightPerSession,
              maxInflightPerServer: limits.maxInflightPerServer,
              maxSubscriptionsPerSession: limits.maxSubscriptionsPerSession,
              maxSessions: limits.maxSessionsPerServer,
              ...tuning?.mux,
            },
            modern: { waitMs: limits.requestTimeoutMs, maxWaiting: limits.maxInflightPerServer },
          },
        });
  }

  private onHealth(target: ServerTarget, health: HealthState, previous: HealthState, logger: Logger): void {
    if (
      previous.state !== health.state ||
      previous.containerId !== health.containerId ||
      previous === health
    ) {
      const level = health.state === "Unhealthy" ? "warn" : "info";
      logger[level](
        { state: health.state, container_id: health.containerId.slice(0, 12), message: health.message },
        "server health",
      );
    }
    this.health.set(target.key, {
      userId: target.userId,
      serverId: target.serverId,
      hostPort: target.hostPort,
      health,
    });
    queueMicrotask(() => this.updateStateGauge());
  }

  private updateStateGauge(): void {
    const counts: Record<string, number> = {};
    for (const endpoint of this.endpoints.values()) {
      const state = endpoint.currentHealth.state;
      counts[state] = (counts[state] ?? 0) + 1;
    }
    for (const state of HEALTH_STATES) this.deps.metrics.servers.set({ state }, counts[state] ?? 0);
  }
}
