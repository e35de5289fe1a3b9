import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { RequestContext, RequestHandler } from "./handler.js";
import { BodyTooLargeError, headerValue, pathnameOf, readBody, sendJson, sendRpcError } from "./http-util.js";
import { ERROR_CODES } from "./jsonrpc.js";
import { markResult } from "./metrics.js";
import { SESSION_HEADER } from "./protocol.js";
import { type EventMode, SseFramer, formatEvent, parseEvent } from "./sse-framer.js";
import { ToolTraffic, type Watch } from "./tool-traffic.js";

export interface HttpTarget {
  host: string;
  port: number;
}

export interface HttpProxyOptions {
  /** Where the server listens now; throws when that is unknown (answered 503). */
  target: () => Promise<HttpTarget>;
  /** The connection failed: forget the resolved target (the container may have a new address). */
  invalidate?: () => void;
  agent: http.Agent;
  /** `sse` servers answer on the session's GET stream; `streamable-http` ones on each POST (the default). */
  transport?: "streamable-http" | "sse";
  connectTimeoutMs?: number;
  /**
   * The server must start its answer within this long, and a started answer must not go quiet for longer (each
   * chunk restarts it); a GET's event stream (a session's channel for server messages) is exempt once it started.
   */
  responseTimeoutMs?: number;
  /** Requests (streams included) this server may have at once; more get 429 (never an unbounded queue). */
  maxConcurrent?: number;
  /** Request bodies are read whole (to screen tool calls) up to this size (default 4 MiB). */
  maxBodyBytes?: number;
  /** Most bytes of one answer the gateway reads to filter a tool list or end a call's record (default 8 MiB). */
  maxInspectBytes?: number;
  /** Paths served (exactly, or followed by "/" or "?"); others are 404. */
  paths?: readonly string[];
  now?: () => number;
  onBytes?: (direction: "in" | "out", bytes: number) => void;
  onStream?: (delta: 1 | -1) => void;
  /** An answer the gateway had to read but could not (over the size cap): the stream was cut. */
  onInspectOverflow?: () => void;
}

/** The documented defaults (README, "Gateway limits"). */
export const DEFAULT_PROXY_LIMITS = { responseTimeoutMs: 300_000, maxConcurrent: 256 } as const;
const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_INSPECT_BYTES = 8 * 1024 * 1024;

/** Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1), plus our own credentials. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

const TOOLS_CHANGED = formatEvent(
  JSON.stringify({ jsonrpc: "2.0", method: "notifications/tools/list_changed" }),
  undefined,
);

/** How an answer's body is relayed: untouched, passed on while its events are looked at, or held whole. */
type RelayKind = "pipe" | "events" | "tap-json" | "hold-json";

/**
 * Reverse proxy for streamable-http and sse servers. A POST body (JSON-RPC, at most `maxBodyBytes`) is read and
 * screened under the caller's tool policy before anything reaches the container: a tools/call of a hidden tool is
 * answered with a JSON-RPC error; what is forwarded is the JSON the gateway parsed. Answers stream back
 * unbuffered; only where the policy or the tool-call audit needs it are they looked at: an event of a session with
 * a tools/list in flight is held until complete (and the list filtered), events of a session with a tools/call in
 * flight are copied as they pass (to record its outcome), and a JSON answer to a tools/list is read whole. The
 * client's Authorization header (a portal token) never reaches the container.
 */
export class HttpProxyHandler implements RequestHandler {
  private readonly paths: readonly string[];
  private readonly responseTimeoutMs: number;
  private readonly maxConcurrent: number;
  private readonly maxBodyBytes: number;
  private readonly maxInspectBytes: number;
  private readonly transport: "streamable-http" | "sse";
  private readonly traffic: ToolTraffic;
  /**
   * Open GET event streams, where a tools/list_changed announcement can be put, each with its session once known
   * (an sse server's answers, the gateway's own refusals included, travel on its session's stream).
   */
  private readonly streams = new Map<SseFramer, () => string | undefined>();
  private active = 0;

  constructor(private readonly options: HttpProxyOptions) {
    this.paths = options.paths ?? ["/mcp", "/sse", "/messages"];
    this.responseTimeoutMs = options.responseTimeoutMs ?? DEFAULT_PROXY_LIMITS.responseTimeoutMs;
    this.maxConcurrent = options.maxConcurrent ?? DEFAULT_PROXY_LIMITS.maxConcurrent;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.maxInspectBytes = options.maxInspectBytes ?? DEFAULT_MAX_INSPECT_BYTES;
    this.transport = options.transport ?? "streamable-http";
    this.traffic = new ToolTraffic({
      now: options.now ?? Date.now,
      ttlMs: this.responseTimeoutMs,
      maxPending: this.maxConcurrent * 16,
    });
  }

