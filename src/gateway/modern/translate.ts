import { paramsRecord } from "../jsonrpc.js";
import type { InitializeResult } from "../stdio-mux.js";
import { ALL_PROTOCOL_VERSIONS, META } from "./versions.js";

/*
 * Results of a session-based server as a 2026-07-28 client expects them (pure). Every result gets
 * `resultType: "complete"` and the server's identity in `_meta`; list and read results get cache hints;
 * `server/discover` is answered from the server's cached `initialize` result.
 */

/**
 * Cache hints the gateway puts on list and read results of a legacy server. A legacy server promises nothing
 * about freshness, so the gateway promises nothing either (ttl 0: ask again); the scope is private because what
 * a user sees may be filtered for that user.
 */
export const LEGACY_CACHE_HINTS = { ttlMs: 0, cacheScope: "private" } as const;

/** Methods whose 2026-07-28 results carry `ttlMs` and `cacheScope`. */
const CACHEABLE_METHODS: ReadonlySet<string> = new Set([
  "tools/list",
  "prompts/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "server/discover",
]);

/** Server capabilities that exist in 2026-07-28 (e.g. `tasks` is gone). */
const MODERN_SERVER_CAPABILITIES = [
  "experimental",
  "logging",
  "completions",
  "prompts",
  "resources",
  "tools",
  "extensions",
] as const;

export function modernCapabilities(capabilities: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const key of MODERN_SERVER_CAPABILITIES) {
    if (capabilities[key] !== undefined) kept[key] = capabilities[key];
  }
  return kept;
}

function serverMeta(init: InitializeResult, meta: unknown): Record<string, unknown> {
  return {
    ...paramsRecord(meta),
    ...(init.serverInfo !== undefined ? { [META.serverInfo]: init.serverInfo } : {}),
  };
}

/** `server/discover` of a legacy server: what it said at `initialize`, with the revisions the gateway serves. */
export function discoverResult(init: InitializeResult): Record<string, unknown> {
  return {
    resultType: "complete",
    supportedVersions: [...ALL_PROTOCOL_VERSIONS],
    capabilities: modernCapabilities(init.capabilities),
    ...(typeof init.instructions === "string" ? { instructions: init.instructions } : {}),
    ...LEGACY_CACHE_HINTS,
    _meta: serverMeta(init, undefined),
  };
}

/** A legacy server's result of `method` as a complete 2026-07-28 result. */
export function completeResult(
  method: string,
  result: unknown,
  init: InitializeResult,
): Record<string, unknown> {
  const record = paramsRecord(result) ?? {};
  return {
    ...record,
    ...(CACHEABLE_METHODS.has(method) ? LEGACY_CACHE_HINTS : {}),
    resultType: "complete",
    _meta: serverMeta(init, record._meta),
  };
}

/** A server-to-client request of a legacy server, embedded in an `input_required` result. */
export interface InputRequest {
  method: string;
  params?: unknown;
}

/** The methods a legacy server may ask a client, and the client capability each needs. */
export const INPUT_REQUEST_CAPABILITIES: Readonly<Record<string, string>> = {
  "elicitation/create": "elicitation",
  "sampling/createMessage": "sampling",
  "roots/list": "roots",
};

export function inputRequiredResult(
  requests: ReadonlyMap<string, InputRequest>,
  requestState: string,
  init: InitializeResult,
): Record<string, unknown> {
  const inputRequests: Record<string, unknown> = {};
  for (const [key, request] of requests) {
    // Embedded requests carry no JSON-RPC framing and no progress token of the server's.
    const params = paramsRecord(request.params);
    const { _meta: _dropped, ...rest } = params ?? {};
    inputRequests[key] = { method: request.method, ...(params ? { params: rest } : {}) };
  }
  return { resultType: "input_required", inputRequests, requestState, _meta: serverMeta(init, undefined) };
}
