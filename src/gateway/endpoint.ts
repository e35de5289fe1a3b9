import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { AuthResult, Caller } from "../auth/authenticate.js";
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
import { authorize } from "./authorize.js";
import type { IdleGate } from "./idle-gate.js";
import type { RequestHandler } from "./handler.js";
import {
  type HealthPolicy,
  type HealthState,
  afterProbeFailure,
  afterProbeSuccess,
  markUnavailable,
  nextProbeDelay,
  startingHealth,
} from "./health.js";
import { headerValue, pathnameOf, sendJson, sendRpcError } from "./http-util.js";
import { ERROR_CODES } from "./jsonrpc.js";
import { type GatewayMetrics, type Transport, markResult, markedResult, resultOf } from "./metrics.js";
import { type OriginPolicy, originAllowed } from "./origin.js";
import { ProbeError, probeFailureMessage } from "./probe-failure.js";
import type { Admission } from "./access-control.js";
import {
  type ResourceIdentity,
  challenge,
  isWellKnown,
  resourceUrl,
  wellKnownAnswer,
} from "./resource-metadata.js";

/** One server as discovery sees it: the container currently serving a user's server, and how to probe it. */
export interface ServerTarget {
  /** `<user>/<server>`. */
  key: string;
  userId: string;
  serverId: string;
  hostPort: number;
  transport: Transport;
  containerId: string;
  /** Docker's state of that container. */
  state: string;
  policy: HealthPolicy;
  /** The `mcp.portal.container_port` label (HTTP servers), when set. */
  containerPort: number | undefined;
}

/** The server side of an endpoint: what serves its requests and answers its probes. */
export interface Upstream {
  readonly handler: RequestHandler;
  /** The container changed, started or stopped (`target.state`). */
  update(target: ServerTarget): void;
  /** The MCP probe through the path clients use; throws a ProbeError (the gateway's own words) on failure. */
  probe(timeoutMs: number): Promise<void>;
  /** After a wake: resolves true once the server accepts connections (false after `timeoutMs`). */
  ready?(timeoutMs: number): Promise<boolean>;
  /** The tool policy changed: tell connected clients to list the tools again (notifications/tools/list_changed). */
  toolsChanged?(): void;
  close(): Promise<void>;
}

export interface EndpointDeps {
  upstream: Upstream;
  listenHost: string;
  /** Checks a bearer token; `audiences` are what an OIDC access token must be for here (RFC 8707). */
  authenticate: (authorization: string | undefined, audiences: readonly string[]) => Promise<AuthResult>;
  /** The URL clients use and the identity provider they are sent to (default: no provider, 127.0.0.1). */
  identity?: ResourceIdentity;
  /** Rate limits and tool policy of an authorized request (absent: none). */
  admit?: (target: ServerTarget, caller: Caller, req: IncomingMessage) => Promise<Admission>;
  origins: OriginPolicy;
  clock: Clock;
  logger: Logger;
  metrics: GatewayMetrics;
  onHealth: (target: ServerTarget, health: HealthState, previous: HealthState) => void;
  /** How long a request waits for a stopped container to run again before it gets a 503 (default 10 s). */
  readyWaitMs?: number;
  /** Delay between attempts to listen when the port is taken (default 2 s). */
  bindRetryMs?: number;
  /** Scale to zero: traffic, idle servers, wakes (README, "Idle servers"). */
  idle?: IdleGate;
}

const running = (target: ServerTarget): boolean => target.state === "running";

const DEFAULT_IDENTITY: ResourceIdentity = { publicUrl: "http://127.0.0.1", oidc: undefined };

/**
 * One user's server on its host port: listens on `<publish host>:<host_port>`, checks origin and token before
 * anything reaches the server, relays to the upstream, and keeps the server's MCP health by probing it.
 */
