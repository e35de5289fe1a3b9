import type { IncomingMessage, ServerResponse } from "node:http";
import { accepts, headerValue, pathnameOf, sendJson, sendRpcError, readJsonRpcPost } from "./http-util.js";
import {
  type Classified,
  ERROR_CODES,
  type JsonRpcRequest,
  type JsonRpcResponse,
  classify,
  errorResponse,
} from "./jsonrpc.js";
import { PROTOCOL_VERSION_HEADER, SESSION_HEADER, isSupportedVersion } from "./protocol.js";
import { SseWriter } from "./sse.js";
import type { MessageSink, MuxSession, StdioMultiplexer } from "./stdio-mux.js";
import type { RequestContext, RequestHandler } from "./handler.js";
import { markResult } from "./metrics.js";
import { calledTool } from "./tool-policy.js";
import { filterToolsResponse, messageBytes, outcomeOf, screenToolCall } from "./tool-calls.js";

/** Default cap of messages in one JSON-RPC batch (MCP_PORTAL_GATEWAY_MAX_BATCH). */
export const DEFAULT_MAX_BATCH_MESSAGES = 100;

export interface StdioHttpOptions {
  maxBodyBytes?: number;
  /** A batch with more messages is refused whole, before anything of it reaches the server. */
  maxBatchMessages?: number;
  /** Keep-alive comments on GET streams (default 25 s). */
  keepAliveMs?: number;
  onBytes?: (direction: "in" | "out", bytes: number) => void;
  onStream?: (delta: 1 | -1) => void;
}

/**
 * MCP streamable HTTP (spec 2025-03-26 / 2025-06-18) in front of a stdio server's multiplexer: POST carries
 * JSON-RPC (answered as an SSE stream when the client accepts one, else as JSON), GET opens the session's stream
 * for server-initiated messages, DELETE ends the session. `/mcp` only.
 */
export class StdioHttpHandler implements RequestHandler {
  private readonly maxBodyBytes: number;
  private readonly maxBatchMessages: number;
  private readonly keepAliveMs: number;

  constructor(
    private readonly mux: StdioMultiplexer,
    private readonly options: StdioHttpOptions = {},
  ) {
    this.maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
    this.maxBatchMessages = options.maxBatchMessages ?? DEFAULT_MAX_BATCH_MESSAGES;
    this.keepAliveMs = options.keepAliveMs ?? 25_000;
  }

