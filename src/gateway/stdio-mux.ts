import { randomUUID } from "node:crypto";
import type { Clock } from "../util/clock.js";
import {
  ERROR_CODES,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  classify,
  errorResponse,
  idKey,
  paramsRecord,
  progressTokenOf,
  withProgressToken,
} from "./jsonrpc.js";
import { userOwner } from "./authorize.js";
import { ProbeError, type ProbeStep } from "./probe-failure.js";
import { UPSTREAM_PROTOCOL_VERSION, capabilityFor, negotiateVersion } from "./protocol.js";

/*
 * Many HTTP clients, one stdio MCP server. The gateway owns the single MCP session with the server: it sends
 * `initialize` once per attach, caches the result and sends `notifications/initialized`; each client's
 * `initialize` is answered from that cache under a session of its own. Routing rules:
 *
 * - Client requests go to the server under gateway-unique numeric ids and come back under the client's id, so
 *   two clients both using id 1 never collide. A `_meta.progressToken` is rewritten the same way (to the
 *   gateway id) and mapped back, so progress reaches the client whose request it belongs to.
 * - `notifications/cancelled` from a client is translated to the gateway id; the request then ends without a
 *   response, as the spec says. `notifications/initialized` from clients is swallowed (the gateway sent its own).
 * - Server notifications: progress and cancellations go to the one client they belong to;
 *   `notifications/resources/updated` to the sessions subscribed to that URI; everything else (list_changed,
 *   log messages, unknown methods) to every session's GET stream. A session without an open GET stream misses
 *   broadcasts (the spec lets a server drop what it cannot deliver).
 * - Server-to-client requests (sampling, elicitation, roots) go to ONE session of the server's own user (never
 *   an admin's: a user's server must not elicit input from, sample through, or list the roots of an admin's
 *   client) whose client declared the capability: the one with the most recently started request still in flight
 *   (on that request's response stream, where a client expects related traffic, and most likely the request that
 *   caused it), else the most recently active session with an open GET stream; with none, the server gets a
 *   "method not found" error. Only the session asked may answer. A server `ping` is answered by the gateway.
 * - `resources/subscribe` is forwarded; `resources/unsubscribe` only once no other session still subscribes.
 * - Limits (one tenant must not exhaust the shared gateway): at most `maxInflightPerSession` requests of one session
 *   and `maxInflightPerServer` of all sessions in flight (waiting for the server to be ready counts), the same cap
 *   on the server's own requests waiting for clients, `maxSubscriptionsPerSession` resource subscriptions. A request
 *   over a cap gets a JSON-RPC error (LIMIT_EXCEEDED) under its own id and never reaches the server. A request
 *   without an answer, progress or related server request for `requestTimeoutMs` is cancelled at the server and
 *   answered with REQUEST_TIMEOUT, so every timer the multiplexer holds is bounded in time and in number.
 * - When the attach drops, requests in flight fail with a JSON-RPC error (their outcome is unknown, and a
 *   tools/call is not safe to repeat). Sessions survive: the next attach re-initializes the server, replays the
 *   resource subscriptions and announces list_changed, and requests arriving meanwhile wait for that (up to
 *   `readyWaitMs`) before they fail.
 */

/** Where messages for one client go: an SSE response stream (a POST's, or the session's GET stream). */
export interface MessageSink {
  /** False once the client's stream is gone; messages for it are dropped. */
  readonly open: boolean;
  send(message: JsonRpcMessage): void;
}

/** The server's input. Each call writes one whole line, so messages never interleave. */
export interface UpstreamLink {
  /** False when the message was not written (the server does not read its input fast enough). */
  send(message: JsonRpcMessage): boolean;
}

export interface InitializeResult {
  protocolVersion: string;
  capabilities: Record<string, unknown>;
  serverInfo?: unknown;
  instructions?: string;
  [key: string]: unknown;
}

