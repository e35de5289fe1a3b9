import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { OIDC_RESULTS } from "../auth/oidc.js";
import { TOOL_CALL_OUTCOMES } from "./handler.js";
import type { RateScope } from "./rate-limit.js";

/*
 * The gateway's own Prometheus metrics, on its own registry and listener. Labels take values from small fixed
 * sets only: never user ids, server ids, ports or error text.
 */

export const TRANSPORTS = ["stdio", "sse", "streamable-http"] as const;
export type Transport = (typeof TRANSPORTS)[number];

export const REQUEST_RESULTS = [
  "success",
  "unauthenticated",
  "forbidden",
  "origin_rejected",
  "not_found",
  "session_not_found",
  "limit_exceeded",
  "rate_limited",
  "client_error",
  "unavailable",
  "upstream_error",
  "error",
] as const;
export type RequestResult = (typeof REQUEST_RESULTS)[number];

export const PROBE_RESULTS = ["success", "failure"] as const;
export const HEALTH_STATES = ["Starting", "Ready", "Unhealthy"] as const;
export const DIRECTIONS = ["client_to_server", "server_to_client"] as const;
export const STDERR_OUTCOMES = ["logged", "dropped"] as const;
export const RATE_SCOPES: readonly RateScope[] = ["user", "server"];
export type Direction = (typeof DIRECTIONS)[number];

const REQUEST_DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
const PROBE_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const TOOL_CALL_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** prom-client's default gauges whose names end in _total, which `promtool check metrics` rejects. */
const GAUGES_NAMED_LIKE_COUNTERS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

export interface GatewayMetrics {
  readonly registry: Registry;
  readonly requestsTotal: Counter<"transport" | "result">;
  readonly requestDurationSeconds: Histogram<"transport">;
  readonly probesTotal: Counter<"transport" | "result">;
  readonly probeDurationSeconds: Histogram<"transport">;
  readonly sessions: Gauge<"transport">;
  readonly openStreams: Gauge<"transport">;
  readonly attachReconnectsTotal: Counter;
  readonly bytesTotal: Counter<"transport" | "direction">;
  readonly servers: Gauge<"state">;
  readonly listeners: Gauge;
  readonly dockerEventsReconnectsTotal: Counter;
  readonly stderrLinesTotal: Counter<"outcome">;
  readonly applyFailuresTotal: Counter;
  readonly toolCallsTotal: Counter<"result">;
  readonly toolCallDurationSeconds: Histogram;
  readonly rateLimitedTotal: Counter<"scope">;
  readonly oidcTokensTotal: Counter<"result">;
  readonly auditWriteErrorsTotal: Counter;
  readonly accessFilesInvalid: Gauge;
  readonly inspectOverflowsTotal: Counter;
  readonly buildInfo: Gauge<"version">;
}

