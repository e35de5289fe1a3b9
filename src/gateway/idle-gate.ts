import { IncomingMessage, type ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
import { BodyTooLargeError, headerValue, readBody, sendJson, sendRpcError } from "./http-util.js";
import { IdleView } from "./idle-view.js";
import type { ToolAccess } from "./handler.js";
import { ERROR_CODES, type JsonRpcRequest, type JsonRpcResponse, classify } from "./jsonrpc.js";
import { markResult } from "./metrics.js";
import { eraOfHeader } from "./modern/versions.js";
import { PROTOCOL_VERSION_HEADER } from "./protocol.js";
import { messageBytes, screenToolCall } from "./tool-calls.js";
import { calledTool } from "./tool-policy.js";
import { TrafficRecorder } from "./traffic-recorder.js";
import { type WakeMetrics, createWakeMetrics } from "./wake-metrics.js";
import { type WakeWait, Waker } from "./waker.js";

export interface IdleGateDeps {
  stateDir: string;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** MCP_PORTAL_GATEWAY_WAKE_TIMEOUT_SECONDS, in ms. */
  wakeTimeoutMs: number;
  /** Request bodies are read whole, up to this (the stdio bridge's cap). */
  maxBodyBytes?: number;
  /** Tests: idle.json poll period, wake request retry period, traffic write period. */
  tuning?: { viewPollMs?: number; wakeRetryMs?: number; trafficWriteMs?: number };
}

/** What the gate needs to know of one server as its endpoint sees it. */
export interface GateTarget {
  userId: string;
  serverId: string;
  transport: string;
  running: boolean;
}

/** The request to serve (its body, already read, is replayed) and whether it needs the container. */
export interface Admitted {
  req: IncomingMessage;
  /** Served by the gateway's own sessions without the container (an idle stdio server's streams). */
  withoutContainer: boolean;
}

/**
 * Scale to zero at the gateway (README, "Idle servers"): every request to a user's server passes here after auth.
 * It records traffic (any client request other than `ping` or a `tools/call` the caller's tool policy refuses),
 * answers what an idle server need not wake for (a `ping`, notifications, an HTTP server's event stream, a refused
 * `tools/call`: a caller may not wake a server for a tool it may not use), and holds a request that needs an idle
 * server while the Waker asks the controller to start it; past the bound the client gets a JSON-RPC error saying
 * why.
 */
export class IdleGate {
  readonly view: IdleView;
  readonly traffic: TrafficRecorder;
  readonly metrics: WakeMetrics;
  private readonly waker: Waker;
  private readonly maxBodyBytes: number;

  constructor(private readonly deps: IdleGateDeps) {
    const log = (what: string) => (error: unknown) => deps.logger.error({ err: String(error) }, what);
    this.view = new IdleView(deps.stateDir, deps.clock, deps.logger, deps.tuning?.viewPollMs);
    this.traffic = new TrafficRecorder(
      deps.stateDir,
      deps.clock,
      log("cannot write traffic.json"),
      deps.tuning?.trafficWriteMs,
    );
    this.metrics = createWakeMetrics(deps.registry);
    this.waker = new Waker({
      stateDir: deps.stateDir,
      clock: deps.clock,
      logger: deps.logger,
      view: this.view,
      metrics: this.metrics,
      timeoutMs: deps.wakeTimeoutMs,
      ...(deps.tuning?.wakeRetryMs !== undefined ? { retryMs: deps.tuning.wakeRetryMs } : {}),
    });
    this.maxBodyBytes = deps.maxBodyBytes ?? 4 * 1024 * 1024;
  }

  async start(): Promise<void> {
    await this.view.start();
  }

  async stop(): Promise<void> {
    this.view.stop();
    await this.traffic.flush();
  }

  /**
   * The request to hand on, or undefined when it was answered here. `tools`: the caller's tool policy (refused
   * calls are answered and audited here when the server is idle; otherwise the handler refuses them).
   */
  async admit(
    req: IncomingMessage,
    res: ServerResponse,
    target: GateTarget,
    wait: WakeWait,
    tools?: ToolAccess,
  ): Promise<Admitted | undefined> {
    let request = req;
    let requests: JsonRpcRequest[] | undefined;
    let messages = 0;
    const refused = (r: JsonRpcRequest) => screenToolCall(r, tools);
    if (req.method === "POST") {
      let body: Buffer;
      try {
        body = await readBody(req, this.maxBodyBytes);
      } catch (error) {
        if (!(error instanceof BodyTooLargeError)) throw error;
        return void sendRpcError(res, 413, ERROR_CODES.invalidRequest, error.message, {
          connection: "close",
        });
      }
      ({ requests, messages } = jsonRpcRequests(body));
      // Unparsable bodies count as traffic: the server answers them, so they need it awake. A request is traffic
      // until its answer ends (a wake or a long tool call must not be cut by the idle timeout), except a 2026-07-28
      // `subscriptions/listen`: its answer is a notification stream, and open streams keep no server awake.
      if (requests === undefined || requests.some((r) => r.method !== "ping" && !refused(r))) {
        if (requests?.length === 1 && requests[0]!.method === LISTEN_METHOD)
          this.traffic.record(target.userId, target.serverId);
        else res.once("close", this.traffic.begin(target.userId, target.serverId));
      }
      request = replayRequest(req, body);
    }
    // idle.json is looked at for every request (a stat; re-read only when it changed), running or not: the
    // controller writes it before it stops a server, so a request that arrives while the container still runs
    // but is being stopped is held for the wake instead of being sent to a process about to exit.
    await this.view.refresh();
    if (!this.view.isIdle(target.userId, target.serverId)) return { req: request, withoutContainer: false };
    // The server is idle, or being stopped for idleness.
    if (req.method !== "POST") {
      // A stdio server's client sessions and their streams live in the gateway: they wait for the server.
      if (target.transport === "stdio") return { req: request, withoutContainer: true };
      if (req.method === "DELETE") return void res.writeHead(200).end();
      // An HTTP server's event stream would wake it for nothing: clients treat 405 as "no stream offered".
      return void sendRpcError(res, 405, ERROR_CODES.invalidRequest, "the server is idle: no event stream", {
        allow: "POST, DELETE",
      });
    }
    if (requests !== undefined && requests.every((r) => r.method === "ping" || refused(r))) {
      if (requests.length === 0) return void res.writeHead(202).end();
      // A 2026-07-28 client expects every result typed (translate.ts gives the server's own the same).
      const modern = eraOfHeader(headerValue(req, PROTOCOL_VERSION_HEADER)) === "modern";
      const result = modern ? { resultType: "complete" } : {};
      const answers = requests.map((r): JsonRpcResponse => {
        const refusal = refused(r);
        if (!refusal) return { jsonrpc: "2.0", id: r.id, result };
        // Audited as the handler would have: a refused call, which never reached the server.
        tools!.begin(calledTool(r.params), messageBytes(r)).finish("refused", messageBytes(refusal));
        return refusal;
      });
      sendJson(res, 200, messages === 1 && answers.length === 1 ? answers[0] : answers);
      return undefined;
    }
    const outcome = await this.waker.wake(target.userId, target.serverId, wait);
    if (outcome.ok) return { req: request, withoutContainer: false };
    markResult(res, "unavailable");
    const id = requests?.length === 1 ? requests[0]!.id : null;
    sendRpcError(
      res,
      503,
      ERROR_CODES.serverUnavailable,
      `server ${target.serverId} is idle and could not be woken: ${outcome.message}`,
      { "retry-after": outcome.result === "refused" ? "60" : "5" },
      id,
    );
    return undefined;
  }
}

/** MCP 2026-07-28's notification stream (a request whose answer stays open). */
const LISTEN_METHOD = "subscriptions/listen";

/** The requests (id, method) of a JSON-RPC body, and how many messages it holds; undefined when it is none. */
function jsonRpcRequests(body: Buffer): {
  requests: JsonRpcRequest[] | undefined;
  messages: number;
} {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return { requests: undefined, messages: 0 };
  }
  const values: unknown[] = Array.isArray(parsed) ? (parsed as unknown[]) : [parsed];
  const requests: JsonRpcRequest[] = [];
  for (const value of values) {
    const message = classify(value);
    if (!message) return { requests: undefined, messages: values.length };
    if (message.kind === "request") requests.push(message.message);
  }
  return { requests, messages: Array.isArray(parsed) ? -1 : 1 };
}

/** The request again, its body (already read here) to be read once more by whoever serves it. */
export function replayRequest(req: IncomingMessage, body: Buffer): IncomingMessage {
  const replay = new IncomingMessage(req.socket);
  replay.method = req.method;
  replay.url = req.url;
  replay.headers = req.headers;
  replay.rawHeaders = req.rawHeaders;
  replay.httpVersion = req.httpVersion;
  replay.httpVersionMajor = req.httpVersionMajor;
  replay.httpVersionMinor = req.httpVersionMinor;
  // Complete like a parsed request: an incomplete IncomingMessage that ends counts as aborted and destroys the
  // client's socket.
  replay.complete = true;
  replay.push(body);
  replay.push(null);
  return replay;
}