export class Endpoint {
  private server: http.Server | undefined;
  private listening = false;
  private listenError = "not started";
  private bindTimer: unknown;
  private health: HealthState;
  private probeTimer: unknown;
  private generation = 0;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  /** Called when the container leaves `running` (or the endpoint closes). */
  private readonly stopWatchers = new Set<() => void>();

  constructor(
    private target: ServerTarget,
    private readonly deps: EndpointDeps,
  ) {
    this.health = startingHealth(target.containerId, deps.clock.now());
  }

  get key(): string {
    return this.target.key;
  }

  get currentTarget(): ServerTarget {
    return this.target;
  }

  get currentHealth(): HealthState {
    return this.health;
  }

  get isListening(): boolean {
    return this.listening;
  }

  open(): void {
    this.deps.upstream.update(this.target);
    this.bind();
    this.enterState(this.target);
  }

  update(next: ServerTarget): void {
    const previous = this.target;
    this.target = next;
    if (next.hostPort !== previous.hostPort) {
      this.unbind();
      this.bind();
    }
    const changed = next.containerId !== previous.containerId;
    if (changed || next.state !== previous.state) {
      this.generation += 1;
      this.deps.upstream.update(next);
      this.enterState(next);
    }
    if (running(next)) for (const wake of this.waiters) wake();
    else for (const stopped of this.stopWatchers) stopped();
  }

  /** The tool policy changed: connected clients are told to list the tools again. */
  toolsChanged(): void {
    this.deps.upstream.toolsChanged?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.generation += 1;
    this.deps.clock.clearTimeout(this.probeTimer);
    for (const wake of this.waiters) wake();
    for (const stopped of this.stopWatchers) stopped();
    this.unbind();
    await this.deps.upstream.close();
  }

  /** A new lifecycle: Starting (and probing) when the container runs, else why it is not served. */
  private enterState(target: ServerTarget): void {
    const now = this.deps.clock.now();
    this.deps.clock.clearTimeout(this.probeTimer);
    if (running(target)) {
      this.setHealth(startingHealth(target.containerId, now));
      this.scheduleProbe(0);
      return;
    }
    const base =
      this.health.containerId === target.containerId ? this.health : startingHealth(target.containerId, now);
    const message = `container is ${target.state}`;
    this.setHealth(
      target.state === "created" || target.state === "restarting"
        ? { ...base, state: "Starting", message }
        : markUnavailable(base, now, message),
    );
  }

  private setHealth(health: HealthState): void {
    const previous = this.health;
    this.health = health;
    this.deps.onHealth(this.target, health, previous);
  }

  private scheduleProbe(delayMs: number): void {
    this.deps.clock.clearTimeout(this.probeTimer);
    if (this.closed || !running(this.target)) return;
    const generation = this.generation;
    this.probeTimer = this.deps.clock.setTimeout(() => {
      void this.probe(generation);
    }, delayMs);
  }

  private async probe(generation: number): Promise<void> {
    const { policy, transport } = this.target;
    const started = performance.now();
    let failure: string | undefined;
    if (!this.listening) {
      failure = `cannot listen on ${this.deps.listenHost}:${this.target.hostPort} (${this.listenError})`;
    } else {
      try {
        await this.deps.upstream.probe(policy.timeoutMs);
      } catch (error) {
        // Only the gateway's own words go to health.json (and on to status): never what the server sent.
        failure = probeFailureMessage(error);
        if (!(error instanceof ProbeError)) {
          this.deps.logger.warn(
            { err: error instanceof Error ? error.message.slice(0, 500) : String(error).slice(0, 500) },
            "probe failed unexpectedly",
          );
        }
      }
    }
    if (generation !== this.generation || this.closed) return;
    this.deps.metrics.probesTotal.inc({ transport, result: failure === undefined ? "success" : "failure" });
    this.deps.metrics.probeDurationSeconds.observe({ transport }, (performance.now() - started) / 1000);
    const now = this.deps.clock.now();
    if (!this.listening) {
      this.setHealth({ ...markUnavailable(this.health, now, failure ?? ""), lastProbeAt: now });
    } else if (failure === undefined) {
      this.setHealth(afterProbeSuccess(this.health, now));
    } else {
      this.setHealth(afterProbeFailure(this.health, policy, now, failure));
    }
    this.scheduleProbe(nextProbeDelay(this.health, policy));
  }

