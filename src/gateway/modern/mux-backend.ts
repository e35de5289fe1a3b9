import { randomUUID } from "node:crypto";
import type { Clock } from "../../util/clock.js";
import {
  ERROR_CODES,
  type JsonRpcId,
  type JsonRpcRequest,
  type JsonRpcResponse,
  classify,
  errorResponse,
} from "../jsonrpc.js";
import { UPSTREAM_PROTOCOL_VERSION } from "../protocol.js";
import type { InitializeResult, MessageSink, MuxSession, StdioMultiplexer } from "../stdio-mux.js";
import type { ModernRequest } from "./envelope.js";
import { Exchange } from "./exchange.js";
import type { ClientStream, ModernBackend } from "./front.js";
import {
  ALLOW_ALL_NOTIFICATIONS,
  type NotificationPolicy,
  acknowledgement,
  filterAccepts,
  honoredFilter,
  isEmptyFilter,
  parseListenFilter,
  stampSubscription,
} from "./listen.js";
import { completeResult, discoverResult, inputRequiredResult } from "./translate.js";
import { META } from "./versions.js";

/** Default bounds of the multi-round-trip state (README, "Gateway limits"). */
export const DEFAULT_INPUT_LIMITS = { maxWaiting: 256, waitMs: 300_000 } as const;

/** Session-scoped methods a stateless client cannot use: refused with "method not found" and the reason. */
const REFUSED_METHODS: Readonly<Record<string, string>> = {
  initialize: "MCP 2026-07-28 has no initialize: call server/discover",
  "resources/subscribe": "MCP 2026-07-28 subscribes through subscriptions/listen (resourceSubscriptions)",
  "resources/unsubscribe": "MCP 2026-07-28 unsubscribes by closing its subscriptions/listen stream",
  "logging/setLevel":
    "the gateway shares one session with the server among all clients: a log level set by one client would apply to every client",
};

export interface MuxBackendOptions {
  clock: Clock;
  /** How long a request waits for the server to be (re)initialized (default 10 s). */
  readyWaitMs?: number;
  /** Requests parked on an `input_required` answer, at most (default 256); more get an error. */
  maxWaiting?: number;
  /** A parked request whose client does not come back with its answers within this is cancelled (300 s). */
  waitMs?: number;
  /** A per-caller say on which notifications a listen stream carries (e.g. a tool policy). */
  notificationPolicy?: NotificationPolicy;
}

interface Parked {
  exchange: Exchange;
  timer: unknown;
}

/**
 * Modern requests onto a legacy server's one session (a stdio multiplexer, or the same multiplexer over an
 * HTTP session). Each modern request gets a short-lived multiplexer session carrying the capabilities its
 * envelope declared, so the multiplexer's routing (ids, progress, the server's own requests) applies unchanged;
 * the session ends with the request. A `subscriptions/listen` stream is a session whose GET stream is the
 * listen stream, filtered.
 */
export class MuxBackend implements ModernBackend {
  private readonly parked = new Map<string, Parked>();
  private readonly readyWaitMs: number;
  private readonly maxWaiting: number;
  private readonly waitMs: number;
  private readonly policy: NotificationPolicy;

  constructor(
    private readonly mux: StdioMultiplexer,
    private readonly options: MuxBackendOptions,
  ) {
    this.readyWaitMs = options.readyWaitMs ?? 10_000;
    this.maxWaiting = options.maxWaiting ?? DEFAULT_INPUT_LIMITS.maxWaiting;
    this.waitMs = options.waitMs ?? DEFAULT_INPUT_LIMITS.waitMs;
    this.policy = options.notificationPolicy ?? ALLOW_ALL_NOTIFICATIONS;
  }

  get waitingCount(): number {
    return this.parked.size;
  }