export function createGatewayMetrics(
  registry: Registry = new Registry(),
  options: { version?: string; defaultMetrics?: boolean } = {},
): GatewayMetrics {
  const registers = [registry];
  const metrics: GatewayMetrics = {
    registry,
    requestsTotal: new Counter({
      name: "mcp_portal_gateway_requests_total",
      help: "HTTP requests to users' server ports, by server transport and result (auth and origin refusals included).",
      labelNames: ["transport", "result"],
      registers,
    }),
    requestDurationSeconds: new Histogram({
      name: "mcp_portal_gateway_request_duration_seconds",
      help: "Time from request to the end of the response, POST and DELETE (GET streams live as long as the client wants).",
      labelNames: ["transport"],
      buckets: REQUEST_DURATION_BUCKETS,
      registers,
    }),
    probesTotal: new Counter({
      name: "mcp_portal_gateway_probes_total",
      help: "MCP health probes (initialize/initialized/ping through the gateway's own path), by result.",
      labelNames: ["transport", "result"],
      registers,
    }),
    probeDurationSeconds: new Histogram({
      name: "mcp_portal_gateway_probe_duration_seconds",
      help: "Duration of MCP health probes.",
      labelNames: ["transport"],
      buckets: PROBE_DURATION_BUCKETS,
      registers,
    }),
    sessions: new Gauge({
      name: "mcp_portal_gateway_sessions",
      help: "Client sessions the gateway holds on bridged stdio servers.",
      labelNames: ["transport"],
      registers,
    }),
    openStreams: new Gauge({
      name: "mcp_portal_gateway_open_streams",
      help: "Server-sent-event streams currently open to clients.",
      labelNames: ["transport"],
      registers,
    }),
    attachReconnectsTotal: new Counter({
      name: "mcp_portal_gateway_attach_reconnects_total",
      help: "Times an attach to a stdio server's container was opened again after it dropped.",
      registers,
    }),
    bytesTotal: new Counter({
      name: "mcp_portal_gateway_bytes_total",
      help: "Bytes relayed between clients and servers (message bodies), by direction.",
      labelNames: ["transport", "direction"],
      registers,
    }),
    servers: new Gauge({
      name: "mcp_portal_gateway_servers",
      help: "Servers the gateway serves, by MCP health state.",
      labelNames: ["state"],
      registers,
    }),
    listeners: new Gauge({
      name: "mcp_portal_gateway_listeners",
      help: "Host ports the gateway is listening on.",
      registers,
    }),
    dockerEventsReconnectsTotal: new Counter({
      name: "mcp_portal_gateway_docker_events_reconnects_total",
      help: "Times the Docker events stream ended or failed and was reopened.",
      registers,
    }),
    stderrLinesTotal: new Counter({
      name: "mcp_portal_gateway_stderr_lines_total",
      help: "Lines servers wrote to stderr: logged, or dropped by the per-server rate limit (or for their size).",
      labelNames: ["outcome"],
      registers,
    }),
    applyFailuresTotal: new Counter({
      name: "mcp_portal_gateway_apply_failures_total",
      help: "Discovery updates the gateway failed to apply (a later update is applied regardless).",
      registers,
    }),
    toolCallsTotal: new Counter({
      name: "mcp_portal_gateway_tool_calls_total",
      help: "tools/call requests through the gateway, by outcome (refused: hidden by the tool policy).",
      labelNames: ["result"],
      registers,
    }),
    toolCallDurationSeconds: new Histogram({
      name: "mcp_portal_gateway_tool_call_duration_seconds",
      help: "Time from a tools/call request to its answer (refused calls included).",
      buckets: TOOL_CALL_DURATION_BUCKETS,
      registers,
    }),
    rateLimitedTotal: new Counter({
      name: "mcp_portal_gateway_rate_limited_total",
      help: "Requests answered 429 by a rate limit of policy.json, by the limit that refused them (user or server).",
      labelNames: ["scope"],
      registers,
    }),
    oidcTokensTotal: new Counter({
      name: "mcp_portal_gateway_oidc_tokens_total",
      help: "OpenID Connect access tokens checked, by result (ok, or why the token was refused).",
      labelNames: ["result"],
      registers,
    }),
    auditWriteErrorsTotal: new Counter({
      name: "mcp_portal_gateway_audit_write_errors_total",
      help: "Tool-call audit lines that could not be written to the gateway's audit log.",
      registers,
    }),
    accessFilesInvalid: new Gauge({
      name: "mcp_portal_gateway_access_files_invalid",
      help: "Users whose gateway-access.json cannot be used (the last good version applies, or every tool is refused).",
      registers,
    }),
    inspectOverflowsTotal: new Counter({
      name: "mcp_portal_gateway_inspect_overflows_total",
      help: "Server answers cut because the gateway had to read them (a tool list, a call's answer) and they were too large.",
      registers,
    }),
    buildInfo: new Gauge({
      name: "mcp_portal_gateway_build_info",
      help: "Always 1; the version label names the running gateway build.",
      labelNames: ["version"],
      registers,
    }),
  };
  for (const transport of TRANSPORTS) {
    for (const result of REQUEST_RESULTS) metrics.requestsTotal.inc({ transport, result }, 0);
    for (const result of PROBE_RESULTS) metrics.probesTotal.inc({ transport, result }, 0);
    for (const direction of DIRECTIONS) metrics.bytesTotal.inc({ transport, direction }, 0);
    metrics.openStreams.set({ transport }, 0);
  }
  metrics.sessions.set({ transport: "stdio" }, 0);
  for (const state of HEALTH_STATES) metrics.servers.set({ state }, 0);
  metrics.listeners.set(0);
  for (const outcome of STDERR_OUTCOMES) metrics.stderrLinesTotal.inc({ outcome }, 0);
  for (const result of TOOL_CALL_OUTCOMES) metrics.toolCallsTotal.inc({ result }, 0);
  for (const scope of RATE_SCOPES) metrics.rateLimitedTotal.inc({ scope }, 0);
  for (const result of OIDC_RESULTS) metrics.oidcTokensTotal.inc({ result }, 0);
  metrics.accessFilesInvalid.set(0);
  metrics.buildInfo.set({ version: options.version ?? "unknown" }, 1);
  if (options.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: "" });
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) registry.removeSingleMetric(name);
  }
  return metrics;
}

/** The `result` label of a finished request, from its status code. */
export function resultOf(status: number): RequestResult {
  if (status < 400) return "success";
  if (status === 401) return "unauthenticated";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status < 500) return "client_error";
  if (status === 503) return "unavailable";
  if (status === 502 || status === 504) return "upstream_error";
  return "error";
}

const explicitResults = new WeakMap<object, RequestResult>();

/** Names a response's result where the status code alone is ambiguous (e.g. 404 for an unknown session). */
export function markResult(res: object, result: RequestResult): void {
  explicitResults.set(res, result);
}

export function markedResult(res: object): RequestResult | undefined {
  return explicitResults.get(res);
}