  /** Tool requests whose answers are still looked for. */
  get pendingToolRequests(): number {
    return this.traffic.pendingCount;
  }

  /** The tool policy changed: every open GET stream gets notifications/tools/list_changed between two events. */
  toolsChanged(): void {
    for (const stream of this.streams.keys()) stream.inject(TOOLS_CHANGED);
  }

  /** The server is no longer served. */
  close(): void {
    this.traffic.close();
  }

  async handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const pathname = pathnameOf(req);
    if (!this.paths.some((p) => pathname === p || pathname.startsWith(`${p}/`))) {
      return sendRpcError(
        res,
        404,
        ERROR_CODES.invalidRequest,
        `not found: serving ${this.paths.join(", ")}`,
      );
    }
    if (this.active >= this.maxConcurrent) {
      markResult(res, "limit_exceeded");
      return sendRpcError(
        res,
        429,
        ERROR_CODES.limitExceeded,
        `too many requests in flight to this server (limit ${this.maxConcurrent})`,
        { "retry-after": "1" },
      );
    }
    this.active += 1;
    try {
      let body: Buffer | undefined;
      let watch: Watch | undefined;
      if (req.method === "POST") {
        const screened = await this.screen(req, res, ctx);
        if (!screened) return;
        ({ body, watch } = screened);
      }
      let target: HttpTarget;
      try {
        target = await this.options.target();
      } catch (error) {
        if (watch) this.traffic.postEnded(watch, "unavailable");
        const message = error instanceof Error ? error.message : String(error);
        return sendRpcError(res, 503, ERROR_CODES.serverUnavailable, `server unavailable: ${message}`, {
          "retry-after": "2",
        });
      }
      await this.forward(req, res, target, body, watch);
    } finally {
      this.active -= 1;
    }
  }

  /** Reads and screens a POST body; answers the client itself (and returns undefined) when it is refused. */
  private async screen(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
  ): Promise<{ body: Buffer; watch: Watch } | undefined> {
    const encoding = (headerValue(req, "content-encoding") ?? "identity").trim().toLowerCase();
    if (encoding !== "identity") {
      sendRpcError(res, 415, ERROR_CODES.invalidRequest, "Content-Encoding must be identity");
      return undefined;
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, this.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        sendRpcError(res, 413, ERROR_CODES.invalidRequest, error.message, { connection: "close" });
        return undefined;
      }
      throw error;
    }
    const session = this.postSession(req);
    const screened = this.traffic.screen(raw, session, ctx.tools);
    if (screened.kind === "forward") return { body: screened.body, watch: screened.watch };
    // An sse client reads answers only from its session's event stream (a POST gets 202 Accepted there).
    if (screened.status < 400 && this.transport === "sse" && this.answerOnStream(session, screened.body)) {
      res.writeHead(202).end();
      return undefined;
    }
    if (screened.status >= 400) markResult(res, "client_error");
    const bytes = sendJson(res, screened.status, screened.body);
    this.options.onBytes?.("out", bytes);
    return undefined;
  }

  /** Puts the gateway's own answers on `session`'s event stream, one event each; false without such a stream. */
  private answerOnStream(session: string, body: unknown): boolean {
    if (session === "") return false;
    const stream = [...this.streams].find(([, sessionOf]) => sessionOf() === session)?.[0];
    if (!stream) return false;
    for (const message of [body].flat()) {
      const event = formatEvent(JSON.stringify(message), undefined);
      stream.inject(event);
      this.options.onBytes?.("out", event.length);
    }
    return true;
  }

  /** The session a POST belongs to: its Mcp-Session-Id (streamable-http) or its sessionId query (sse). */
  private postSession(req: IncomingMessage): string {
    if (this.transport === "streamable-http") return headerValue(req, SESSION_HEADER) ?? "";
    return sessionFromUrl(req.url ?? "/") ?? "";
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    target: HttpTarget,
    body: Buffer | undefined,
    watch: Watch | undefined,
  ): Promise<void> {
    const { onBytes, onStream } = this.options;
    return new Promise<void>((resolve) => {
      const upstream = http.request({
        host: target.host,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: requestHeaders(req, target, body),
        agent: this.options.agent,
      });
      let settled = false;
      let timedOut = false;
      let failure: "timeout" | "unavailable" | undefined;
      let responseTimer: NodeJS.Timeout | undefined;
      let answered: IncomingMessage | undefined;
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(responseTimer);
        if (watch)
          this.traffic.postEnded(
            watch,
            failure ?? "no_response",
            failure !== undefined || this.transport === "streamable-http",
          );
        resolve();
      };
      // (Re)started by every sign of life; when it fires, the client gets a 504 or, mid-answer, a cut stream.
      const armResponseTimer = () => {
        clearTimeout(responseTimer);
        responseTimer = setTimeout(() => {
          timedOut = true;
          failure = "timeout";
          if (res.headersSent) {
            answered?.destroy();
            res.destroy();
          } else {
            upstream.destroy();
            markResult(res, "upstream_error");
            sendRpcError(
              res,
              504,
              ERROR_CODES.requestTimeout,
              `no answer within ${this.responseTimeoutMs} ms`,
            );
          }
          done();
        }, this.responseTimeoutMs);
      };
      armResponseTimer();
      const connectTimer = setTimeout(() => {
        upstream.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" }));
      }, this.options.connectTimeoutMs ?? 5000);
      upstream.on("socket", (socket: Socket) => {
        socket.setNoDelay(true);
        if (!socket.connecting) clearTimeout(connectTimer);
        else socket.once("connect", () => clearTimeout(connectTimer));
      });
      upstream.on("response", (response) => {
        answered = response;
        clearTimeout(connectTimer);
        const contentType = String(response.headers["content-type"] ?? "").toLowerCase();
        const streaming = contentType.includes("text/event-stream");
        const isGetStream = streaming && req.method === "GET";
        if (isGetStream) clearTimeout(responseTimer);
        else armResponseTimer();
        const relay = this.relayKind(req, response, streaming, watch);
        let finished = false;
        const finish = () => {
          if (finished) return;
          finished = true;
          if (streaming) onStream?.(-1);
          done();
        };
        response.once("error", () => {
          res.destroy();
          finish();
        });
        res.once("close", () => {
          if (!response.complete) response.destroy();
          finish();
        });
        response.on("data", (chunk: Buffer) => {
          onBytes?.("out", chunk.length);
          if (!isGetStream) armResponseTimer();
        });
        if (relay === "hold-json") {
          this.relayHeldJson(response, res, watch?.session ?? "", finish);
          return;
        }
        res.writeHead(response.statusCode ?? 502, copyHeaders(response.headers));
        if (streaming) {
          res.flushHeaders();
          onStream?.(1);
        }
        if (relay === "pipe") {
          response.pipe(res);
          response.once("end", finish);
        } else if (relay === "tap-json") {
          this.relayTappedJson(response, res, watch?.session ?? "", finish);
        } else {
          this.relayEvents(req, response, res, watch, isGetStream, finish);
        }
      });
      upstream.on("error", (error: NodeJS.ErrnoException) => {
        if (timedOut) return;
        failure ??= "unavailable";
        if (res.headersSent) {
          res.destroy();
        } else {
          const code = error.code ?? "error";
          if (["ECONNREFUSED", "EHOSTUNREACH", "ETIMEDOUT", "ENETUNREACH"].includes(code)) {
            this.options.invalidate?.();
          }
          const status = code === "ETIMEDOUT" ? 504 : 502;
          sendRpcError(res, status, ERROR_CODES.serverUnavailable, `server unreachable (${code})`, {
            "retry-after": "2",
          });
        }
        done();
      });
      res.once("close", () => {
        if (!res.writableFinished) upstream.destroy();
        done();
      });
      if (body !== undefined) {
        onBytes?.("in", body.length);
        upstream.end(body);
        return;
      }
      req.on("data", (chunk: Buffer) => {
        onBytes?.("in", chunk.length);
        if (!answered) armResponseTimer();
      });
      req.pipe(upstream);
    });
  }

  private relayKind(
    req: IncomingMessage,
    response: IncomingMessage,
    streaming: boolean,
    watch: Watch | undefined,
  ): RelayKind {
    const encoded =
      (String(response.headers["content-encoding"] ?? "identity").toLowerCase() || "identity") !== "identity";
    if (streaming) return req.method === "GET" || (watch && !watch.empty) ? "events" : "pipe";
    const json = /application\/(?:[\w.+-]*\+)?json/.test(String(response.headers["content-type"] ?? ""));
    if (!watch || watch.empty || !json || encoded) return "pipe";
    return watch.lists.size > 0 ? "hold-json" : "tap-json";
  }

  /** An event stream: each event passes as it comes, held only while a tools/list answer may be in it. */
  private relayEvents(
    req: IncomingMessage,
    response: IncomingMessage,
    res: ServerResponse,
    watch: Watch | undefined,
    isGetStream: boolean,
    finish: () => void,
  ): void {
    // A GET stream's session: its header (streamable-http), or (sse) the `endpoint` event the server sends first.
    let session: string | undefined =
      watch?.session ??
      (this.transport === "streamable-http" ? (headerValue(req, SESSION_HEADER) ?? "") : undefined);
    const modeFor = (): EventMode => {
      if (session === undefined) return "observe";
      if (this.traffic.holds(session)) return "hold";
      return this.traffic.observes(session) ? "observe" : "pass";
    };
    const framer = new SseFramer({
      write: (chunk) => {
        if (!res.write(chunk)) response.pause();
      },
      modeFor,
      maxEventBytes: this.maxInspectBytes,
      transform: (event) => {
        const parsed = parseEvent(event);
        if (session === undefined || parsed.event !== "message") return event;
        const changed = this.traffic.answer(session, parsed.data);
        return changed === undefined ? event : formatEvent(changed, parsed.id);
      },
      observe: (event) => {
        const parsed = parseEvent(event);
        if (session === undefined) {
          if (parsed.event === "endpoint") session = sessionFromUrl(parsed.data) ?? "";
          return;
        }
        if (parsed.event === "message") this.traffic.answer(session, parsed.data);
      },
      overflow: () => {
        // An event that may hold a tool list is too large to read: nothing of it goes out, and the stream ends.
        this.options.onInspectOverflow?.();
        response.destroy();
        res.destroy();
      },
    });
    if (isGetStream) this.streams.set(framer, () => session);
    res.on("drain", () => response.resume());
    response.on("data", (chunk: Buffer) => framer.push(chunk));
    response.once("end", () => {
      res.end();
      finish();
    });
    res.once("close", () => this.streams.delete(framer));
  }

  /** A JSON answer with a tools/list answer in it: read whole (bounded), filtered, then sent with its new length. */
  private relayHeldJson(
    response: IncomingMessage,
    res: ServerResponse,
    session: string,
    finish: () => void,
  ): void {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.maxInspectBytes) {
        this.options.onInspectOverflow?.();
        response.destroy();
        markResult(res, "upstream_error");
        sendRpcError(
          res,
          502,
          ERROR_CODES.serverUnavailable,
          `the server's answer is over ${this.maxInspectBytes} bytes`,
        );
        finish();
        return;
      }
      chunks.push(chunk);
    });
    response.once("end", () => {
      if (res.headersSent) return finish();
      const text = Buffer.concat(chunks).toString("utf8");
      const changed = this.traffic.answer(session, text);
      const out = changed === undefined ? Buffer.concat(chunks) : Buffer.from(changed, "utf8");
      const headers = copyHeaders(response.headers);
      delete headers["content-length"];
      headers["content-length"] = String(out.length);
      res.writeHead(response.statusCode ?? 502, headers);
      res.end(out);
      finish();
    });
  }

  /** A JSON answer with only tools/call answers in it: relayed as it comes, a copy read at the end. */
  private relayTappedJson(
    response: IncomingMessage,
    res: ServerResponse,
    session: string,
    finish: () => void,
  ): void {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= this.maxInspectBytes) chunks.push(Buffer.from(chunk));
    });
    response.pipe(res);
    response.once("end", () => {
      if (size <= this.maxInspectBytes) this.traffic.answer(session, Buffer.concat(chunks).toString("utf8"));
      finish();
    });
  }
}

