import path from "node:path";
import { DEFAULT_EGRESS_PROXY_IMAGE } from "./desired/egress-desired.js";
import { z } from "zod";
import { type OidcSettings, parseOidcSettings, parsePublicUrl } from "./auth/oidc-settings.js";
import {
  MAX_BLOCK_SIZE,
  type PortRange,
  formatPortSpan,
  parsePortSpans,
  portPoolCapacity,
} from "./desired/port-blocks.js";
import { parseIpv4Cidr, subnetPoolCapacity } from "./desired/subnets.js";
import { ImageGlob, MAX_IMAGE_GLOBS } from "./schema/policy.js";
import type { LockSettings } from "./util/file-lock.js";

const Int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const Bool = z
  .union([z.boolean(), z.enum(["1", "0", "true", "false", "yes", "no", ""])])
  .transform((v) => v === true || v === "1" || v === "true" || v === "yes");

const Cidr = z
  .string()
  .regex(
    /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/,
    "must be an IPv4 CIDR like 10.199.0.0/16",
  );

export const InstallationName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, "installation must match ^[a-z0-9][a-z0-9-]{0,30}$");

/*
 * Capacity defaults (README, "Capacity"): 1,231 users on one host. Host ports 10000-29999 stay below the
 * kernel's ephemeral range (32768-60999) and Kubernetes NodePorts (30000-32767); blocks of 16 ports give a user
 * 6 servers more than the default max_containers (10); MCP_PORTAL_PORT_EXCLUDE keeps new blocks off the
 * well-known ports of services often found next to Docker in that range. Users' /27 subnets (29 containers, more
 * than a block has ports) come from 10.199.0.0/16 (2,048 of them), outside Docker's default address pools
 * (172.17.0.0/16-172.31.0.0/16, 192.168.0.0/16), so networks Docker numbers itself never take the pool.
 */
export const DEFAULT_PORT_RANGE: PortRange = { start: 10_000, end: 29_999 };
export const DEFAULT_PORTS_PER_USER = 16;
/**
 * Zabbix 10050-10051; Kubernetes node components 10250-10259; memcached 11211; Ollama 11434; Jaeger 14250,
 * 14268, 16686; RabbitMQ management 15672, 15692; Redis cluster bus 16379; Netdata 19999; Fluentd 24224;
 * CockroachDB 26257; Redis Sentinel 26379; MongoDB 27017-27019, 28017; RethinkDB 28015; Kafka 29092.
 */
export const DEFAULT_PORT_EXCLUDE =
  "10050-10051,10250-10259,11211,11434,14250,14268,15672,15692,16379,16686,19999,24224,26257,26379,27017-27019,28015,28017,29092";
export const DEFAULT_SUBNET_POOL = "10.199.0.0/16";
export const DEFAULT_SUBNET_SIZE = 27;

/** The lock files shared by the daemon and the CLI (`secrets`, `tokens` read these too). */
const LOCK_FIELDS = {
  MCP_PORTAL_LOCK_WAIT_MS: Int(0, 600_000).default(10_000),
  MCP_PORTAL_LOCK_STALE_MS: Int(1000, 3_600_000).default(30_000),
};

/** `engine`: one Docker Engine, a container per server; `swarm`: a Swarm manager, a service per server. */
export const BACKENDS = ["engine", "swarm"] as const;
export type Backend = (typeof BACKENDS)[number];

