import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Logger } from "../observability/logger.js";
import type { RequestContext, RequestHandler } from "./handler.js";
import type { HttpTarget } from "./http-proxy.js";
import { BodyTooLargeError, headerValue, readBody, sendRpcError } from "./http-util.js";
import { replayRequest } from "./idle-gate.js";
import { ERROR_CODES, classify } from "./jsonrpc.js";

const SESSION_HEADER = "mcp-session-id";
const PROTOCOL_VERSION_HEADER = "mcp-protocol-version";

export interface HttpSessionsOptions {
  /** The reverse proxy that carries every request. */
  inner: RequestHandler;
  target: () => Promise<HttpTarget>;
  agent: http.Agent;
  /** Changes whenever the server's process changed (another container, or the same one started again). */
  incarnation: () => number;
  logger: Logger;
  /** Client sessions kept (the least recently used goes first); the gateway's per-server session cap. */
  maxSessions: number;
  /** Largest initialize request kept to replay (default 64 KiB; a larger one is proxied but not kept). */
  maxInitializeBytes?: number;
  maxBodyBytes?: number;
  /** Bound on re-initializing the server for a session (default 10 s). */
  reinitTimeoutMs?: number;
}

interface Session {
  /** The server's session id for this client now (the client keeps the first one it was given). */
  upstreamId: string;
  incarnation: number;
  /** The client's initialize request, replayed to open a new server session after a restart. */
  initialize: Buffer;
  path: string;
  owner: string;
  reinit: Promise<void> | undefined;
}

/**
 * The gateway owns the MCP sessions of streamable-HTTP servers' clients across restarts of the server (a wake
 * from idle, README "Idle servers"): the server's session ids die with its process, so a client that opened a
 * session before would get "session not found". The client keeps the session id the server first gave it; after
 * the server restarted, the gateway replays the client's `initialize` (and `notifications/initialized`) to the
 * new process on the client's next request, and maps the client's id to the new one, both ways.
 */
