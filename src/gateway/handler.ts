import type { IncomingMessage, ServerResponse } from "node:http";
import type { ToolFilter } from "./tool-policy.js";

/** Who is calling, once authenticated and authorized: "admin" or "user:<id>" (sessions are bound to it). */
export interface RequestContext {
  owner: string;
  /** The tool policy and the tool-call audit of this request (absent: every tool, nothing recorded). */
  tools?: ToolAccess;
}

/** How a tools/call through the gateway ended (the audit line's `outcome`, a metric label). */
export const TOOL_CALL_OUTCOMES = [
  "success",
  "tool_error",
  "error",
  "refused",
  "limit_exceeded",
  "timeout",
  "unavailable",
  "cancelled",
  "no_response",
] as const;
export type ToolCallOutcome = (typeof TOOL_CALL_OUTCOMES)[number];

/** One tools/call from its start; `finish` records it once (later calls are ignored). */
export interface ToolCallRecord {
  finish(outcome: ToolCallOutcome, bytesOut: number): void;
}

/** The tool policy for one request's caller and server, and where its tool calls are recorded. */
export interface ToolAccess {
  readonly filter: ToolFilter;
  /** False when every tool passes: tools/list answers need no filtering. */
  readonly restricted: boolean;
  /** The message of a refused tools/call (the policy hides the tool, or cannot be read). */
  refusal(name: string | undefined): string;
  /** A tools/call of `tool` (undefined when it names none) began, `bytesIn` its message's size. */
  begin(tool: string | undefined, bytesIn: number): ToolCallRecord;
}

/** Serves one MCP server's requests after the gateway's origin and auth checks passed. */
export interface RequestHandler {
  handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> | void;
}