/** Raw settings: the env names of the README's configuration table, with flags merged over them by the CLI. */
const RawConfig = z
  .object({
    ...LOCK_FIELDS,
    MCP_PORTAL_LIVE_MAX_CONNECTIONS_PER_TOKEN: Int(1, 10_000).default(8),
    MCP_PORTAL_LIVE_TOKEN_RECHECK_MS: Int(100, 60_000).default(1000),
    MCP_PORTAL_DATA_DIR: z.string().min(1).default("."),
    MCP_PORTAL_STATE_DIR: z.string().min(1).optional(),
    MCP_PORTAL_INSTALLATION: InstallationName.default("default"),
    MCP_PORTAL_LISTEN: z.string().default("127.0.0.1:8080"),
    MCP_PORTAL_OVERLAYS: z.string().default(""),
    MCP_PORTAL_PORT_RANGE_START: Int(1024, 65_535).default(DEFAULT_PORT_RANGE.start),
    MCP_PORTAL_PORT_RANGE_END: Int(1024, 65_535).default(DEFAULT_PORT_RANGE.end),
    MCP_PORTAL_PORTS_PER_USER: Int(1, MAX_BLOCK_SIZE).default(DEFAULT_PORTS_PER_USER),
    MCP_PORTAL_PORT_EXCLUDE: z
      .string()
      .default(DEFAULT_PORT_EXCLUDE)
      .transform((value, ctx) => {
        const parsed = parsePortSpans(value);
        if ("spans" in parsed) return parsed.spans;
        ctx.addIssue({
          code: "custom",
          message: `"${parsed.invalid.slice(0, 32)}" is not a port or a range a-b of ports (1-65535)`,
        });
        return z.NEVER;
      }),
    MCP_PORTAL_PUBLISH_HOST: z.union([z.ipv4(), z.ipv6()]).default("127.0.0.1"),
    MCP_PORTAL_GATEWAY: z.enum(["on", "off"]).default("on"),
    MCP_PORTAL_USER_MAX_CONTAINERS: Int(0, 10_000).default(10),
    MCP_PORTAL_USER_MAX_MEMORY_MB: Int(0, 10_000_000).default(2048),
    MCP_PORTAL_USER_MAX_CPU_SHARES: Int(0, 10_000_000).default(1024),
    MCP_PORTAL_USER_NETWORK_SUBNET_BASE: Cidr.default(DEFAULT_SUBNET_POOL),
    MCP_PORTAL_USER_NETWORK_SUBNET_SIZE: Int(8, 30).default(DEFAULT_SUBNET_SIZE),
    MCP_PORTAL_RESYNC_SECONDS: Int(1, 86_400).default(60),
    MCP_PORTAL_REREAD_SECONDS: Int(1, 86_400).default(600),
    MCP_PORTAL_RELIST_SECONDS: Int(0, 86_400).default(600),
    MCP_PORTAL_MISSING_FILE_GRACE_SECONDS: Int(0, 86_400).default(300),
    MCP_PORTAL_CONCURRENCY: Int(1, 64).default(4),
    MCP_PORTAL_DEBOUNCE_MS: Int(0, 60_000).default(300),
    MCP_PORTAL_DOCKER_TIMEOUT_SECONDS: Int(1, 3600).default(60),
    MCP_PORTAL_STOP_TIMEOUT_SECONDS: Int(0, 600).default(10),
    MCP_PORTAL_MASS_PRUNE_SHARE: z.coerce.number().min(0).max(1).default(0.5),
    MCP_PORTAL_MASS_PRUNE_MIN: Int(0, 1_000_000).default(5),
    MCP_PORTAL_ALLOW_MASS_PRUNE: Bool.default(false),
    MCP_PORTAL_CONTAINER_USER: z
      .string()
      .regex(/^[a-zA-Z0-9_.-]+(?::[a-zA-Z0-9_.-]+)?$/)
      .default("1000:1000"),
    MCP_PORTAL_ALLOWED_IMAGES: z.string().default(""),
    MCP_PORTAL_EGRESS_PROXY_IMAGE: z
      .string()
      .regex(
        /^[^\s:@]+(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$/,
        "an image reference",
      )
      .default(DEFAULT_EGRESS_PROXY_IMAGE),
    MCP_PORTAL_EGRESS_EXTRA_HOSTS: z.string().default(""),
    MCP_PORTAL_EGRESS_DENIAL_POLL_SECONDS: Int(1, 3600).default(10),
    MCP_PORTAL_EGRESS_DENIAL_MAX_BYTES: Int(4096, 64 * 1024 * 1024).default(1024 * 1024),
    MCP_PORTAL_MAX_FILE_BYTES: Int(1024, 1024 * 1024 * 1024).default(5 * 1024 * 1024),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    LOG_PRETTY: Bool.default(false),
    MCP_PORTAL_READ_ONLY_API: Bool.default(false),
    // Identity (README, "Identity"): the URL clients use, and an optional OpenID Connect provider.
    MCP_PORTAL_PUBLIC_URL: z.string().optional(),
    MCP_PORTAL_OIDC_ISSUER: z.string().optional(),
    MCP_PORTAL_OIDC_AUDIENCE: z.string().optional(),
    MCP_PORTAL_OIDC_API_AUDIENCE: z.string().optional(),
    MCP_PORTAL_OIDC_USER_CLAIM: z.string().default("preferred_username"),
    MCP_PORTAL_OIDC_ADMIN_CLAIM: z.string().optional(),
    MCP_PORTAL_OIDC_ADMIN_VALUE: z.string().optional(),
    MCP_PORTAL_OIDC_ALGORITHMS: z.string().default("RS256,PS256,ES256,EdDSA"),
    MCP_PORTAL_OIDC_CLOCK_SKEW_SECONDS: Int(0, 300).default(60),
    MCP_PORTAL_OIDC_JWKS_CACHE_SECONDS: Int(1, 86_400).default(600),
    MCP_PORTAL_OIDC_SCOPES: z.string().default(""),
    MCP_PORTAL_OIDC_TIMEOUT_SECONDS: Int(1, 60).default(5),
    // Several hosts (README, "Several hosts"): which kind of engine DOCKER_HOST names.
    MCP_PORTAL_BACKEND: z.enum(BACKENDS).default("engine"),
    MCP_PORTAL_SWARM_POLL_SECONDS: Int(1, 3600).default(5),
    MCP_PORTAL_SWARM_RESTART_DELAY_SECONDS: Int(0, 3600).default(5),
    MCP_PORTAL_SWARM_CRASHLOOP_FAILURES: Int(1, 1000).default(3),
    MCP_PORTAL_SWARM_CRASHLOOP_WINDOW_SECONDS: Int(10, 86_400).default(300),
  })
  .superRefine((c, ctx) => {
    const range = { start: c.MCP_PORTAL_PORT_RANGE_START, end: c.MCP_PORTAL_PORT_RANGE_END };
    if (portPoolCapacity(range, c.MCP_PORTAL_PORTS_PER_USER, c.MCP_PORTAL_PORT_EXCLUDE) < 1) {
      ctx.addIssue({
        code: "custom",
        path: ["MCP_PORTAL_PORT_RANGE_END"],
        message: `port range ${formatPortSpan(range)} must hold at least one block of MCP_PORTAL_PORTS_PER_USER (${c.MCP_PORTAL_PORTS_PER_USER}) ports without an MCP_PORTAL_PORT_EXCLUDE port`,
      });
    }
    const pool = parseIpv4Cidr(c.MCP_PORTAL_USER_NETWORK_SUBNET_BASE);
    if (!pool) {
      ctx.addIssue({
        code: "custom",
        path: ["MCP_PORTAL_USER_NETWORK_SUBNET_BASE"],
        message: "must be an IPv4 CIDR like 10.199.0.0/16",
      });
    } else if (subnetPoolCapacity(pool, c.MCP_PORTAL_USER_NETWORK_SUBNET_SIZE) < 1) {
      ctx.addIssue({
        code: "custom",
        path: ["MCP_PORTAL_USER_NETWORK_SUBNET_SIZE"],
        message: "per-user subnet size must be a longer prefix than the pool's",
      });
    }
  });

export interface Limits {
  max_containers: number;
  max_memory_mb: number;
  max_cpu_shares: number;
  max_ports: number;
}

export interface Config {
  dataDir: string;
  stateDir: string;
  installation: string;
  listen: string;
  overlays: string[];
  portRange: PortRange;
  /** The size of new users' port blocks (a block keeps the size it was made with). */
  portsPerUser: number;
  /** Ports no new block may contain (MCP_PORTAL_PORT_EXCLUDE). */
  excludedPorts: PortRange[];
  publishHost: string;
  /** The gateway serves users' host ports (containers publish nothing); off: HTTP servers publish directly. */
  gateway: boolean;
  defaultLimits: Limits;
  subnetPool: { base: string; prefixLength: number };
  resyncSeconds: number;
  /** How often a resync reads every file again although the watcher reported no change (lost events). */
  rereadSeconds: number;
  /**
   * How often a resync lists the engine again although its events reported no change (lost events); between
   * those, a resync answers from the listing events keep up to date. 0: every resync lists.
   */
  relistSeconds: number;
  /** How long a user folder without enabled-servers.json counts as unknown rather than "nothing enabled". */
  missingFileGraceSeconds: number;
  concurrency: number;
  debounceMs: number;
  dockerTimeoutMs: number;
  stopTimeoutSeconds: number;
  massPrune: { share: number; minimum: number; allow: boolean };
  containerUser: string;
  /** MCP_PORTAL_EGRESS_PROXY_IMAGE: the image users' egress proxies run (README, "Network egress"). */
  egressProxyImage: string;
  /** MCP_PORTAL_EGRESS_EXTRA_HOSTS: `name:address` entries the egress proxies resolve without DNS. */
  egressExtraHosts: string[];
  /** MCP_PORTAL_EGRESS_DENIAL_POLL_SECONDS: how often the controller reads the proxies' denial lines. */
  egressDenialPollSeconds: number;
  /** MCP_PORTAL_EGRESS_DENIAL_MAX_BYTES: most bytes of one proxy's log read per poll (the rest on the next). */
  egressDenialMaxBytes: number;
  /**
   * MCP_PORTAL_ALLOWED_IMAGES: the image allow-list when policy.json gives no `allowed_images` (policy.json wins
   * when it does). Undefined when unset: then any image from any registry may run.
   */
  defaultAllowedImages: string[] | undefined;
  maxFileBytes: number;
  logLevel: string;
  logPretty: boolean;
  /** GitOps setups where git is the only writer: the API refuses every write (403 READ_ONLY). */
  readOnlyApi: boolean;
  locks: LockSettings;
  /** Live-event connections (SSE, WebSocket): per-token cap, and how often their tokens are checked again. */
  live: { maxConnectionsPerToken: number; tokenRecheckMs: number };
  /**
   * MCP_PORTAL_PUBLIC_URL: scheme and host clients reach the gateway at (no port, no path); a server's MCP URL is
   * `<publicUrl>:<host port>/mcp` (`serverUrl`).
   */
  publicUrl: string;
  /** The OpenID Connect provider whose access tokens the gateway and the API accept; undefined: none. */
  oidc: OidcSettings | undefined;
  backend: Backend;
  /** The Swarm backend's settings (README, "Several hosts"). */
  swarm: {
    /** How often nodes and tasks are listed (Swarm sends no task events): bounds how late a failure is seen. */
    pollMs: number;
    /** Swarm's restart policy: on-failure, after this delay. */
    restartDelayMs: number;
    /** This many failed tasks of a service within the window, and none running: CrashLoopBackOff. */
    crashLoopFailures: number;
    crashLoopWindowMs: number;
  };
}

export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
}