  // ---- listening ----

  private bind(): void {
    if (this.closed) return;
    const server = http.createServer((req, res) => this.handle(req, res));
    server.headersTimeout = 30_000;
    server.requestTimeout = 0;
    server.keepAliveTimeout = 30_000;
    this.server = server;
    const port = this.target.hostPort;
    server.once("listening", () => {
      this.listening = true;
      this.listenError = "";
      this.deps.metrics.listeners.inc();
      this.deps.logger.info({ host: this.deps.listenHost, port }, "serving MCP on host port");
    });
    server.on("error", (error: NodeJS.ErrnoException) => {
      if (this.server !== server) return;
      const wasListening = this.listening;
      this.listening = false;
      this.listenError = error.code ?? error.message;
      if (wasListening) this.deps.metrics.listeners.dec();
      this.deps.logger.warn(
        { host: this.deps.listenHost, port, err: this.listenError },
        "cannot listen on the server's host port; retrying",
      );
      server.close();
      this.server = undefined;
      this.bindTimer = this.deps.clock.setTimeout(() => this.bind(), this.deps.bindRetryMs ?? 2000);
    });
    server.listen({ host: this.deps.listenHost, port, exclusive: true });
  }

  private unbind(): void {
    this.deps.clock.clearTimeout(this.bindTimer);
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    if (this.listening) this.deps.metrics.listeners.dec();
    this.listening = false;
    this.listenError = "closed";
    server.close();
    server.closeAllConnections();
  }

  // ---- requests ----

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const { transport } = this.target;
    const started = performance.now();
    res.once("close", () => {
      const result = markedResult(res) ?? resultOf(res.statusCode);
      this.deps.metrics.requestsTotal.inc({ transport, result });
      if (req.method !== "GET") {
        this.deps.metrics.requestDurationSeconds.observe({ transport }, (performance.now() - started) / 1000);
      }
    });
    this.serve(req, res).catch((error: unknown) => {
      this.deps.logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        "request failed",
      );
      if (!res.headersSent) sendRpcError(res, 500, ERROR_CODES.internalError, "internal gateway error");
      else res.destroy();
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const identity = this.deps.identity ?? DEFAULT_IDENTITY;
    const { hostPort } = this.target;
    const pathname = pathnameOf(req);
    if (isWellKnown(pathname)) {
      // Public metadata, fetched by clients before they have a token (from browsers too: any origin).
      const answer = wellKnownAnswer(identity, hostPort, pathname);
      sendJson(res, answer.status, answer.body, { "access-control-allow-origin": "*" });
      return;
    }
    if (!originAllowed(headerValue(req, "origin"), this.deps.origins)) {
      markResult(res, "origin_rejected");
      return sendRpcError(res, 403, ERROR_CODES.invalidRequest, "origin not allowed");
    }
    const audiences = identity.oidc
      ? [resourceUrl(identity, hostPort), ...(identity.oidc.audience ? [identity.oidc.audience] : [])]
      : [];
    const decision = authorize(
      await this.deps.authenticate(headerValue(req, "authorization"), audiences),
      this.target.userId,
      (refused) => challenge(identity, hostPort, refused),
    );
    if (!decision.ok) {
      return sendRpcError(
        res,
        decision.status,
        ERROR_CODES.invalidRequest,
        decision.message,
        decision.headers,
      );
    }
    const admission = this.deps.admit ? await this.deps.admit(this.target, decision.caller, req) : undefined;
    if (admission && !admission.ok) {
      markResult(res, "rate_limited");
      return sendRpcError(
        res,
        429,
        ERROR_CODES.limitExceeded,
        `rate limit of this ${admission.scope === "user" ? "user's servers" : "server"} exceeded (policy.json rate_limits)`,
        { "retry-after": String(admission.retryAfterSeconds) },
      );
    }
    this.endAtExpiry(req, res, decision.caller);
    // After the rate limit (a refused request wakes nothing), before the container is needed: every request,
    // of whatever protocol revision, passes the idle gate (traffic, answers for idle servers, wakes), with the
    // caller's tool policy (a tools/call it refuses wakes nothing either).
    let request = req;
    let withoutContainer = false;
    const gate = this.deps.idle;
    if (gate) {
      const { userId, serverId, transport } = this.target;
      const upstream = this.deps.upstream;
      const admitted = await gate.admit(
        req,
        res,
        { userId, serverId, transport, running: running(this.target) },
        {
          running: (ms) => this.whenRunning(ms),
          ready: (ms) => this.readyUnlessStopped(upstream, ms),
        },
        admission?.ok ? admission.tools : undefined,
      );
      if (!admitted) return;
      ({ req: request, withoutContainer } = admitted);
    }
    if (!withoutContainer && !running(this.target) && !(await this.waitRunning(res))) {
      return sendRpcError(
        res,
        503,
        ERROR_CODES.serverUnavailable,
        `server unavailable: container is ${this.target.state}`,
        {
          "retry-after": "5",
        },
      );
    }
    await this.deps.upstream.handler.handle(request, res, {
      owner: decision.owner,
      ...(admission?.ok ? { tools: admission.tools } : {}),
    });
  }

