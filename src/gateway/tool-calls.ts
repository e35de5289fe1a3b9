import {
  ERROR_CODES,
  type JsonRpcRequest,
  type JsonRpcResponse,
  errorResponse,
  paramsRecord,
} from "./jsonrpc.js";
import type { ToolAccess, ToolCallOutcome } from "./handler.js";
import { ALL_TOOLS, calledTool, filterToolsResult } from "./tool-policy.js";

/*
 * Tool policy and tool-call records on JSON-RPC messages, shared by the stdio bridge and the HTTP proxy: what to
 * refuse before it reaches a server, how a response ends a call, and a tools/list answer as the caller may see it.
 */

/** Size of a message as JSON (what the audit counts as bytes in or out). */
export function messageBytes(message: unknown): number {
  return Buffer.byteLength(JSON.stringify(message) ?? "");
}

/** The outcome a response gives a tools/call (undefined: the client cancelled it, no response). */
export function outcomeOf(response: JsonRpcResponse | undefined): ToolCallOutcome {
  if (response === undefined) return "cancelled";
  if ("error" in response) {
    if (response.error.code === ERROR_CODES.requestTimeout) return "timeout";
    if (response.error.code === ERROR_CODES.serverUnavailable) return "unavailable";
    if (response.error.code === ERROR_CODES.limitExceeded) return "limit_exceeded";
    return "error";
  }
  return paramsRecord(response.result)?.isError === true ? "tool_error" : "success";
}

/** The refusal of a tools/call the policy hides (or that names no tool), or undefined when it may go on. */
export function screenToolCall(
  request: JsonRpcRequest,
  access: ToolAccess | undefined,
): JsonRpcResponse | undefined {
  if (request.method !== "tools/call" || access === undefined) return undefined;
  const name = calledTool(request.params);
  if (name !== undefined && access.filter.visible(name)) return undefined;
  return errorResponse(request.id, ERROR_CODES.invalidParams, access.refusal(name));
}

/** A response to a tools/list request, as the caller may see it. */
export function filterToolsResponse(
  response: JsonRpcResponse,
  access: ToolAccess | undefined,
): JsonRpcResponse {
  if (access === undefined || !access.restricted || access.filter === ALL_TOOLS || !("result" in response))
    return response;
  const result = filterToolsResult(response.result, access.filter);
  return result === response.result ? response : { ...response, result };
}