export interface MuxSession {
  readonly id: string;
  /** Who opened it ("admin" or "user:<id>"); another caller cannot use it. */
  readonly owner: string;
  readonly protocolVersion: string;
  readonly clientCapabilities: Readonly<Record<string, unknown>>;
  readonly createdAt: number;
  lastActive: number;
  /** The GET stream, when the client holds one open. */
  stream: MessageSink | undefined;
  /** Client request id key → gateway id, for requests in flight. */
  readonly inflight: Map<string, number>;
  /** Requests of this session waiting for the server to be (re)initialized. */
  waiting: number;
  readonly subscriptions: Set<string>;
}

export type MuxEvent =
  | { type: "initialized"; result: InitializeResult; reinitialized: boolean }
  | { type: "initialize_failed"; message: string }
  | { type: "disconnected"; reason: string; failedRequests: number }
  | { type: "dropped"; reason: string }
  | { type: "sessions"; count: number };

export interface StdioMuxOptions {
  clock: Clock;
  /** The user whose server this is: only that user's sessions receive the server's own requests. */
  serverUserId: string;
  clientInfo: { name: string; version: string };
  /** How long the server may take to answer `initialize` (default 10 s). */
  initializeTimeoutMs?: number;
  /** How long a client request waits for the server to be (re)initialized before it fails (default 10 s). */
  readyWaitMs?: number;
  /** A request without answer or activity (progress, a related server request) this long is cancelled (300 s). */
  requestTimeoutMs?: number;
  /** Requests one session may have in flight (64). */
  maxInflightPerSession?: number;
  /** Requests all sessions together may have in flight, and server requests waiting for clients (256). */
  maxInflightPerServer?: number;
  /** Distinct resource URIs one session may subscribe to (100). */
  maxSubscriptionsPerSession?: number;
  maxSessions?: number;
  /** A session with no stream and nothing in flight is forgotten after this long (default 1 h). */
  sessionIdleMs?: number;
  newSessionId?: () => string;
  onEvent?: (event: MuxEvent) => void;
}

/** The documented defaults of the limits (README, "Gateway limits"). */
export const DEFAULT_MUX_LIMITS = {
  requestTimeoutMs: 300_000,
  maxInflightPerSession: 64,
  maxInflightPerServer: 256,
  maxSubscriptionsPerSession: 100,
  maxSessions: 1000,
} as const;

/** The capabilities the gateway declares to the server: it relays these requests to a client that has them. */
export const GATEWAY_CLIENT_CAPABILITIES = { roots: { listChanged: true }, sampling: {}, elicitation: {} };

interface ClientRequest {
  kind: "client";
  gatewayId: number;
  sessionId: string;
  clientId: JsonRpcId;
  progressToken: JsonRpcId | undefined;
  sink: MessageSink;
  startedAt: number;
  timer: unknown;
  resolve: (response: JsonRpcResponse | undefined) => void;
}

/** The requests the gateway itself sends to a server. */
type InternalMethod = Extract<
  ProbeStep,
  "initialize" | "ping" | "resources/subscribe" | "resources/unsubscribe"
>;

interface InternalRequest {
  kind: "internal";
  method: InternalMethod;
  timer: unknown;
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
}

interface ServerRequestRoute {
  serverId: JsonRpcId;
  sessionId: string;
  sink: MessageSink;
  /** The client request in flight it was sent alongside (its timeout restarts on this exchange). */
  viaGatewayId: number | undefined;
}

interface Waiter {
  resolve: (result: InitializeResult) => void;
  reject: (error: Error) => void;
  timer: unknown;
}

export class StdioMultiplexer {
  private link: UpstreamLink | undefined;
  private generation = 0;
  private initialized: InitializeResult | undefined;
  private initializing: Promise<InitializeResult> | undefined;
  private everInitialized = false;
  /** Why the server is not ready, in the gateway's own words (never the server's). */
  private lastError: ProbeError | undefined = NOT_ATTACHED;
  private nextId = 1;
  private readonly pending = new Map<number, ClientRequest | InternalRequest>();
  private readonly serverRequests = new Map<string, ServerRequestRoute>();
  private readonly waiters = new Set<Waiter>();
  readonly sessions = new Map<string, MuxSession>();

