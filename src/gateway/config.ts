import { z } from "zod";
import { parseListen, type ListenAddress } from "../api/http-server.js";
import { ConfigError, loadConfig } from "../config.js";
import { parseAllowedOrigins } from "./origin.js";

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
  dockerTimeoutMs: number;
  logLevel: string;
  logPretty: boolean;
}

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

const GatewayOnly = z.object({
  MCP_PORTAL_GATEWAY_LISTEN: z.string().default("127.0.0.1:8081"),
  MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS: z.string().default(""),
  MCP_PORTAL_GATEWAY_RESYNC_SECONDS: z.coerce.number().int().min(1).max(86_400).default(30),
});

export function loadGatewayConfig(env: NodeJS.ProcessEnv, overrides: GatewayOverrides = {}): GatewayConfig {
  const { MCP_PORTAL_GATEWAY_LISTEN: listenOverride, ...shared } = overrides;
  const base = loadConfig(env, shared);
  const parsed = GatewayOnly.safeParse({
    MCP_PORTAL_GATEWAY_LISTEN: listenOverride ?? nonEmpty(env.MCP_PORTAL_GATEWAY_LISTEN),
    MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS: env.MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS,
    MCP_PORTAL_GATEWAY_RESYNC_SECONDS: nonEmpty(env.MCP_PORTAL_GATEWAY_RESYNC_SECONDS),
  });
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  let listen: ListenAddress;
  let allowedOrigins: ReadonlySet<string> | "*";
  try {
    listen = parseListen(parsed.data.MCP_PORTAL_GATEWAY_LISTEN);
    allowedOrigins = parseAllowedOrigins(parsed.data.MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS);
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
    dockerTimeoutMs: base.dockerTimeoutMs,
    logLevel: base.logLevel,
    logPretty: base.logPretty,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}