  async call(
    request: ModernRequest,
    owner: string,
    related: MessageSink,
    cancelled: AbortSignal,
  ): Promise<JsonRpcResponse> {
    const refusal = REFUSED_METHODS[request.method];
    if (refusal)
      return errorResponse(request.id, ERROR_CODES.methodNotFound, `${request.method}: ${refusal}`);
    let init: InitializeResult;
    try {
      init = await this.mux.whenReady(this.readyWaitMs);
    } catch (error) {
      return unavailable(request.id, error);
    }
    if (request.method === "server/discover") {
      return { jsonrpc: "2.0", id: request.id, result: discoverResult(init) };
    }
    let exchange: Exchange;
    if (request.requestState !== undefined) {
      const resumed = this.resume(request, owner);
      if (!(resumed instanceof Exchange)) return resumed;
      exchange = resumed;
    } else {
      const opened = await this.open(request, owner, related);
      if (!(opened instanceof Exchange)) return opened;
      exchange = opened;
    }
    return this.round(exchange, request.id, init, related, cancelled);
  }

  /** A new exchange: a session with the request's capabilities, and the request sent to the server. */
  private async open(
    request: ModernRequest,
    owner: string,
    related: MessageSink,
  ): Promise<Exchange | JsonRpcResponse> {
    const { session, response } = await this.mux.openSession(
      owner,
      syntheticInitialize(request.clientCapabilities),
    );
    if (!session) return { ...response, id: request.id };
    const exchange = new Exchange(session, owner, request.method);
    exchange.related = related;
    const upstream: JsonRpcRequest = {
      jsonrpc: "2.0",
      id: request.id,
      method: request.method,
      ...(request.legacyParams === undefined ? {} : { params: request.legacyParams }),
    };
    void this.mux.forward(session, upstream, exchange.sink).then((answer) => exchange.finish(answer));
    return exchange;
  }

  /** The client's retry of an `input_required` answer: its answers go to the server's waiting requests. */
  private resume(request: ModernRequest, owner: string): Exchange | JsonRpcResponse {
    const state = request.requestState ?? "";
    const parked = this.parked.get(state);
    if (!parked || parked.exchange.owner !== owner || parked.exchange.method !== request.method) {
      return errorResponse(
        request.id,
        ERROR_CODES.invalidParams,
        "requestState unknown or expired (a request waits for its input at most a limited time, on the gateway that started it): send the request again without requestState",
      );
    }
    this.parked.delete(state);
    this.options.clock.clearTimeout(parked.timer);
    const { exchange } = parked;
    for (const [key, serverId] of exchange.awaiting) {
      const answer = request.inputResponses?.[key];
      this.mux.respond(
        exchange.session,
        answer
          ? { jsonrpc: "2.0", id: serverId, result: answer }
          : errorResponse(serverId, ERROR_CODES.invalidParams, "the client gave no answer to this request"),
      );
    }
    exchange.awaiting.clear();
    return exchange;
  }

  /** Waits for the server's answer or its next questions; parks the exchange on questions. */
  private async round(
    exchange: Exchange,
    id: JsonRpcId,
    init: InitializeResult,
    related: MessageSink,
    cancelled: AbortSignal,
  ): Promise<JsonRpcResponse> {
    exchange.related = related;
    const abandon = () => this.abandon(exchange, "the client went away");
    cancelled.addEventListener("abort", abandon, { once: true });
    try {
      const outcome = await exchange.next();
      if (outcome.kind === "final") {
        this.abandon(exchange, "done");
        const response =
          outcome.response ?? errorResponse(id, ERROR_CODES.requestTimeout, "request cancelled");
        if ("error" in response) return { ...response, id };
        return { jsonrpc: "2.0", id, result: completeResult(exchange.method, response.result, init) };
      }
      if (this.parked.size >= this.maxWaiting) {
        this.abandon(exchange, "too many requests waiting for input");
        return errorResponse(
          id,
          ERROR_CODES.limitExceeded,
          `too many requests waiting for their client's input (limit ${this.maxWaiting})`,
        );
      }
      const state = randomUUID();
      this.parked.set(state, {
        exchange,
        timer: this.options.clock.setTimeout(() => {
          if (this.parked.get(state)?.exchange !== exchange) return;
          this.parked.delete(state);
          this.abandon(exchange, "the client did not come back with its input in time");
        }, this.waitMs),
      });
      exchange.related = undefined;
      return { jsonrpc: "2.0", id, result: inputRequiredResult(outcome.requests, state, init) };
    } finally {
      cancelled.removeEventListener("abort", abandon);
    }
  }