  private readonly initializeTimeoutMs: number;
  private readonly readyWaitMs: number;
  private readonly requestTimeoutMs: number;
  private readonly maxInflightPerSession: number;
  private readonly maxInflightPerServer: number;
  private readonly maxSubscriptionsPerSession: number;
  private readonly maxSessions: number;
  /** Client requests and session opens waiting for the server to be ready. */
  private waiting = 0;
  private readonly sessionIdleMs: number;
  private readonly newSessionId: () => string;

  constructor(private readonly options: StdioMuxOptions) {
    this.initializeTimeoutMs = options.initializeTimeoutMs ?? 10_000;
    this.readyWaitMs = options.readyWaitMs ?? 10_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_MUX_LIMITS.requestTimeoutMs;
    this.maxInflightPerSession = options.maxInflightPerSession ?? DEFAULT_MUX_LIMITS.maxInflightPerSession;
    this.maxInflightPerServer = options.maxInflightPerServer ?? DEFAULT_MUX_LIMITS.maxInflightPerServer;
    this.maxSubscriptionsPerSession =
      options.maxSubscriptionsPerSession ?? DEFAULT_MUX_LIMITS.maxSubscriptionsPerSession;
    this.maxSessions = options.maxSessions ?? DEFAULT_MUX_LIMITS.maxSessions;
    this.sessionIdleMs = options.sessionIdleMs ?? 3_600_000;
    this.newSessionId = options.newSessionId ?? randomUUID;
  }

  get ready(): boolean {
    return this.initialized !== undefined;
  }

  get connected(): boolean {
    return this.link !== undefined;
  }

  /** Why the server is not ready (the last attach or initialize failure); "" when it is ready. */
  get notReadyReason(): string {
    return this.lastError?.message ?? "";
  }

  get inflightCount(): number {
    let count = 0;
    for (const entry of this.pending.values()) if (entry.kind === "client") count += 1;
    return count;
  }

  // ---- upstream lifecycle ----

  /** A new attach: the server is (re)initialized before any client request reaches it. */
  connect(link: UpstreamLink): void {
    if (this.link) this.disconnect("replaced by a new attach");
    this.link = link;
    this.generation += 1;
    this.lastError = undefined;
    this.startInitialize().catch(() => undefined);
  }

