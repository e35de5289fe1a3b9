import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestContext, RequestHandler } from "../handler.js";
import { accepts, headerValue, pathnameOf, sendJson, sendRpcError, readJsonRpcPost } from "../http-util.js";
import { ERROR_CODES, type JsonRpcResponse, errorResponse } from "../jsonrpc.js";
import { PROTOCOL_VERSION_HEADER } from "../protocol.js";
import { SseWriter } from "../sse.js";
import { filterToolsResponse, messageBytes, outcomeOf } from "../tool-calls.js";
import { calledTool } from "../tool-policy.js";
import type { MessageSink } from "../stdio-mux.js";
import { type ModernRequest, parseModernPost } from "./envelope.js";
import { MODERN_HEADERS } from "./versions.js";

/** An open event stream to one client (a request's answer, or a `subscriptions/listen` stream). */
export interface ClientStream extends MessageSink {
  readonly done: Promise<void>;
  end(): void;
}

/** What answers modern requests for one server (a translation onto a legacy session). */
export interface ModernBackend {
  /**
   * One request; related messages (progress) go to `related` while it is open. `cancelled` aborts when the
   * client goes away before the answer (the request is then cancelled at the server).
   */
  call(
    request: ModernRequest,
    owner: string,
    related: MessageSink,
    cancelled: AbortSignal,
  ): Promise<JsonRpcResponse>;
  /**
   * A `subscriptions/listen` request: either an error answer (nothing was opened), or undefined after the
   * backend opened the stream with `open()` and took it over.
   */
  listen(
    request: ModernRequest,
    owner: string,
    open: () => ClientStream,
  ): Promise<JsonRpcResponse | undefined>;
}

export interface ModernFrontOptions {
  maxBodyBytes?: number;
  /** Keep-alive comments on listen streams (default 25 s). */
  keepAliveMs?: number;
  onBytes?: (direction: "in" | "out", bytes: number) => void;
  onStream?: (delta: 1 | -1) => void;
}

/**
 * MCP 2026-07-28 over HTTP in front of one server: every request is a POST that stands on its own (no session
 * header, no GET stream); the answer is JSON, or an event stream when the client accepts one (progress travels
 * on it); `subscriptions/listen` holds an event stream open.
 */
export class ModernFront implements RequestHandler {
  private readonly maxBodyBytes: number;

  constructor(
    private readonly backend: ModernBackend,
    private readonly options: ModernFrontOptions = {},
  ) {
    this.maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
  }

  async handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    if (pathnameOf(req) !== "/mcp") {
      return sendRpcError(res, 404, ERROR_CODES.invalidRequest, "not found: the MCP endpoint is /mcp");
    }
    if (req.method !== "POST") {
      return sendRpcError(res, 405, ERROR_CODES.invalidRequest, "MCP 2026-07-28 requests are POSTs", {
        allow: "POST",
      });
    }
    const post = await readJsonRpcPost(req, res, this.maxBodyBytes, this.options.onBytes);
    if (!post) return;
    const value = post.value;
    const parsed = parseModernPost(
      {
        protocolVersion: headerValue(req, PROTOCOL_VERSION_HEADER),
        method: headerValue(req, MODERN_HEADERS.method),
      },
      value,
    );
    switch (parsed.kind) {
      case "error":
        return this.reply(
          res,
          parsed.status,
          errorResponse(parsed.id, parsed.error.code, parsed.error.message, parsed.error.data),
        );
      case "notification":
        // Cancellation is the client closing its request's stream; other notifications have no effect here.
        res.writeHead(202).end();
        return;
      case "request":
        break;
    }
    const request = parsed.request;
    if (request.method === "subscriptions/listen") {
      const refused = await this.backend.listen(request, ctx.owner, () => this.openStream(res));
      if (refused) this.reply(res, 200, refused);
      return;
    }
    const cancelled = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) cancelled.abort();
    });
    if (accepts(req, "text/event-stream")) {
      // The stream opens at the first related message, so an answer without any goes out as plain JSON.
      let stream: ClientStream | undefined;
      const related: MessageSink = {
        get open() {
          return !cancelled.signal.aborted && (stream === undefined || stream.open);
        },
        send: (message) => {
          stream ??= this.openStream(res);
          stream.send(message);
        },
      };
      const response = await this.callHeld(request, ctx, related, cancelled.signal, post.bytes);
      if (!stream) return this.reply(res, 200, response);
      stream.send(response);
      stream.end();
      return;
    }
    const none: MessageSink = { open: false, send: () => undefined };
    this.reply(res, 200, await this.callHeld(request, ctx, none, cancelled.signal, post.bytes));
  }

  /**
   * The request, held to the caller's tool policy as 2025-era requests are (see tool-calls.ts): a tools/call of
   * a hidden tool never reaches the server, every tools/call gets its audit line and metric, and a tools/list
   * answer shows only the tools the caller may see. Each round of an `input_required` exchange is a tools/call
   * of its own (and gets its own line).
   */
  private async callHeld(
    request: ModernRequest,
    ctx: RequestContext,
    related: MessageSink,
    signal: AbortSignal,
    bytesIn: number,
  ): Promise<JsonRpcResponse> {
    const access = ctx.tools;
    if (access === undefined) return this.backend.call(request, ctx.owner, related, signal);
    if (request.method === "tools/call") {
      const tool = calledTool(request.legacyParams);
      const record = access.begin(tool, bytesIn);
      if (tool === undefined || !access.filter.visible(tool)) {
        const refused = errorResponse(request.id, ERROR_CODES.invalidParams, access.refusal(tool));
        record.finish("refused", messageBytes(refused));
        return refused;
      }
      const response = await this.backend.call(request, ctx.owner, related, signal);
      record.finish(signal.aborted ? "cancelled" : outcomeOf(response), messageBytes(response));
      return response;
    }
    const response = await this.backend.call(request, ctx.owner, related, signal);
    return request.method === "tools/list" ? filterToolsResponse(response, access) : response;
  }

  private openStream(res: ServerResponse): ClientStream {
    const sse = new SseWriter(res, {
      keepAliveMs: this.options.keepAliveMs ?? 25_000,
      onBytes: (n) => this.options.onBytes?.("out", n),
    });
    this.options.onStream?.(1);
    void sse.done.then(() => this.options.onStream?.(-1));
    return sse;
  }

  private reply(res: ServerResponse, status: number, body: JsonRpcResponse): void {
    if (res.destroyed) return;
    // Sent first: an optional call would skip evaluating its arguments.
    const bytes = sendJson(res, status, body);
    this.options.onBytes?.("out", bytes);
  }
}
