import type { ServerReport } from "../report.js";
import type { PackageTransport } from "./schema.js";

/*
 * A package's transport: stdio as it is; streamable-http and sse become the container port the gateway proxies
 * to. The gateway forwards /mcp (streamable HTTP) and /sse + /messages (SSE) unchanged, so a server answering
 * on another path would never be reached and is refused here rather than imported broken.
 */

export type TransportMapping =
  | { ok: true; transport: "stdio" }
  | { ok: true; transport: "streamable-http" | "sse"; port: number }
  | { ok: false; reason: string };

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "0.0.0.0", "[::]", "[::1]"]);
const GATEWAY_PATHS = { "streamable-http": "/mcp", sse: "/sse" } as const;

/** `values` fill `{name}` holes in the URL (argument valueHints and names, environment variables). */
export function mapTransport(
  transport: PackageTransport,
  values: ReadonlyMap<string, string>,
  report: ServerReport,
): TransportMapping {
  if (transport.type === "stdio") return { ok: true, transport: "stdio" };
  const unresolved: string[] = [];
  const text = transport.url.replace(/\{([^{}]+)\}/g, (hole, name: string) => {
    const value = values.get(name);
    if (value === undefined) unresolved.push(name);
    return value ?? hole;
  });
  if (unresolved.length > 0) {
    return { ok: false, reason: `transport URL ${transport.url}: no value for ${unresolved.join(", ")}` };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, reason: `transport URL ${text} is not a URL` };
  }
  if (url.protocol !== "http:") {
    return { ok: false, reason: `transport URL ${text}: the gateway speaks plain HTTP to containers` };
  }
  if (!LOCAL_HOSTS.has(url.hostname)) {
    return {
      ok: false,
      reason: `transport URL ${text} is not served by the package itself (host ${url.hostname})`,
    };
  }
  const port = url.port === "" ? 80 : Number(url.port);
  const expected = GATEWAY_PATHS[transport.type];
  if (url.pathname === "/" || url.pathname === "") {
    report.notes.push(`transport URL ${text} names no path: the gateway forwards ${expected}`);
  } else if (url.pathname.replace(/\/+$/, "") !== expected) {
    return {
      ok: false,
      reason: `${transport.type} at ${url.pathname}: the gateway forwards ${expected} only`,
    };
  }
  report.notes.push(
    url.hostname === "0.0.0.0" || url.hostname === "[::]"
      ? `${transport.type} on container port ${port}`
      : `${transport.type} on container port ${port}: the server must listen on all interfaces (0.0.0.0), not only ${url.hostname}`,
  );
  if (transport.headers && transport.headers.length > 0) {
    report.dropped.push({
      field: "transport headers",
      reason: `${transport.headers.map((h) => h.name).join(", ")}: the gateway adds no headers to requests`,
    });
  }
  return { ok: true, transport: transport.type, port };
}
