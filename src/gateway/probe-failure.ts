/*
 * Why a probe (or the gateway's own request to a server) failed, in words the gateway chose. These messages end up
 * in `<state-dir>/gateway/health.json`, the controller's status, the API and live events, so they never carry text
 * the server sent (a JSON-RPC error message, a body, a header, a URL it named): a fixed vocabulary, plus numbers
 * (HTTP status, JSON-RPC error code, milliseconds, bytes) and local errno codes.
 */

/** The step of the MCP conversation that failed. */
export type ProbeStep =
  | "initialize"
  | "notifications/initialized"
  | "ping"
  | "server/discover"
  | "resources/subscribe"
  | "resources/unsubscribe"
  | "GET /sse"
  | "endpoint"
  | "target"
  | "attach";

/** Reasons the gateway itself knows (the server's address, the attach): fixed texts only. */
export type UnavailableReason =
  | "container is not running"
  | "container has no IP address on its network"
  | "container declares no port (label mcp.portal.container_port)"
  | "cannot inspect the container"
  | "not attached to the container"
  | "the connection to the server was lost"
  | "the server's input queue is full"
  | "the server stopped being served";

export type ProbeFailure =
  | { kind: "timeout"; ms: number }
  | { kind: "not_ready"; ms: number }
  | { kind: "http_status"; status: number }
  | { kind: "redirect"; status: number }
  | { kind: "too_large"; limit: number }
  | { kind: "not_json" }
  | { kind: "no_response" }
  | { kind: "rpc_error"; code: number }
  | { kind: "no_protocol_version" }
  | { kind: "invalid_initialize_result" }
  | { kind: "invalid_discover_result" }
  | { kind: "stream_ended" }
  | { kind: "foreign_endpoint" }
  | { kind: "connect_failed"; code: string }
  | { kind: "unavailable"; reason: UnavailableReason };

/** Local errno codes (ECONNREFUSED, ...) pass; anything else is "unknown". */
export function errnoCode(error: unknown): string {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; depth += 1) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && /^E[A-Z0-9_]{2,30}$/.test(code)) return code;
    if (typeof code === "string" && /^UND_ERR_[A-Z_]{2,40}$/.test(code)) return code;
    e = e.cause;
  }
  return "unknown";
}

function describe(failure: ProbeFailure): string {
  switch (failure.kind) {
    case "timeout":
      return `no answer within ${num(failure.ms)} ms`;
    case "not_ready":
      return `server not ready within ${num(failure.ms)} ms`;
    case "http_status":
      return `HTTP ${num(failure.status)}`;
    case "redirect":
      return `HTTP ${num(failure.status)} (redirects are not followed)`;
    case "too_large":
      return `answer over ${num(failure.limit)} bytes`;
    case "not_json":
      return "answer is not JSON";
    case "no_response":
      return "no JSON-RPC response to the request";
    case "rpc_error":
      return `JSON-RPC error ${num(failure.code)}`;
    case "no_protocol_version":
      return "the initialize result has no protocolVersion";
    case "invalid_initialize_result":
      return "the initialize result lacks protocolVersion or capabilities";
    case "invalid_discover_result":
      return "the server/discover result lacks supportedVersions or capabilities";
    case "stream_ended":
      return "the event stream ended before the answer";
    case "foreign_endpoint":
      return "the endpoint event names another origin";
    case "connect_failed":
      return `connection failed (${/^[A-Z0-9_]{1,40}$/.test(failure.code) ? failure.code : "unknown"})`;
    case "unavailable":
      return failure.reason;
  }
}

function num(value: number): string {
  return Number.isFinite(value) ? String(Math.trunc(value)) : "?";
}

export class ProbeError extends Error {
  readonly code = "PROBE_FAILED";

  constructor(
    readonly step: ProbeStep,
    readonly failure: ProbeFailure,
    /** What was known to be wrong before (e.g. why the server is not ready). */
    readonly previous?: ProbeError,
  ) {
    super(
      `${step}: ${describe(failure)}${previous ? ` (last failure: ${previous.messageWithoutPrevious})` : ""}`,
    );
    this.name = "ProbeError";
  }

  get messageWithoutPrevious(): string {
    return `${this.step}: ${describe(this.failure)}`;
  }
}

/**
 * The text a failed probe leaves in health.json: a ProbeError's own message; for anything else (a bug, an
 * unexpected library error) a fixed text with the errno code, since its message may quote what the server sent.
 */
export function probeFailureMessage(error: unknown): string {
  if (error instanceof ProbeError) return error.message;
  const code = errnoCode(error);
  return code === "unknown" ? "probe failed (unexpected error)" : `probe failed (${code})`;
}
