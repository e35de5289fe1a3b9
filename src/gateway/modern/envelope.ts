import { z } from "zod";
import {
  ERROR_CODES,
  type JsonRpcErrorObject,
  type JsonRpcId,
  type JsonRpcRequest,
  classify,
  paramsRecord,
} from "../jsonrpc.js";
import { ALL_PROTOCOL_VERSIONS, META, MODERN_ERROR_CODES, isServedModernVersion } from "./versions.js";

/*
 * The per-request envelope of a 2026-07-28 request (pure). A modern request carries in `params._meta` the
 * revision, the client's identity and its capabilities; the gateway checks it against the headers, then maps the
 * request onto the session-based protocol a legacy server speaks: the reserved keys and the multi-round-trip
 * fields (`inputResponses`, `requestState`) are taken out, everything else (progressToken, a tool's arguments,
 * foreign `_meta` keys) is kept.
 */

const Envelope = z.looseObject({
  [META.protocolVersion]: z.string(),
  [META.clientCapabilities]: z.record(z.string(), z.unknown()),
  [META.clientInfo]: z.looseObject({ name: z.string(), version: z.string() }).optional(),
});

/** An embedded answer to one of the server's input requests (an elicitation, sampling or roots result). */
const InputResponses = z.record(z.string(), z.record(z.string(), z.unknown()));

export interface ModernRequest {
  id: JsonRpcId;
  method: string;
  version: string;
  clientCapabilities: Record<string, unknown>;
  /** The params a session-based server understands (envelope and retry fields removed). */
  legacyParams: Record<string, unknown> | undefined;
  /** The retry of an `input_required` result: the state the gateway handed out, and the client's answers. */
  requestState: string | undefined;
  inputResponses: Record<string, Record<string, unknown>> | undefined;
}

export type ParsedModernPost =
  | { kind: "request"; request: ModernRequest }
  | { kind: "notification"; method: string }
  | { kind: "error"; status: number; id: JsonRpcId | null; error: JsonRpcErrorObject };

export interface ModernHeaders {
  protocolVersion: string | undefined;
  method: string | undefined;
}

function fail(status: number, id: JsonRpcId | null, code: number, message: string, data?: unknown) {
  return {
    kind: "error" as const,
    status,
    id,
    error: data === undefined ? { code, message } : { code, message, data },
  };
}

/** The spec's answer to a revision the gateway does not serve: HTTP 400, -32022, the supported list. */
export function unsupportedVersion(id: JsonRpcId | null, requested: string): ParsedModernPost {
  return fail(
    400,
    id,
    MODERN_ERROR_CODES.unsupportedProtocolVersion,
    `Unsupported protocol version: ${requested}`,
    { supported: [...ALL_PROTOCOL_VERSIONS], requested },
  );
}

/** Checks one POSTed body of the modern front and maps it; every refusal says why. */
export function parseModernPost(headers: ModernHeaders, body: unknown): ParsedModernPost {
  if (Array.isArray(body)) {
    return fail(400, null, ERROR_CODES.invalidRequest, "JSON-RPC batches are not part of MCP 2026-07-28");
  }
  const classified = classify(body);
  if (!classified) return fail(400, null, ERROR_CODES.invalidRequest, "not a JSON-RPC 2.0 message");
  if (classified.kind === "response") {
    return fail(400, null, ERROR_CODES.invalidRequest, "MCP 2026-07-28 clients do not post responses");
  }
  const { method } = classified.message;
  const headerVersion = headers.protocolVersion?.trim();
  if (headers.method !== undefined && headers.method.trim() !== method) {
    const id = classified.kind === "request" ? classified.message.id : null;
    return fail(
      400,
      id,
      MODERN_ERROR_CODES.headerMismatch,
      `the body names method ${method} but the Mcp-Method header names ${headers.method.trim()}`,
    );
  }
  if (classified.kind === "notification") return { kind: "notification", method };
  return parseRequest(classified.message, headerVersion);
}

function parseRequest(message: JsonRpcRequest, headerVersion: string | undefined): ParsedModernPost {
  const { id, method } = message;
  const params = paramsRecord(message.params);
  const meta = paramsRecord(params?._meta);
  const claimed = meta?.[META.protocolVersion];
  const bodyVersion = typeof claimed === "string" ? claimed : undefined;
  if (bodyVersion !== undefined && headerVersion !== undefined && bodyVersion !== headerVersion) {
    return fail(
      400,
      id,
      MODERN_ERROR_CODES.headerMismatch,
      `the body envelope names protocol version ${bodyVersion} but the MCP-Protocol-Version header names ${headerVersion}`,
    );
  }
  const version = bodyVersion ?? headerVersion;
  if (version === undefined || !isServedModernVersion(version)) {
    return unsupportedVersion(id, version ?? "none");
  }
  const envelope = Envelope.safeParse(meta ?? {});
  if (!envelope.success) {
    const issue = envelope.error.issues[0];
    return fail(
      400,
      id,
      ERROR_CODES.invalidParams,
      `invalid _meta envelope for MCP ${version}: ${issue ? `${issue.path.join(".") || "_meta"}: ${issue.message}` : "invalid"}`,
    );
  }
  const responses =
    params?.inputResponses === undefined ? undefined : InputResponses.safeParse(params.inputResponses);
  if (responses && !responses.success) {
    return fail(400, id, ERROR_CODES.invalidParams, "inputResponses must map keys to result objects");
  }
  const state = params?.requestState;
  if (state !== undefined && typeof state !== "string") {
    return fail(400, id, ERROR_CODES.invalidParams, "requestState must be a string");
  }
  return {
    kind: "request",
    request: {
      id,
      method,
      version,
      clientCapabilities: envelope.data[META.clientCapabilities],
      legacyParams: legacyParams(params),
      requestState: state,
      inputResponses: responses?.data,
    },
  };
}

const RESERVED_META_KEYS: ReadonlySet<string> = new Set([
  META.protocolVersion,
  META.clientInfo,
  META.clientCapabilities,
  META.logLevel,
]);

/** `params` without the envelope's reserved keys and the retry fields; `_meta` dropped when nothing is left. */
export function legacyParams(
  params: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  if (!params) return undefined;
  const { _meta, inputResponses: _responses, requestState: _state, ...rest } = params;
  const meta = paramsRecord(_meta);
  if (meta) {
    const kept = Object.fromEntries(Object.entries(meta).filter(([key]) => !RESERVED_META_KEYS.has(key)));
    if (Object.keys(kept).length > 0) rest._meta = kept;
  }
  return rest;
}
