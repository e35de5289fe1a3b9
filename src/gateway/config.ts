import { z } from "zod";
import { parseListen, type ListenAddress } from "../api/http-server.js";
import { ConfigError, loadConfig } from "../config.js";
import { parseAllowedOrigins } from "./origin.js";
import type { ResourceIdentity } from "./resource-metadata.js";
import { parseAuditMaxBytes } from "../observability/audit.js";

/** What one tenant may take of the shared gateway (README, "Gateway limits"). */
export interface GatewayLimits {
  /** Requests one client session of a stdio server may have in flight. */
  maxInflightPerSession: number;
  /** Requests all sessions of one server may have in flight (HTTP servers: requests and streams at once). */
  maxInflightPerServer: number;
  /** Messages in one JSON-RPC batch. */
  maxBatchMessages: number;
  /** No answer and no activity (progress, stream data) this long: the request fails (timed out). */
  requestTimeoutMs: number;
  /** Resource subscriptions of one session. */
  maxSubscriptionsPerSession: number;
  /** Client sessions of one stdio server (idle ones are evicted first). */
  maxSessionsPerServer: number;
  /** Cap of one probe answer. */
  probeMaxBytes: number;
  /** stderr lines of one server logged per minute. */
  stderrLinesPerMinute: number;
  /** The gateway's own log file (--log-file) is rotated at this size. */
  logMaxBytes: number;
}

/** The gateway's settings: the controller's shared names (installation, state dir, publish host, ...) plus its own. */
export interface GatewayConfig {
  installation: string;
  stateDir: string;
  /** Where users' server ports are served (MCP_PORTAL_PUBLISH_HOST). */
  publishHost: string;
  /** The gateway's own /healthz, /readyz and /metrics (MCP_PORTAL_GATEWAY_LISTEN, default 127.0.0.1:8081). */
  listen: ListenAddress;
  allowedOrigins: ReadonlySet<string> | "*";
  resyncMs: number;
  /** How long a request to an idle server waits for its wake (MCP_PORTAL_GATEWAY_WAKE_TIMEOUT_SECONDS). */
  wakeTimeoutMs: number;
  limits: GatewayLimits;
  dockerTimeoutMs: number;
  logLevel: string;
  logPretty: boolean;
  /** The URL clients use (MCP_PORTAL_PUBLIC_URL) and the OpenID Connect provider, if any (MCP_PORTAL_OIDC_*). */
  identity: ResourceIdentity;
  /** How often the users' gateway-access.json files are checked for changes (MCP_PORTAL_GATEWAY_POLICY_RECHECK_MS). */
  policyRecheckMs: number;
  /** `<state-dir>/gateway/audit.log` rotation size (MCP_PORTAL_AUDIT_MAX_BYTES, as the controller's). */
  auditMaxBytes: number;
  /**
   * Several hosts (README, "Several hosts"): `single` serves every server of one engine (the default);
   * `node` serves the servers on its own node of a Swarm and takes connections from the entry on the relay port;
   * `entry` is the stable address that forwards each user's port to the node gateway of the user's node.
   */
  role: GatewayRole;
  /** MCP_PORTAL_GATEWAY_RELAY_PORT: the node gateways' relay port (node: listens on it; entry: forwards to it). */
  relayPort: number;
  /** Node role: the gateway's own container (id or name), which joins the users' overlays; default: hostname. */
  selfContainer: string | undefined;
  /** Node role: its own health file, as several node gateways share one state dir. */
  healthFile?: string;
}

export const GATEWAY_ROLES = ["single", "node", "entry"] as const;
export type GatewayRole = (typeof GATEWAY_ROLES)[number];

export type GatewayOverrides = Partial<
  Record<
    | "MCP_PORTAL_DATA_DIR"
    | "MCP_PORTAL_STATE_DIR"
    | "MCP_PORTAL_INSTALLATION"
    | "MCP_PORTAL_GATEWAY_LISTEN"
    | "LOG_LEVEL",
    string | undefined
  > & { LOG_PRETTY: boolean | undefined }
>;