/** `sessionId` (or `session_id`) of a URL or path, as sse servers name the session in their endpoint. */
function sessionFromUrl(value: string): string | undefined {
  try {
    const url = new URL(value.trim(), "http://gateway.invalid");
    return url.searchParams.get("sessionId") ?? url.searchParams.get("session_id") ?? undefined;
  } catch {
    return undefined;
  }
}

function requestHeaders(
  req: IncomingMessage,
  target: HttpTarget,
  body: Buffer | undefined,
): Record<string, string | string[]> {
  const headers = copyHeaders(req.headers);
  delete headers.authorization;
  delete headers.host;
  if (body !== undefined) {
    headers["content-length"] = String(body.length);
    // Answers the gateway reads must come as they are: no compression.
    delete headers["accept-encoding"];
  }
  const forwardedFor = req.headers["x-forwarded-for"];
  const client = req.socket.remoteAddress ?? "";
  headers["x-forwarded-for"] = forwardedFor ? `${String(forwardedFor)}, ${client}` : client;
  headers["x-forwarded-host"] = req.headers.host ?? "";
  headers["x-forwarded-proto"] = "http";
  headers.host = target.host.includes(":")
    ? `[${target.host}]:${target.port}`
    : `${target.host}:${target.port}`;
  return headers;
}

function copyHeaders(source: IncomingHttpHeaders): Record<string, string | string[]> {
  const listed = new Set(
    String(source.connection ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== ""),
  );
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    headers[name] = value;
  }
  return headers;
}
