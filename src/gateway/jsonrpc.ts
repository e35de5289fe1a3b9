/** JSON-RPC 2.0 as MCP uses it: shapes, classification of untrusted input, and error responses. */

export type JsonRpcId = string | number;

export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id: JsonRpcId;
  method: string;
  params?: unknown;
}

export interface JsonRpcNotification {
  jsonrpc: "2.0";
  method: string;
  params?: unknown;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcResultResponse {
  jsonrpc: "2.0";
  id: JsonRpcId;
  result: unknown;
}

export interface JsonRpcErrorResponse {
  jsonrpc: "2.0";
  id: JsonRpcId | null;
  error: JsonRpcErrorObject;
}

export type JsonRpcResponse = JsonRpcResultResponse | JsonRpcErrorResponse;
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

export type Classified =
  | { kind: "request"; message: JsonRpcRequest }
  | { kind: "notification"; message: JsonRpcNotification }
  | { kind: "response"; message: JsonRpcResponse };

export const ERROR_CODES = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  /** Implementation-defined server errors (-32000 to -32099): the gateway's own. */
  serverUnavailable: -32000,
  requestTimeout: -32001,
  /** A gateway limit (requests in flight, batch size, subscriptions) refused the message. */
  limitExceeded: -32003,
} as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function isJsonRpcId(value: unknown): value is JsonRpcId {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

/** What an untrusted value is, or undefined when it is no JSON-RPC 2.0 message. */
export function classify(value: unknown): Classified | undefined {
  if (!isRecord(value) || value.jsonrpc !== "2.0") return undefined;
  if (typeof value.method === "string") {
    if (!("id" in value)) return { kind: "notification", message: value as unknown as JsonRpcNotification };
    if (isJsonRpcId(value.id)) return { kind: "request", message: value as unknown as JsonRpcRequest };
    return undefined;
  }
  if ("result" in value || isRecord(value.error)) {
    if (isJsonRpcId(value.id) || value.id === null) {
      return { kind: "response", message: value as unknown as JsonRpcResponse };
    }
  }
  return undefined;
}

export function errorResponse(
  id: JsonRpcId | null,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcErrorResponse {
  return { jsonrpc: "2.0", id, error: data === undefined ? { code, message } : { code, message, data } };
}

/** A map key for an id: 1 and "1" are different ids. */
export function idKey(id: JsonRpcId): string {
  return typeof id === "number" ? `n:${id}` : `s:${id}`;
}

export function paramsRecord(params: unknown): Record<string, unknown> | undefined {
  return isRecord(params) ? params : undefined;
}

/** `params._meta.progressToken` of a request, when it has one. */
export function progressTokenOf(params: unknown): JsonRpcId | undefined {
  const meta = paramsRecord(params)?._meta;
  if (!isRecord(meta)) return undefined;
  return isJsonRpcId(meta.progressToken) ? meta.progressToken : undefined;
}

/** `params` with `_meta.progressToken` replaced (everything else kept). */
export function withProgressToken(params: unknown, token: JsonRpcId): Record<string, unknown> {
  const record = paramsRecord(params) ?? {};
  const meta = isRecord(record._meta) ? record._meta : {};
  return { ...record, _meta: { ...meta, progressToken: token } };
}