export function loadConfig(
  env: NodeJS.ProcessEnv,
  overrides: Record<string, string | boolean | undefined> = {},
): Config {
  const merged: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(env))
    if (key.startsWith("MCP_PORTAL_") || key.startsWith("LOG_")) merged[key] = value;
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) merged[key] = value;
  const parsed = RawConfig.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  const c = parsed.data;
  const dataDir = path.resolve(c.MCP_PORTAL_DATA_DIR);
  const overlays = c.MCP_PORTAL_OVERLAYS.split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const name of overlays) {
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(name))
      throw new ConfigError(`MCP_PORTAL_OVERLAYS: "${name}" is not a valid overlay name`);
  }
  const portsPerUser = c.MCP_PORTAL_PORTS_PER_USER;
  const defaultAllowedImages = parseAllowedImages(c.MCP_PORTAL_ALLOWED_IMAGES);
  const egressExtraHosts = parseExtraHosts(c.MCP_PORTAL_EGRESS_EXTRA_HOSTS);
  let publicUrl: string;
  let oidc: OidcSettings | undefined;
  try {
    publicUrl = parsePublicUrl(c.MCP_PORTAL_PUBLIC_URL, c.MCP_PORTAL_PUBLISH_HOST);
    oidc = parseOidcSettings({
      issuer: c.MCP_PORTAL_OIDC_ISSUER,
      audience: c.MCP_PORTAL_OIDC_AUDIENCE,
      apiAudience: c.MCP_PORTAL_OIDC_API_AUDIENCE,
      userClaim: c.MCP_PORTAL_OIDC_USER_CLAIM,
      adminClaim: c.MCP_PORTAL_OIDC_ADMIN_CLAIM,
      adminValue: c.MCP_PORTAL_OIDC_ADMIN_VALUE,
      algorithms: c.MCP_PORTAL_OIDC_ALGORITHMS,
      clockSkewSeconds: c.MCP_PORTAL_OIDC_CLOCK_SKEW_SECONDS,
      jwksCacheSeconds: c.MCP_PORTAL_OIDC_JWKS_CACHE_SECONDS,
      scopes: c.MCP_PORTAL_OIDC_SCOPES,
      timeoutSeconds: c.MCP_PORTAL_OIDC_TIMEOUT_SECONDS,
    });
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    dataDir,
    stateDir: path.resolve(c.MCP_PORTAL_STATE_DIR ?? path.join(dataDir, ".mcp-portal")),
    installation: c.MCP_PORTAL_INSTALLATION,
    listen: c.MCP_PORTAL_LISTEN,
    overlays,
    portRange: { start: c.MCP_PORTAL_PORT_RANGE_START, end: c.MCP_PORTAL_PORT_RANGE_END },
    portsPerUser,
    excludedPorts: c.MCP_PORTAL_PORT_EXCLUDE,
    publishHost: c.MCP_PORTAL_PUBLISH_HOST,
    gateway: c.MCP_PORTAL_GATEWAY === "on",
    defaultLimits: {
      max_containers: c.MCP_PORTAL_USER_MAX_CONTAINERS,
      max_memory_mb: c.MCP_PORTAL_USER_MAX_MEMORY_MB,
      max_cpu_shares: c.MCP_PORTAL_USER_MAX_CPU_SHARES,
      max_ports: portsPerUser,
    },
    subnetPool: {
      base: c.MCP_PORTAL_USER_NETWORK_SUBNET_BASE,
      prefixLength: c.MCP_PORTAL_USER_NETWORK_SUBNET_SIZE,
    },
    resyncSeconds: c.MCP_PORTAL_RESYNC_SECONDS,
    rereadSeconds: c.MCP_PORTAL_REREAD_SECONDS,
    relistSeconds: c.MCP_PORTAL_RELIST_SECONDS,
    missingFileGraceSeconds: c.MCP_PORTAL_MISSING_FILE_GRACE_SECONDS,
    concurrency: c.MCP_PORTAL_CONCURRENCY,
    debounceMs: c.MCP_PORTAL_DEBOUNCE_MS,
    dockerTimeoutMs: c.MCP_PORTAL_DOCKER_TIMEOUT_SECONDS * 1000,
    stopTimeoutSeconds: c.MCP_PORTAL_STOP_TIMEOUT_SECONDS,
    massPrune: {
      share: c.MCP_PORTAL_MASS_PRUNE_SHARE,
      minimum: c.MCP_PORTAL_MASS_PRUNE_MIN,
      allow: c.MCP_PORTAL_ALLOW_MASS_PRUNE,
    },
    containerUser: c.MCP_PORTAL_CONTAINER_USER,
    egressProxyImage: c.MCP_PORTAL_EGRESS_PROXY_IMAGE,
    egressExtraHosts,
    egressDenialPollSeconds: c.MCP_PORTAL_EGRESS_DENIAL_POLL_SECONDS,
    egressDenialMaxBytes: c.MCP_PORTAL_EGRESS_DENIAL_MAX_BYTES,
    defaultAllowedImages,
    maxFileBytes: c.MCP_PORTAL_MAX_FILE_BYTES,
    logLevel: c.LOG_LEVEL,
    logPretty: c.LOG_PRETTY,
    readOnlyApi: c.MCP_PORTAL_READ_ONLY_API,
    locks: { waitMs: c.MCP_PORTAL_LOCK_WAIT_MS, staleMs: c.MCP_PORTAL_LOCK_STALE_MS },
    live: {
      maxConnectionsPerToken: c.MCP_PORTAL_LIVE_MAX_CONNECTIONS_PER_TOKEN,
      tokenRecheckMs: c.MCP_PORTAL_LIVE_TOKEN_RECHECK_MS,
    },
    publicUrl,
    oidc,
    backend: c.MCP_PORTAL_BACKEND,
    swarm: {
      pollMs: c.MCP_PORTAL_SWARM_POLL_SECONDS * 1000,
      restartDelayMs: c.MCP_PORTAL_SWARM_RESTART_DELAY_SECONDS * 1000,
      crashLoopFailures: c.MCP_PORTAL_SWARM_CRASHLOOP_FAILURES,
      crashLoopWindowMs: c.MCP_PORTAL_SWARM_CRASHLOOP_WINDOW_SECONDS * 1000,
    },
  };
}

