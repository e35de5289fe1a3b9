import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestContext, RequestHandler } from "../handler.js";
import { headerValue } from "../http-util.js";
import { PROTOCOL_VERSION_HEADER } from "../protocol.js";
import { eraOfHeader } from "./versions.js";

/**
 * The one hook of the 2026-07-28 protocol into a server's request path: a request whose MCP-Protocol-Version
 * header names no session-based revision goes to `modern()`, everything else to the handler that served it
 * before. `modern()` is asked per request, so what serves modern clients may change (e.g. once a probe finds the
 * server speaks 2026-07-28 itself).
 */
export class EraRouter implements RequestHandler {
  constructor(
    private readonly legacy: RequestHandler,
    private readonly modern: () => RequestHandler,
  ) {}

  handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> | void {
    const era = eraOfHeader(headerValue(req, PROTOCOL_VERSION_HEADER));
    return (era === "modern" ? this.modern() : this.legacy).handle(req, res, ctx);
  }
}