  /**
   * After a wake: true once the server is ready (the upstream's own check), false after `timeoutMs`, or at once
   * when the container stops again meanwhile (it crashed on start: the client need not wait for the bound).
   */
  private readyUnlessStopped(upstream: Upstream, timeoutMs: number): Promise<boolean> {
    if (!running(this.target) || this.closed) return Promise.resolve(false);
    if (!upstream.ready) return Promise.resolve(true);
    let done: () => void = () => undefined;
    const stopped = new Promise<false>((resolve) => {
      done = () => resolve(false);
      this.stopWatchers.add(done);
    });
    return Promise.race([upstream.ready(timeoutMs), stopped]).finally(() => this.stopWatchers.delete(done));
  }

  /** Resolves true once the container runs (at once when it does), false after `timeoutMs` or on close. */
  private whenRunning(timeoutMs: number): Promise<boolean> {
    if (running(this.target)) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const finish = () => {
        this.deps.clock.clearTimeout(timer);
        this.waiters.delete(finish);
        resolve(running(this.target) && !this.closed);
      };
      const timer = this.deps.clock.setTimeout(finish, timeoutMs);
      this.waiters.add(finish);
    });
  }

  /**
   * A GET stream opened with an OIDC access token ends when the token expires (the client reconnects with a fresh
   * one); requests are answered under the token they came with.
   */
  private endAtExpiry(req: IncomingMessage, res: ServerResponse, caller: Caller): void {
    if (req.method !== "GET" || !caller.oidc) return;
    const remaining = caller.oidc.expiresAt - this.deps.clock.now();
    const timer = this.deps.clock.setTimeout(() => res.destroy(), Math.max(0, remaining));
    res.once("close", () => this.deps.clock.clearTimeout(timer));
  }

  /** Waits (bounded) for the container to run again, e.g. while the controller restarts it. */
  private waitRunning(res: ServerResponse): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const finish = () => {
        this.deps.clock.clearTimeout(timer);
        this.waiters.delete(finish);
        res.off("close", finish);
        resolve(running(this.target) && !this.closed);
      };
      const timer = this.deps.clock.setTimeout(finish, this.deps.readyWaitMs ?? 10_000);
      this.waiters.add(finish);
      res.once("close", finish);
    });
  }
}