export class HttpSessions implements RequestHandler {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly options: HttpSessionsOptions) {}

  get size(): number {
    return this.sessions.size;
  }

  async handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const clientId = headerValue(req, SESSION_HEADER);
    if (clientId === undefined && req.method === "POST") return this.maybeInitialize(req, res, ctx);
    const session = clientId === undefined ? undefined : this.sessions.get(clientId);
    if (!session || session.owner !== ctx.owner || clientId === undefined)
      return this.options.inner.handle(req, res, ctx);
    // Most recently used last: the first entry is the one to evict.
    this.sessions.delete(clientId);
    this.sessions.set(clientId, session);
    if (session.incarnation !== this.options.incarnation()) {
      try {
        await this.reinitialize(session, headerValue(req, PROTOCOL_VERSION_HEADER));
      } catch (error) {
        this.options.logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          "cannot re-open a client's session on the restarted server",
        );
        return sendRpcError(
          res,
          503,
          ERROR_CODES.serverUnavailable,
          "server unavailable: the session could not be re-opened after the server restarted",
          { "retry-after": "2" },
        );
      }
    }
    if (req.method === "DELETE") this.sessions.delete(clientId);
    if (session.upstreamId !== clientId) {
      req.headers[SESSION_HEADER] = session.upstreamId;
      const upstreamId = session.upstreamId;
      editResponseHeaders(res, (headers) => {
        if (headers[SESSION_HEADER] === upstreamId) headers[SESSION_HEADER] = clientId;
      });
    }
    return this.options.inner.handle(req, res, ctx);
  }

  /** A POST without a session: when it is an initialize, keep it and the session id the server answers. */
  private async maybeInitialize(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
  ): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(req, this.options.maxBodyBytes ?? 4 * 1024 * 1024);
    } catch (error) {
      if (!(error instanceof BodyTooLargeError)) throw error;
      return sendRpcError(res, 413, ERROR_CODES.invalidRequest, error.message, { connection: "close" });
    }
    const forward = replayRequest(req, body);
    if (isInitialize(body) && body.length <= (this.options.maxInitializeBytes ?? 64 * 1024)) {
      const incarnation = this.options.incarnation();
      editResponseHeaders(res, (headers) => {
        const id = headers[SESSION_HEADER];
        if (typeof id !== "string" || id === "") return;
        this.sessions.set(id, {
          upstreamId: id,
          incarnation,
          initialize: body,
          path: req.url ?? "/mcp",
          owner: ctx.owner,
          reinit: undefined,
        });
        while (this.sessions.size > this.options.maxSessions) {
          const oldest = this.sessions.keys().next().value;
          if (oldest === undefined) break;
          this.sessions.delete(oldest);
        }
      });
    }
    return this.options.inner.handle(forward, res, ctx);
  }

  private reinitialize(session: Session, protocolVersion: string | undefined): Promise<void> {
    session.reinit ??= this.openUpstreamSession(session, protocolVersion).finally(() => {
      session.reinit = undefined;
    });
    return session.reinit;
  }

  private async openUpstreamSession(session: Session, protocolVersion: string | undefined): Promise<void> {
    const incarnation = this.options.incarnation();
    const target = await this.options.target();
    const timeoutMs = this.options.reinitTimeoutMs ?? 10_000;
    const initialized = await this.post(target, session.path, session.initialize, {}, timeoutMs);
    const upstreamId = initialized.headers[SESSION_HEADER];
    if (
      initialized.status < 200 ||
      initialized.status > 299 ||
      typeof upstreamId !== "string" ||
      upstreamId === ""
    )
      throw new Error(`initialize answered HTTP ${initialized.status} without a session`);
    const note = Buffer.from(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    const acknowledged = await this.post(
      target,
      session.path,
      note,
      {
        [SESSION_HEADER]: upstreamId,
        ...(protocolVersion ? { [PROTOCOL_VERSION_HEADER]: protocolVersion } : {}),
      },
      timeoutMs,
    );
    if (acknowledged.status < 200 || acknowledged.status > 299)
      throw new Error(`notifications/initialized answered HTTP ${acknowledged.status}`);
    session.upstreamId = upstreamId;
    session.incarnation = incarnation;
  }

  /** One request of the gateway's own to the server; the answer is read (at most 1 MiB) and dropped. */
  private post(
    target: HttpTarget,
    path: string,
    body: Buffer,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const request = http.request({
        host: target.host,
        port: target.port,
        method: "POST",
        path,
        agent: this.options.agent,
        timeout: timeoutMs,
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "content-length": String(body.length),
          ...headers,
        },
      });
      const timer = setTimeout(
        () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      request.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.on("response", (response) => {
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > 1024 * 1024) response.destroy();
          // An SSE answer to initialize stays open on some servers: its first event is all we need.
          if (chunk.includes("\n\n")) response.destroy();
        });
        const done = () => {
          clearTimeout(timer);
          resolve({ status: response.statusCode ?? 0, headers: response.headers });
        };
        response.once("end", done);
        response.once("close", done);
      });
      request.end(body);
    });
  }
}

function isInitialize(body: Buffer): boolean {
  try {
    const message = classify(JSON.parse(body.toString("utf8")));
    return message?.kind === "request" && message.message.method === "initialize";
  } catch {
    return false;
  }
}

/** Lets `edit` change the headers of the response before they are sent (as an object to writeHead). */
function editResponseHeaders(res: ServerResponse, edit: (headers: Record<string, unknown>) => void): void {
  const original = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  (res as unknown as { writeHead: (...args: unknown[]) => ServerResponse }).writeHead = (
    ...args: unknown[]
  ) => {
    for (const arg of args.slice(1)) {
      if (typeof arg === "object" && arg !== null && !Array.isArray(arg))
        edit(arg as Record<string, unknown>);
    }
    return original(...args);
  };
}