/** MCP_PORTAL_ALLOWED_IMAGES: comma-separated image globs, as policy.json's allowed_images; empty means unset. */
function parseAllowedImages(value: string): string[] | undefined {
  const globs = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (globs.length === 0) return undefined;
  if (globs.length > MAX_IMAGE_GLOBS)
    throw new ConfigError(`MCP_PORTAL_ALLOWED_IMAGES: more than ${MAX_IMAGE_GLOBS} globs`);
  for (const glob of globs) {
    if (!ImageGlob.safeParse(glob).success)
      throw new ConfigError(
        `MCP_PORTAL_ALLOWED_IMAGES: "${glob.slice(0, 64)}" is longer than 255 characters`,
      );
  }
  return globs;
}

/** Most entries of MCP_PORTAL_EGRESS_EXTRA_HOSTS. */
const MAX_EGRESS_EXTRA_HOSTS = 256;

/** `name=address,name=address` (IPv4 addresses) -> Docker's `name:address` extra hosts. */
function parseExtraHosts(value: string): string[] {
  const entries = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (entries.length > MAX_EGRESS_EXTRA_HOSTS)
    throw new ConfigError(`MCP_PORTAL_EGRESS_EXTRA_HOSTS: more than ${MAX_EGRESS_EXTRA_HOSTS} entries`);
  return entries.map((entry) => {
    const match = /^([a-zA-Z0-9](?:[a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?)=(\d{1,3}(?:\.\d{1,3}){3})$/.exec(entry);
    if (!match || parseIpv4Cidr(`${match[2]}/32`) === undefined)
      throw new ConfigError(
        `MCP_PORTAL_EGRESS_EXTRA_HOSTS: "${entry.slice(0, 64)}" is not name=IPv4-address`,
      );
    return `${match[1]!.toLowerCase()}:${match[2]}`;
  });
}

/** The lock settings alone, for commands that do not load the whole configuration (secrets, tokens). */
export function loadLockSettings(env: NodeJS.ProcessEnv): LockSettings {
  const parsed = z.object(LOCK_FIELDS).safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  return { waitMs: parsed.data.MCP_PORTAL_LOCK_WAIT_MS, staleMs: parsed.data.MCP_PORTAL_LOCK_STALE_MS };
}