const Int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** The gateway's own variables; the defaults are the README's. */
const GatewayOnly = z.object({
  MCP_PORTAL_GATEWAY_LISTEN: z.string().default("127.0.0.1:8081"),
  MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS: z.string().default(""),
  MCP_PORTAL_GATEWAY_RESYNC_SECONDS: Int(1, 86_400).default(30),
  MCP_PORTAL_GATEWAY_WAKE_TIMEOUT_SECONDS: Int(1, 3600).default(30),
  MCP_PORTAL_GATEWAY_MAX_INFLIGHT_PER_SESSION: Int(1, 100_000).default(64),
  MCP_PORTAL_GATEWAY_MAX_INFLIGHT_PER_SERVER: Int(1, 1_000_000).default(256),
  MCP_PORTAL_GATEWAY_MAX_BATCH: Int(1, 100_000).default(100),
  MCP_PORTAL_GATEWAY_REQUEST_TIMEOUT_SECONDS: Int(1, 86_400).default(300),
  MCP_PORTAL_GATEWAY_MAX_SUBSCRIPTIONS_PER_SESSION: Int(0, 100_000).default(100),
  MCP_PORTAL_GATEWAY_MAX_SESSIONS_PER_SERVER: Int(1, 1_000_000).default(1000),
  MCP_PORTAL_GATEWAY_PROBE_MAX_BYTES: Int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
  MCP_PORTAL_GATEWAY_STDERR_LINES_PER_MINUTE: Int(0, 1_000_000).default(120),
  MCP_PORTAL_GATEWAY_LOG_MAX_BYTES: Int(64 * 1024, 1024 * 1024 * 1024).default(10 * 1024 * 1024),
  MCP_PORTAL_GATEWAY_POLICY_RECHECK_MS: Int(100, 60_000).default(1000),
  MCP_PORTAL_GATEWAY_ROLE: z.enum(GATEWAY_ROLES).default("single"),
  MCP_PORTAL_GATEWAY_RELAY_PORT: Int(1, 65_535).default(7070),
  MCP_PORTAL_GATEWAY_CONTAINER: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/)
    .optional(),
});

type GatewayVariable = keyof z.input<typeof GatewayOnly>;

export function loadGatewayConfig(env: NodeJS.ProcessEnv, overrides: GatewayOverrides = {}): GatewayConfig {
  const { MCP_PORTAL_GATEWAY_LISTEN: listenOverride, ...shared } = overrides;
  const base = loadConfig(env, shared);
  const raw: Partial<Record<GatewayVariable, string>> = {};
  for (const name of Object.keys(GatewayOnly.shape) as GatewayVariable[]) {
    const value = nonEmpty(env[name]);
    if (value !== undefined) raw[name] = value;
  }
  if (listenOverride !== undefined) raw.MCP_PORTAL_GATEWAY_LISTEN = listenOverride;
  if (env.MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS !== undefined)
    raw.MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS = env.MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS;
  const parsed = GatewayOnly.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  let listen: ListenAddress;
  let allowedOrigins: ReadonlySet<string> | "*";
  let auditMaxBytes: number;
  try {
    listen = parseListen(parsed.data.MCP_PORTAL_GATEWAY_LISTEN);
    allowedOrigins = parseAllowedOrigins(parsed.data.MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS);
    auditMaxBytes = parseAuditMaxBytes(env);
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    installation: base.installation,
    stateDir: base.stateDir,
    publishHost: base.publishHost,
    listen,
    allowedOrigins,
    resyncMs: parsed.data.MCP_PORTAL_GATEWAY_RESYNC_SECONDS * 1000,
    wakeTimeoutMs: parsed.data.MCP_PORTAL_GATEWAY_WAKE_TIMEOUT_SECONDS * 1000,
    limits: {
      maxInflightPerSession: parsed.data.MCP_PORTAL_GATEWAY_MAX_INFLIGHT_PER_SESSION,
      maxInflightPerServer: parsed.data.MCP_PORTAL_GATEWAY_MAX_INFLIGHT_PER_SERVER,
      maxBatchMessages: parsed.data.MCP_PORTAL_GATEWAY_MAX_BATCH,
      requestTimeoutMs: parsed.data.MCP_PORTAL_GATEWAY_REQUEST_TIMEOUT_SECONDS * 1000,
      maxSubscriptionsPerSession: parsed.data.MCP_PORTAL_GATEWAY_MAX_SUBSCRIPTIONS_PER_SESSION,
      maxSessionsPerServer: parsed.data.MCP_PORTAL_GATEWAY_MAX_SESSIONS_PER_SERVER,
      probeMaxBytes: parsed.data.MCP_PORTAL_GATEWAY_PROBE_MAX_BYTES,
      stderrLinesPerMinute: parsed.data.MCP_PORTAL_GATEWAY_STDERR_LINES_PER_MINUTE,
      logMaxBytes: parsed.data.MCP_PORTAL_GATEWAY_LOG_MAX_BYTES,
    },
    dockerTimeoutMs: base.dockerTimeoutMs,
    logLevel: base.logLevel,
    logPretty: base.logPretty,
    identity: { publicUrl: base.publicUrl, oidc: base.oidc },
    policyRecheckMs: parsed.data.MCP_PORTAL_GATEWAY_POLICY_RECHECK_MS,
    auditMaxBytes,
    role: parsed.data.MCP_PORTAL_GATEWAY_ROLE,
    relayPort: parsed.data.MCP_PORTAL_GATEWAY_RELAY_PORT,
    selfContainer: parsed.data.MCP_PORTAL_GATEWAY_CONTAINER,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}
