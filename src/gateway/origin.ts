import { isIP } from "node:net";

/*
 * The Origin check the MCP spec asks of streamable HTTP servers (against DNS rebinding): a request whose Origin
 * header is present must come from an allowed origin. Allowed by default: loopback forms (localhost, 127.0.0.0/8,
 * [::1]) and the publish host itself, any port; plus the exact origins of MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS
 * ("*" allows every origin). Requests without Origin (non-browser clients) pass. The Host header is never trusted
 * for this: a rebinding page sends its own name there.
 */

export interface OriginPolicy {
  /** Normalised origins (scheme://host[:port]) allowed besides the loopback forms, or "*". */
  allowed: ReadonlySet<string> | "*";
  /** The address the gateway listens on for servers (MCP_PORTAL_PUBLISH_HOST). */
  publishHost: string;
}

export class InvalidOriginListError extends Error {
  readonly code = "CONFIG_INVALID";
}

/** MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS: comma-separated origins like https://app.example.com, or "*". */
export function parseAllowedOrigins(value: string | undefined): ReadonlySet<string> | "*" {
  const items = (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.includes("*")) return "*";
  const origins = new Set<string>();
  for (const item of items) {
    const normalised = normaliseOrigin(item);
    if (normalised === undefined) {
      throw new InvalidOriginListError(
        `MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS: "${item}" is not an origin (scheme://host[:port])`,
      );
    }
    origins.add(normalised);
  }
  return origins;
}

export function originAllowed(origin: string | undefined, policy: OriginPolicy): boolean {
  if (origin === undefined) return true;
  if (policy.allowed === "*") return true;
  const normalised = normaliseOrigin(origin);
  if (normalised === undefined) return false;
  if (policy.allowed.has(normalised)) return true;
  const url = new URL(normalised);
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return isLoopback(host) || host === policy.publishHost.toLowerCase();
}

function normaliseOrigin(value: string): string | undefined {
  if (value === "null") return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.origin === "null" || url.pathname.length > 1 || url.search !== "" || url.hash !== "")
    return undefined;
  return url.origin;
}

function isLoopback(host: string): boolean {
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}
