import { SUPPORTED_PROTOCOL_VERSIONS } from "../protocol.js";

/*
 * Protocol revisions on the client side of the gateway. From 2026-07-28 on ("modern") MCP is stateless: no
 * `initialize`, no session; every request names its revision in `_meta` and in the MCP-Protocol-Version header.
 * Revision identifiers are dates, so they compare as strings.
 */

/** The first revision of the stateless era. */
export const FIRST_MODERN_PROTOCOL_VERSION = "2026-07-28";

/** Modern revisions the gateway serves, newest first. */
export const MODERN_PROTOCOL_VERSIONS = [FIRST_MODERN_PROTOCOL_VERSION] as const;

/** Every revision a client may use on a user's port: modern ones first, then the session-based ones. */
export const ALL_PROTOCOL_VERSIONS: readonly string[] = [
  ...MODERN_PROTOCOL_VERSIONS,
  ...SUPPORTED_PROTOCOL_VERSIONS,
];

/** Reserved `_meta` keys of a 2026-07-28 request. */
export const META = {
  protocolVersion: "io.modelcontextprotocol/protocolVersion",
  clientInfo: "io.modelcontextprotocol/clientInfo",
  clientCapabilities: "io.modelcontextprotocol/clientCapabilities",
  logLevel: "io.modelcontextprotocol/logLevel",
  serverInfo: "io.modelcontextprotocol/serverInfo",
  subscriptionId: "io.modelcontextprotocol/subscriptionId",
} as const;

export const MODERN_HEADERS = { method: "mcp-method", name: "mcp-name" } as const;

/** JSON-RPC error codes of the 2026-07-28 revision the gateway answers with. */
export const MODERN_ERROR_CODES = {
  /** The request names a revision the endpoint does not serve; `data: { supported, requested }`. */
  unsupportedProtocolVersion: -32022,
  /** The MCP-Protocol-Version or Mcp-Method header disagrees with the body. */
  headerMismatch: -32020,
} as const;

export function isModernVersion(version: string): boolean {
  return version >= FIRST_MODERN_PROTOCOL_VERSION;
}

export function isServedModernVersion(version: string): boolean {
  return (MODERN_PROTOCOL_VERSIONS as readonly string[]).includes(version);
}

/** Which side of the gateway serves a request, decided from its MCP-Protocol-Version header alone. */
export type Era = "legacy" | "modern";

/**
 * A request without the header, or naming a session-based revision the gateway knows, goes the legacy way
 * (unchanged behaviour); anything else goes to the modern front, which serves the modern revisions and answers
 * every other value with the unsupported-version error listing ALL_PROTOCOL_VERSIONS. The 2026-07-28 revision
 * requires the header on every request, so the header is enough to route.
 */
export function eraOfHeader(header: string | undefined): Era {
  if (header === undefined) return "legacy";
  const version = header.trim();
  return (SUPPORTED_PROTOCOL_VERSIONS as readonly string[]).includes(version) ? "legacy" : "modern";
}