  /** The attach dropped: requests in flight fail, sessions stay. With `link`, only if that is still the one. */
  disconnect(reason: string, link?: UpstreamLink): void {
    if (!this.link || (link !== undefined && link !== this.link)) return;
    this.link = undefined;
    this.generation += 1;
    this.initialized = undefined;
    this.initializing = undefined;
    this.lastError = CONNECTION_LOST;
    let failed = 0;
    for (const [gatewayId, entry] of this.pending) {
      this.options.clock.clearTimeout(entry.timer);
      if (entry.kind === "internal") {
        entry.reject(
          new ProbeError(entry.method, {
            kind: "unavailable",
            reason: "the connection to the server was lost",
          }),
        );
        continue;
      }
      failed += 1;
      this.sessions.get(entry.sessionId)?.inflight.delete(idKey(entry.clientId));
      entry.resolve(
        errorResponse(entry.clientId, ERROR_CODES.serverUnavailable, `server connection lost: ${reason}`),
      );
      this.pending.delete(gatewayId);
    }
    this.pending.clear();
    for (const route of this.serverRequests.values()) {
      this.deliver(route.sessionId, route.sink, {
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: route.serverId, reason: "server connection lost" },
      });
    }
    this.serverRequests.clear();
    this.options.onEvent?.({ type: "disconnected", reason, failedRequests: failed });
  }

  /** Resolves once the server is initialized on the current attach; starts an initialize when none runs. */
  whenReady(timeoutMs: number): Promise<InitializeResult> {
    if (this.initialized) return Promise.resolve(this.initialized);
    if (this.link && !this.initializing) this.startInitialize().catch(() => undefined);
    return new Promise<InitializeResult>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: this.options.clock.setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new ProbeError("initialize", { kind: "not_ready", ms: timeoutMs }, this.lastError));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** The gateway's MCP probe: (initialize and initialized when needed, then) ping, within `timeoutMs`. */
  async ping(timeoutMs: number): Promise<void> {
    const start = this.options.clock.now();
    await this.whenReady(timeoutMs);
    const left = Math.max(1, timeoutMs - (this.options.clock.now() - start));
    await this.internalRequest("ping", undefined, left);
  }

  private startInitialize(): Promise<InitializeResult> {
    if (this.initialized) return Promise.resolve(this.initialized);
    if (this.initializing) return this.initializing;
    const generation = this.generation;
    const attempt = this.internalRequest(
      "initialize",
      {
        protocolVersion: UPSTREAM_PROTOCOL_VERSION,
        capabilities: GATEWAY_CLIENT_CAPABILITIES,
        clientInfo: this.options.clientInfo,
      },
      this.initializeTimeoutMs,
    )
      .then((raw) => {
        const result = asInitializeResult(raw);
        if (generation !== this.generation || !this.link) throw CONNECTION_LOST;
        this.initialized = result;
        this.lastError = undefined;
        this.link.send({ jsonrpc: "2.0", method: "notifications/initialized" });
        const reinitialized = this.everInitialized;
        this.everInitialized = true;
        for (const waiter of this.waiters) {
          this.options.clock.clearTimeout(waiter.timer);
          waiter.resolve(result);
        }
        this.waiters.clear();
        this.options.onEvent?.({ type: "initialized", result, reinitialized });
        this.replaySubscriptions();
        if (reinitialized) this.announceChanges(result);
        return result;
      })
      // A catch, not then's second argument: an invalid result (thrown above) is a failed initialize too.
      .catch((error: unknown) => {
        const failure =
          error instanceof ProbeError
            ? error
            : new ProbeError("initialize", {
                kind: "unavailable",
                reason: "the connection to the server was lost",
              });
        if (generation === this.generation) this.lastError = failure;
        this.options.onEvent?.({ type: "initialize_failed", message: failure.message });
        throw failure;
      });
    this.initializing = attempt;
    const clear = () => {
      if (this.initializing === attempt) this.initializing = undefined;
    };
    attempt.then(clear, clear);
    return attempt;
  }

  private internalRequest(method: InternalMethod, params: unknown, timeoutMs: number): Promise<unknown> {
    const link = this.link;
    if (!link) {
      return Promise.reject(
        new ProbeError(
          method,
          { kind: "unavailable", reason: "not attached to the container" },
          this.lastError,
        ),
      );
    }
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      const entry: InternalRequest = {
        kind: "internal",
        method,
        resolve,
        reject,
        timer: this.options.clock.setTimeout(() => {
          this.pending.delete(id);
          reject(new ProbeError(method, { kind: "timeout", ms: timeoutMs }));
        }, timeoutMs),
      };
      this.pending.set(id, entry);
      const message: JsonRpcRequest = {
        jsonrpc: "2.0",
        id,
        method,
        ...(params === undefined ? {} : { params }),
      };
      if (!link.send(message)) {
        this.pending.delete(id);
        this.options.clock.clearTimeout(entry.timer);
        reject(new ProbeError(method, { kind: "unavailable", reason: "the server's input queue is full" }));
      }
    });
  }

  // ---- sessions ----

  /** A client's `initialize`: a new session, answered from the server's cached InitializeResult. */
  async openSession(
    owner: string,
    request: JsonRpcRequest,
  ): Promise<{ session?: MuxSession; response: JsonRpcResponse }> {
    if (!this.initialized && this.serverLoad() >= this.maxInflightPerServer) {
      return { response: this.overServerLimit(request.id) };
    }
    let result: InitializeResult;
    this.waiting += 1;
    try {
      result = await this.whenReady(this.readyWaitMs);
    } catch (error) {
      return { response: unavailable(request.id, error) };
    } finally {
      this.waiting -= 1;
    }
    const now = this.options.clock.now();
    this.sweep(now);
    if (this.sessions.size >= this.maxSessions && !this.evictOne()) {
      return {
        response: errorResponse(
          request.id,
          ERROR_CODES.serverUnavailable,
          "too many sessions on this server",
        ),
      };
    }
    const params = paramsRecord(request.params) ?? {};
    const capabilities = paramsRecord(params.capabilities) ?? {};
    const session: MuxSession = {
      id: this.newSessionId(),
      owner,
      protocolVersion: negotiateVersion(params.protocolVersion, result.protocolVersion),
      clientCapabilities: capabilities,
      createdAt: now,
      lastActive: now,
      stream: undefined,
      inflight: new Map(),
      waiting: 0,
      subscriptions: new Set(),
    };
    this.sessions.set(session.id, session);
    this.options.onEvent?.({ type: "sessions", count: this.sessions.size });
    return {
      session,
      response: {
        jsonrpc: "2.0",
        id: request.id,
        result: { ...result, protocolVersion: session.protocolVersion },
      },
    };
  }

  /** The session `id` if `owner` opened it. */
  session(id: string, owner: string): MuxSession | undefined {
    const session = this.sessions.get(id);
    return session && session.owner === owner ? session : undefined;
  }

  /** Ends a session (DELETE, or eviction): its requests in flight are cancelled at the server. */
  closeSession(id: string, reason = "client session ended"): void {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
    for (const gatewayId of session.inflight.values()) {
      this.sendUpstream({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: gatewayId, reason },
      });
      this.complete(gatewayId, undefined);
    }
    for (const [key, route] of this.serverRequests) {
      if (route.sessionId !== id) continue;
      this.serverRequests.delete(key);
      this.sendUpstream(errorResponse(route.serverId, ERROR_CODES.internalError, reason));
    }
    for (const uri of session.subscriptions) {
      if (!this.subscribed(uri))
        this.internalRequest("resources/unsubscribe", { uri }, 10_000).catch(() => undefined);
    }
    this.options.onEvent?.({ type: "sessions", count: this.sessions.size });
  }

  /** Forgets sessions idle for longer than `sessionIdleMs` (no GET stream, nothing in flight). */
  sweep(now: number = this.options.clock.now()): void {
    for (const session of [...this.sessions.values()]) {
      if (this.busy(session)) continue;
      if (now - session.lastActive >= this.sessionIdleMs) this.closeSession(session.id, "session idle");
    }
  }

  closeAll(reason: string): void {
    for (const id of [...this.sessions.keys()]) this.closeSession(id, reason);
    this.disconnect(reason);
    for (const waiter of this.waiters) {
      this.options.clock.clearTimeout(waiter.timer);
      waiter.reject(new Error(reason));
    }
    this.waiters.clear();
  }

  private busy(session: MuxSession): boolean {
    return session.inflight.size > 0 || session.stream?.open === true;
  }

  private evictOne(): boolean {
    let oldest: MuxSession | undefined;
    for (const session of this.sessions.values()) {
      if (this.busy(session)) continue;
      if (!oldest || session.lastActive < oldest.lastActive) oldest = session;
    }
    if (!oldest) return false;
    this.closeSession(oldest.id, "evicted: too many sessions");
    return true;
  }

  private subscribed(uri: string): boolean {
    for (const session of this.sessions.values()) if (session.subscriptions.has(uri)) return true;
    return false;
  }

  // ---- client → server ----

  /**
   * Forwards a client request; resolves with the response under the client's id (undefined when the client
   * cancelled it). Related messages (progress, server requests) go to `sink`.
   */
  async forward(
    session: MuxSession,
    request: JsonRpcRequest,
    sink: MessageSink,
  ): Promise<JsonRpcResponse | undefined> {
    session.lastActive = this.options.clock.now();
    const key = idKey(request.id);
    if (session.inflight.size + session.waiting >= this.maxInflightPerSession) {
      return errorResponse(
        request.id,
        ERROR_CODES.limitExceeded,
        `too many requests in flight on this session (limit ${this.maxInflightPerSession})`,
      );
    }
    if (this.serverLoad() >= this.maxInflightPerServer) return this.overServerLimit(request.id);
    if (session.inflight.has(key)) {
      return errorResponse(
        request.id,
        ERROR_CODES.invalidRequest,
        "a request with this id is already in flight",
      );
    }
    const uri = paramsRecord(request.params)?.uri;
    if (request.method === "resources/subscribe" && typeof uri === "string") {
      if (!session.subscriptions.has(uri) && session.subscriptions.size >= this.maxSubscriptionsPerSession) {
        return errorResponse(
          request.id,
          ERROR_CODES.limitExceeded,
          `too many resource subscriptions on this session (limit ${this.maxSubscriptionsPerSession})`,
        );
      }
      session.subscriptions.add(uri);
    }
    if (request.method === "resources/unsubscribe" && typeof uri === "string") {
      session.subscriptions.delete(uri);
      if (this.subscribed(uri)) return { jsonrpc: "2.0", id: request.id, result: {} };
    }
    if (!this.initialized) {
      session.waiting += 1;
      this.waiting += 1;
      try {
        await this.whenReady(this.readyWaitMs);
      } catch (error) {
        return unavailable(request.id, error);
      } finally {
        session.waiting -= 1;
        this.waiting -= 1;
      }
      if (!this.sessions.has(session.id)) {
        return errorResponse(request.id, ERROR_CODES.invalidRequest, "session closed");
      }
    }
    const link = this.link;
    if (!link) return unavailable(request.id, this.lastError ?? NOT_ATTACHED);
    const gatewayId = this.nextId++;
    const progressToken = progressTokenOf(request.params);
    const upstream: JsonRpcRequest = {
      jsonrpc: "2.0",
      id: gatewayId,
      method: request.method,
      ...(progressToken !== undefined
        ? { params: withProgressToken(request.params, gatewayId) }
        : request.params === undefined
          ? {}
          : { params: request.params }),
    };
    return new Promise<JsonRpcResponse | undefined>((resolve) => {
      const entry: ClientRequest = {
        kind: "client",
        gatewayId,
        sessionId: session.id,
        clientId: request.id,
        progressToken,
        sink,
        startedAt: this.options.clock.now(),
        resolve,
        timer: undefined,
      };
      this.armTimeout(entry);
      this.pending.set(gatewayId, entry);
      session.inflight.set(key, gatewayId);
      if (!link.send(upstream)) {
        this.complete(
          gatewayId,
          errorResponse(request.id, ERROR_CODES.serverUnavailable, "the server's input queue is full"),
        );
      }
    });
  }

  /** (Re)starts a request's timeout: its answer or some activity must come within `requestTimeoutMs`. */
  private armTimeout(entry: ClientRequest): void {
    this.options.clock.clearTimeout(entry.timer);
    entry.timer = this.options.clock.setTimeout(() => {
      this.sendUpstream({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: entry.gatewayId, reason: "timed out at the gateway" },
      });
      this.complete(
        entry.gatewayId,
        errorResponse(
          entry.clientId,
          ERROR_CODES.requestTimeout,
          `no answer or progress within ${this.requestTimeoutMs} ms`,
        ),
      );
    }, this.requestTimeoutMs);
  }

  /** Requests in flight or waiting at this server (internal ones included: there are few). */
  private serverLoad(): number {
    return this.pending.size + this.waiting;
  }

  private overServerLimit(id: JsonRpcId): JsonRpcResponse {
    return errorResponse(
      id,
      ERROR_CODES.limitExceeded,
      `too many requests in flight to this server (limit ${this.maxInflightPerServer})`,
    );
  }

  /** A client notification (cancellation, progress of a server request, roots changed, ...). */
  notify(session: MuxSession, notification: JsonRpcNotification): void {
    session.lastActive = this.options.clock.now();
    if (notification.method === "notifications/initialized") return;
    if (notification.method === "notifications/cancelled") {
      const params = paramsRecord(notification.params) ?? {};
      const requestId = params.requestId;
      const gatewayId =
        typeof requestId === "string" || typeof requestId === "number"
          ? session.inflight.get(idKey(requestId))
          : undefined;
      if (gatewayId === undefined) return;
      this.sendUpstream({ ...notification, params: { ...params, requestId: gatewayId } });
      this.complete(gatewayId, undefined);
      return;
    }
    this.sendUpstream(notification);
  }

  /** A client's answer to a server-to-client request; only the session that was asked may answer. */
  respond(session: MuxSession, response: JsonRpcResponse): void {
    session.lastActive = this.options.clock.now();
    if (response.id === null) return this.dropped("client response without id");
    const key = idKey(response.id);
    const route = this.serverRequests.get(key);
    if (!route || route.sessionId !== session.id)
      return this.dropped("client response to no pending request");
    this.serverRequests.delete(key);
    this.touch(route.viaGatewayId);
    this.sendUpstream(response);
  }

  /** The session's GET stream opened (or closed, with undefined). */
  setStream(session: MuxSession, stream: MessageSink | undefined): void {
    session.stream = stream;
    session.lastActive = this.options.clock.now();
  }

  // ---- server → clients ----

  /** One line of the server's stdout. */
  receive(line: string): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return this.dropped("server wrote a line that is not JSON");
    }
    const classified = classify(value);
    if (!classified) return this.dropped("server wrote JSON that is not JSON-RPC 2.0");
    switch (classified.kind) {
      case "response":
        return this.onServerResponse(classified.message);
      case "request":
        return this.onServerRequest(classified.message);
      case "notification":
        return this.onServerNotification(classified.message);
    }
  }

  private onServerResponse(response: JsonRpcResponse): void {
    const entry = typeof response.id === "number" ? this.pending.get(response.id) : undefined;
    if (!entry) return this.dropped("server response to no pending request");
    if (entry.kind === "internal") {
      this.pending.delete(response.id as number);
      this.options.clock.clearTimeout(entry.timer);
      // The error's code only: its message is the server's text, and this may end up in status.
      if ("error" in response) {
        const code = typeof response.error.code === "number" ? response.error.code : Number.NaN;
        entry.reject(new ProbeError(entry.method, { kind: "rpc_error", code }));
      } else entry.resolve(response.result);
      return;
    }
    this.complete(entry.gatewayId, { ...response, id: entry.clientId });
  }

  private onServerRequest(request: JsonRpcRequest): void {
    if (request.method === "ping") {
      this.sendUpstream({ jsonrpc: "2.0", id: request.id, result: {} });
      return;
    }
    if (this.serverRequests.size >= this.maxInflightPerServer) {
      this.sendUpstream(
        errorResponse(
          request.id,
          ERROR_CODES.limitExceeded,
          `too many server requests waiting for clients (limit ${this.maxInflightPerServer})`,
        ),
      );
      return;
    }
    const route = this.routeServerRequest(request.method);
    if (!route) {
      this.sendUpstream(
        errorResponse(
          request.id,
          ERROR_CODES.methodNotFound,
          `no connected client of the server's user can handle ${request.method} (the gateway routes it to one live session of that user)`,
        ),
      );
      return;
    }
    this.serverRequests.set(idKey(request.id), { serverId: request.id, ...route });
    this.touch(route.viaGatewayId);
    route.sink.send(request);
  }

  private routeServerRequest(
    method: string,
  ): { sessionId: string; sink: MessageSink; viaGatewayId: number | undefined } | undefined {
    const capability = capabilityFor(method);
    const owner = userOwner(this.options.serverUserId);
    const eligible = (session: MuxSession | undefined): session is MuxSession =>
      session !== undefined &&
      session.owner === owner &&
      (capability === undefined || session.clientCapabilities[capability] !== undefined);
    let best: ClientRequest | undefined;
    for (const entry of this.pending.values()) {
      if (entry.kind !== "client" || !entry.sink.open || !eligible(this.sessions.get(entry.sessionId)))
        continue;
      if (
        !best ||
        entry.startedAt > best.startedAt ||
        (entry.startedAt === best.startedAt && entry.gatewayId > best.gatewayId)
      )
        best = entry;
    }
    if (best) return { sessionId: best.sessionId, sink: best.sink, viaGatewayId: best.gatewayId };
    let recent: MuxSession | undefined;
    for (const session of this.sessions.values()) {
      if (!eligible(session) || session.stream?.open !== true) continue;
      if (!recent || session.lastActive > recent.lastActive) recent = session;
    }
    return recent?.stream
      ? { sessionId: recent.id, sink: recent.stream, viaGatewayId: undefined }
      : undefined;
  }

  private onServerNotification(notification: JsonRpcNotification): void {
    const params = paramsRecord(notification.params) ?? {};
    switch (notification.method) {
      case "notifications/progress": {
        const token = params.progressToken;
        const entry = typeof token === "number" ? this.pending.get(token) : undefined;
        if (entry?.kind !== "client" || entry.progressToken === undefined) {
          return this.dropped("progress for no request in flight");
        }
        this.armTimeout(entry);
        this.deliver(entry.sessionId, entry.sink, {
          ...notification,
          params: { ...params, progressToken: entry.progressToken },
        });
        return;
      }
      case "notifications/cancelled": {
        const requestId = params.requestId;
        if (typeof requestId !== "string" && typeof requestId !== "number") return;
        const key = idKey(requestId);
        const route = this.serverRequests.get(key);
        if (!route) return;
        this.serverRequests.delete(key);
        this.deliver(route.sessionId, route.sink, notification);
        return;
      }
      case "notifications/resources/updated": {
        for (const session of this.sessions.values()) {
          if (typeof params.uri === "string" && session.subscriptions.has(params.uri)) {
            session.stream?.send(notification);
          }
        }
        return;
      }
      default:
        this.broadcast(notification);
    }
  }

  /** The gateway's tool policy for this server changed: every session with an open stream lists its tools again. */
  announceToolsChanged(): void {
    this.broadcast({ jsonrpc: "2.0", method: "notifications/tools/list_changed" });
  }

  private broadcast(notification: JsonRpcNotification): void {
    for (const session of this.sessions.values()) {
      if (session.stream?.open) session.stream.send(notification);
    }
  }

  /** To `sink` while it is open, else to the session's GET stream, else nowhere. */
  private deliver(sessionId: string, sink: MessageSink, message: JsonRpcMessage): void {
    if (sink.open) return sink.send(message);
    const stream = this.sessions.get(sessionId)?.stream;
    if (stream?.open) stream.send(message);
  }

  /** Activity on a client request in flight (a related server request or its answer): restart its timeout. */
  private touch(gatewayId: number | undefined): void {
    const entry = gatewayId === undefined ? undefined : this.pending.get(gatewayId);
    if (entry?.kind === "client") this.armTimeout(entry);
  }

  private complete(gatewayId: number, response: JsonRpcResponse | undefined): void {
    const entry = this.pending.get(gatewayId);
    if (entry?.kind !== "client") return;
    this.pending.delete(gatewayId);
    this.options.clock.clearTimeout(entry.timer);
    this.sessions.get(entry.sessionId)?.inflight.delete(idKey(entry.clientId));
    entry.resolve(response);
  }

  private sendUpstream(message: JsonRpcMessage): void {
    this.link?.send(message);
  }

  private replaySubscriptions(): void {
    const uris = new Set<string>();
    for (const session of this.sessions.values()) for (const uri of session.subscriptions) uris.add(uri);
    for (const uri of uris) {
      this.internalRequest("resources/subscribe", { uri }, this.initializeTimeoutMs).catch(() => undefined);
    }
  }

  /** After a re-initialize the server may be a new version: tell clients to list again. */
  private announceChanges(result: InitializeResult): void {
    for (const kind of ["tools", "prompts", "resources"]) {
      if (result.capabilities[kind] !== undefined) {
        this.broadcast({ jsonrpc: "2.0", method: `notifications/${kind}/list_changed` });
      }
    }
  }

  private dropped(reason: string): void {
    this.options.onEvent?.({ type: "dropped", reason });
  }
}

function unavailable(id: JsonRpcId, error: unknown): JsonRpcResponse {
  const message = error instanceof Error ? error.message : String(error);
  return errorResponse(id, ERROR_CODES.serverUnavailable, `server unavailable: ${message}`);
}

const NOT_ATTACHED = new ProbeError("attach", {
  kind: "unavailable",
  reason: "not attached to the container",
});
const CONNECTION_LOST = new ProbeError("attach", {
  kind: "unavailable",
  reason: "the connection to the server was lost",
});

function asInitializeResult(raw: unknown): InitializeResult {
  const record = paramsRecord(raw);
  const capabilities = paramsRecord(record?.capabilities);
  if (!record || typeof record.protocolVersion !== "string" || !capabilities) {
    throw new ProbeError("initialize", { kind: "invalid_initialize_result" });
  }
  return { ...record, protocolVersion: record.protocolVersion, capabilities };
}