  async handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    if (pathnameOf(req) !== "/mcp") {
      return sendRpcError(res, 404, ERROR_CODES.invalidRequest, "not found: the MCP endpoint is /mcp");
    }
    const version = headerValue(req, PROTOCOL_VERSION_HEADER);
    if (version !== undefined && !isSupportedVersion(version)) {
      return sendRpcError(
        res,
        400,
        ERROR_CODES.invalidRequest,
        `unsupported MCP-Protocol-Version ${version}`,
      );
    }
    switch (req.method) {
      case "POST":
        return this.post(req, res, ctx);
      case "GET":
        return this.get(req, res, ctx);
      case "DELETE":
        return this.delete(req, res, ctx);
      default:
        return sendRpcError(res, 405, ERROR_CODES.invalidRequest, "method not allowed", {
          allow: "GET, POST, DELETE",
        });
    }
  }

  private async post(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const post = await readJsonRpcPost(req, res, this.maxBodyBytes, this.options.onBytes);
    if (!post) return;
    const parsed = post.value;
    const batch = Array.isArray(parsed);
    const values: unknown[] = batch ? (parsed as unknown[]) : [parsed];
    if (values.length > this.maxBatchMessages) return this.refuseBatch(res, values);
    const messages = values.map(classify);
    if (values.length === 0 || messages.some((m) => m === undefined)) {
      return sendRpcError(
        res,
        400,
        ERROR_CODES.invalidRequest,
        "invalid request: not a JSON-RPC 2.0 message",
      );
    }
    const classified = messages as Classified[];
    const initialize = classified.find((m) => m.kind === "request" && m.message.method === "initialize");
    if (initialize?.kind === "request") {
      if (classified.length !== 1) {
        return sendRpcError(res, 400, ERROR_CODES.invalidRequest, "initialize must be sent on its own");
      }
      const { session, response } = await this.mux.openSession(ctx.owner, initialize.message);
      if (!session) return this.reply(res, 503, response, false, { "retry-after": "2" });
      return this.reply(res, 200, response, batch, { [SESSION_HEADER]: session.id });
    }
    const session = this.session(req, res, ctx);
    if (!session) return;
    const requests = [];
    for (const message of classified) {
      if (message.kind === "request") requests.push(message.message);
      else if (message.kind === "notification") this.mux.notify(session, message.message);
      else this.mux.respond(session, message.message);
    }
    if (requests.length === 0) {
      res.writeHead(202).end();
      return;
    }
    if (accepts(req, "text/event-stream")) {
      const sse = new SseWriter(res, { onBytes: (n) => this.options.onBytes?.("out", n) });
      this.options.onStream?.(1);
      try {
        await Promise.all(
          requests.map(async (request) => {
            const response = await this.forward(session, request, sse, ctx);
            if (response) sse.send(response);
          }),
        );
      } finally {
        sse.end();
        this.options.onStream?.(-1);
      }
      return;
    }
    // JSON only: related messages can only travel on the session's GET stream.
    const viaStream: MessageSink = {
      get open() {
        return session.stream?.open === true;
      },
      send: (message) => session.stream?.send(message),
    };
    const responses = (
      await Promise.all(requests.map((request) => this.forward(session, request, viaStream, ctx)))
    ).filter((r): r is JsonRpcResponse => r !== undefined);
    if (responses.length === 0) {
      res.writeHead(202).end();
      return;
    }
    this.reply(res, 200, batch ? responses : responses[0], batch);
  }

  /**
   * One request through the multiplexer under the caller's tool policy: a tools/call of a hidden tool is refused
   * here (the server never sees it), a tools/list answer loses the hidden tools, and every tools/call is recorded.
   */
  private async forward(
    session: MuxSession,
    request: JsonRpcRequest,
    sink: MessageSink,
    ctx: RequestContext,
  ): Promise<JsonRpcResponse | undefined> {
    const access = ctx.tools;
    if (request.method === "tools/call" && access) {
      const record = access.begin(calledTool(request.params), messageBytes(request));
      const refused = screenToolCall(request, access);
      if (refused) {
        record.finish("refused", messageBytes(refused));
        return refused;
      }
      const response = await this.mux.forward(session, request, sink);
      record.finish(outcomeOf(response), response ? messageBytes(response) : 0);
      return response;
    }
    const response = await this.mux.forward(session, request, sink);
    return response && request.method === "tools/list" ? filterToolsResponse(response, access) : response;
  }

  /**
   * A batch over the cap: nothing of it is processed; each request in it gets an error under its own id (a batch
   * without a valid request id gets one error with id null), with HTTP 400.
   */
  private refuseBatch(res: ServerResponse, values: unknown[]): void {
    const message = `batch of ${values.length} messages refused: at most ${this.maxBatchMessages} per batch`;
    const errors = values.flatMap((value) => {
      const classified = classify(value);
      return classified?.kind === "request"
        ? [errorResponse(classified.message.id, ERROR_CODES.invalidRequest, message)]
        : [];
    });
    markResult(res, "limit_exceeded");
    const bytes = sendJson(
      res,
      400,
      errors.length > 0 ? errors : errorResponse(null, ERROR_CODES.invalidRequest, message),
    );
    this.options.onBytes?.("out", bytes);
  }

  private get(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    if (!accepts(req, "text/event-stream")) {
      return sendRpcError(res, 406, ERROR_CODES.invalidRequest, "Accept must include text/event-stream");
    }
    const session = this.session(req, res, ctx);
    if (!session) return;
    if (session.stream?.open) {
      return sendRpcError(res, 409, ERROR_CODES.invalidRequest, "this session already has a GET stream open");
    }
    const sse = new SseWriter(res, {
      keepAliveMs: this.keepAliveMs,
      onBytes: (n) => this.options.onBytes?.("out", n),
    });
    this.mux.setStream(session, sse);
    this.options.onStream?.(1);
    void sse.done.then(() => {
      if (session.stream === sse) this.mux.setStream(session, undefined);
      this.options.onStream?.(-1);
    });
  }

  private delete(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const session = this.session(req, res, ctx);
    if (!session) return;
    this.mux.closeSession(session.id);
    res.writeHead(200).end();
  }

  /** The request's session, or an error response (400 without the header, 404 for an unknown session). */
  private session(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): MuxSession | undefined {
    const id = headerValue(req, SESSION_HEADER);
    if (id === undefined || id === "") {
      sendRpcError(res, 400, ERROR_CODES.invalidRequest, "Mcp-Session-Id header is required");
      return undefined;
    }
    const session = this.mux.session(id, ctx.owner);
    if (!session) {
      markResult(res, "session_not_found");
      sendRpcError(res, 404, ERROR_CODES.invalidRequest, "session not found: initialize again");
    }
    return session;
  }

  private reply(
    res: ServerResponse,
    status: number,
    body: JsonRpcResponse | JsonRpcResponse[] | undefined,
    batch: boolean,
    headers: Record<string, string> = {},
  ): void {
    const payload = batch && !Array.isArray(body) ? [body] : body;
    const bytes = sendJson(res, status, payload, headers);
    this.options.onBytes?.("out", bytes);
  }
}
