import type { IncomingMessage, ServerResponse } from "node:http";

/** Who is calling, once authenticated and authorized: "admin" or "user:<id>" (sessions are bound to it). */
export interface RequestContext {
  owner: string;
}

/** Serves one MCP server's requests after the gateway's origin and auth checks passed. */
export interface RequestHandler {
  handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> | void;
}
