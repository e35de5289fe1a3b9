import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { RequestContext, RequestHandler } from "./handler.js";
import { pathnameOf, sendRpcError } from "./http-util.js";
import { ERROR_CODES } from "./jsonrpc.js";
import { markResult } from "./metrics.js";

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
  connectTimeoutMs?: number;
  /**
   * The server must start its answer within this long, and a started answer must not go quiet for longer (each
   * chunk restarts it); a GET's event stream (a session's channel for server messages) is exempt once it started.
   */
  responseTimeoutMs?: number;
  /** Requests (streams included) this server may have at once; more get 429 (never an unbounded queue). */
  maxConcurrent?: number;
  /** Paths served (exactly, or followed by "/" or "?"); others are 404. */
  paths?: readonly string[];
  onBytes?: (direction: "in" | "out", bytes: number) => void;
  onStream?: (delta: 1 | -1) => void;
}

/** The documented defaults (README, "Gateway limits"). */
export const DEFAULT_PROXY_LIMITS = { responseTimeoutMs: 300_000, maxConcurrent: 256 } as const;

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

/**
 * Reverse proxy for streamable-http and sse servers: the request streams to the container as it arrives and the
 * response streams back unbuffered (SSE events reach the client as the server writes them). The client's
 * Authorization header (a portal token) never reaches the container.
 */
export class HttpProxyHandler implements RequestHandler {
  private readonly paths: readonly string[];
  private readonly responseTimeoutMs: number;
  private readonly maxConcurrent: number;
  private active = 0;

  constructor(private readonly options: HttpProxyOptions) {
    this.paths = options.paths ?? ["/mcp", "/sse", "/messages"];
    this.responseTimeoutMs = options.responseTimeoutMs ?? DEFAULT_PROXY_LIMITS.responseTimeoutMs;
    this.maxConcurrent = options.maxConcurrent ?? DEFAULT_PROXY_LIMITS.maxConcurrent;
  }

  async handle(req: IncomingMessage, res: ServerResponse, _ctx: RequestContext): Promise<void> {
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
      let target: HttpTarget;
      try {
        target = await this.options.target();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return sendRpcError(res, 503, ERROR_CODES.serverUnavailable, `server unavailable: ${message}`, {
          "retry-after": "2",
        });
      }
      await this.forward(req, res, target);
    } finally {
      this.active -= 1;
    }
  }

  private forward(req: IncomingMessage, res: ServerResponse, target: HttpTarget): Promise<void> {
    const { onBytes, onStream } = this.options;
    return new Promise<void>((resolve) => {
      const upstream = http.request({
        host: target.host,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: requestHeaders(req, target),
        agent: this.options.agent,
      });
      let settled = false;
      let timedOut = false;
      let responseTimer: NodeJS.Timeout | undefined;
      let answered: IncomingMessage | undefined;
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(responseTimer);
        resolve();
      };
      // (Re)started by every sign of life; when it fires, the client gets a 504 or, mid-answer, a cut stream.
      const armResponseTimer = () => {
        clearTimeout(responseTimer);
        responseTimer = setTimeout(() => {
          timedOut = true;
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
      upstream.on("response", (answer) => {
        answered = answer;
        const response = answer;
        clearTimeout(connectTimer);
        const streaming = (response.headers["content-type"] ?? "").includes("text/event-stream");
        if (streaming && req.method === "GET") clearTimeout(responseTimer);
        else armResponseTimer();
        res.writeHead(response.statusCode ?? 502, responseHeaders(response.headers));
        if (streaming) {
          res.flushHeaders();
          onStream?.(1);
        }
        response.on("data", (chunk: Buffer) => {
          onBytes?.("out", chunk.length);
          if (!(streaming && req.method === "GET")) armResponseTimer();
        });
        response.pipe(res);
        let finished = false;
        const finish = () => {
          if (finished) return;
          finished = true;
          if (streaming) onStream?.(-1);
          done();
        };
        response.once("end", finish);
        response.once("error", () => {
          res.destroy();
          finish();
        });
        res.once("close", () => {
          if (!response.complete) response.destroy();
          finish();
        });
      });
      upstream.on("error", (error: NodeJS.ErrnoException) => {
        if (timedOut) return;
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
      req.on("data", (chunk: Buffer) => {
        onBytes?.("in", chunk.length);
        if (!answered) armResponseTimer();
      });
      req.pipe(upstream);
    });
  }
}

function requestHeaders(req: IncomingMessage, target: HttpTarget): Record<string, string | string[]> {
  const headers = copyHeaders(req.headers);
  delete headers.authorization;
  delete headers.host;
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

function responseHeaders(source: IncomingHttpHeaders): Record<string, string | string[]> {
  return copyHeaders(source);
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
