/** MCP protocol constants the gateway relies on (spec 2025-03-26 and 2025-06-18, older and newer accepted). */

/** The version the gateway asks for when it initializes a stdio server: the newest whose transport it implements. */
export const UPSTREAM_PROTOCOL_VERSION = "2025-06-18";

/** Versions a client may name (in `initialize` or the MCP-Protocol-Version header), newest first. */
export const SUPPORTED_PROTOCOL_VERSIONS = [
  "2025-11-25",
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
  "2024-10-07",
] as const;

/** Assumed when a request carries no MCP-Protocol-Version header (spec 2025-06-18, "Protocol Version Header"). */
export const DEFAULT_PROTOCOL_VERSION = "2025-03-26";

export const SESSION_HEADER = "mcp-session-id";
export const PROTOCOL_VERSION_HEADER = "mcp-protocol-version";

export function isSupportedVersion(version: string): boolean {
  return (SUPPORTED_PROTOCOL_VERSIONS as readonly string[]).includes(version);
}

/**
 * The version a client's session gets: the one it asked for when the gateway knows it and it is not newer than
 * what the server agreed with the gateway (versions are dates, so they compare as strings); otherwise the
 * server's. The gateway relays messages unchanged, so a session never claims more than the server speaks.
 */
export function negotiateVersion(requested: unknown, upstream: string): string {
  if (typeof requested === "string" && isSupportedVersion(requested) && requested <= upstream)
    return requested;
  return upstream;
}

/** Client capability a server-to-client request needs, so it is routed to a client that declared it. */
export function capabilityFor(method: string): string | undefined {
  if (method === "sampling/createMessage") return "sampling";
  if (method === "elicitation/create") return "elicitation";
  if (method === "roots/list") return "roots";
  return undefined;
}