  /** Ends an exchange: its session closes, which cancels a request still running at the server. */
  private abandon(exchange: Exchange, reason: string): void {
    if (exchange.done) return;
    exchange.end();
    for (const [state, parked] of this.parked) {
      if (parked.exchange !== exchange) continue;
      this.parked.delete(state);
      this.options.clock.clearTimeout(parked.timer);
    }
    this.mux.closeSession(exchange.session.id, reason);
    exchange.finish(undefined);
  }

  async listen(
    request: ModernRequest,
    owner: string,
    open: () => ClientStream,
  ): Promise<JsonRpcResponse | undefined> {
    const filter = parseListenFilter(request.legacyParams);
    if (!filter) {
      return errorResponse(
        request.id,
        ERROR_CODES.invalidParams,
        "subscriptions/listen needs params.notifications, a subscription filter (at most 100 resource URIs)",
      );
    }
    let init: InitializeResult;
    try {
      init = await this.mux.whenReady(this.readyWaitMs);
    } catch (error) {
      return unavailable(request.id, error);
    }
    const honored = honoredFilter(filter, init.capabilities);
    let session: MuxSession | undefined;
    if (!isEmptyFilter(honored)) {
      const opened = await this.mux.openSession(owner, syntheticInitialize({}));
      if (!opened.session) return { ...opened.response, id: request.id };
      session = opened.session;
    }
    const stream = open();
    stream.send(acknowledgement(honored, request.id));
    if (!session) {
      // Nothing the server could ever send: the subscription ends at once, gracefully.
      stream.send({
        jsonrpc: "2.0",
        id: request.id,
        result: {
          resultType: "complete",
          _meta: { [META.subscriptionId]: request.id, ...serverInfoMeta(init) },
        },
      });
      stream.end();
      return undefined;
    }
    const listening = session;
    const sink: MessageSink = {
      get open() {
        return stream.open;
      },
      send: (message) => {
        const classified = classify(message);
        if (classified?.kind !== "notification") return;
        const notification = classified.message;
        if (!filterAccepts(honored, notification) || !this.policy(owner, notification)) return;
        stream.send(stampSubscription(notification, request.id));
      },
    };
    this.mux.setStream(listening, sink);
    void stream.done.then(() => this.mux.closeSession(listening.id, "listen stream closed"));
    let n = 0;
    for (const uri of honored.resourceSubscriptions ?? []) {
      n += 1;
      const none: MessageSink = { open: false, send: () => undefined };
      await this.mux.forward(
        listening,
        { jsonrpc: "2.0", id: `listen-subscribe-${n}`, method: "resources/subscribe", params: { uri } },
        none,
      );
    }
    return undefined;
  }
}

function serverInfoMeta(init: InitializeResult): Record<string, unknown> {
  return init.serverInfo === undefined ? {} : { [META.serverInfo]: init.serverInfo };
}

/** The `initialize` a modern request stands for: its capabilities, on the revision the server session speaks. */
function syntheticInitialize(capabilities: Record<string, unknown>): JsonRpcRequest {
  return {
    jsonrpc: "2.0",
    id: 0,
    method: "initialize",
    params: { protocolVersion: UPSTREAM_PROTOCOL_VERSION, capabilities },
  };
}

function unavailable(id: JsonRpcId, error: unknown): JsonRpcResponse {
  const message = error instanceof Error ? error.message : String(error);
  return errorResponse(id, ERROR_CODES.serverUnavailable, `server unavailable: ${message}`);
}
