import { realpath } from "node:fs/promises";
import type { Config } from "../config.js";
import type { EventBus } from "../events/event-bus.js";
import type { AuditWriter } from "../observability/audit.js";
import type { Logger } from "../observability/logger.js";
import type { GlobalInputsStore } from "../reconcile/desired-inputs.js";
import type { PruneGuardState } from "../reconcile/prune-guard.js";
import type { StatusStore } from "../reconcile/status.js";
import type { SecretKeys } from "../reconcile/user-secrets.js";
import type { StateLocks } from "../util/state-locks.js";
import type { ConsoleApiDeps } from "./console-deps.js";

/** What the API needs from the daemon; `registerApi(server, deps)` is the only wiring. */
export interface ApiDeps {
  config: Pick<Config, "dataDir" | "stateDir" | "overlays" | "maxFileBytes"> &
    Partial<Pick<Config, "locks" | "live" | "oidc">>;
  /** Where MCP_PORTAL_ADMIN_TOKEN / MCP_PORTAL_ADMIN_TOKEN_FILE are read from. */
  env: NodeJS.ProcessEnv;
  events: Pick<EventBus, "subscribe">;
  global: Pick<GlobalInputsStore, "get" | "invalidate">;
  statuses: Pick<StatusStore, "file">;
  /** Undefined without MCP_PORTAL_SECRET_KEYS: secret writes answer 503. */
  secrets: SecretKeys | undefined;
  audit: AuditWriter;
  controller: {
    enqueue(userId: string): void;
    /** The mass-prune latch: whether it is tripped, and an operator's release of it. */
    pruneGuard(): PruneGuardState;
    releasePruneGuard(by: string): Promise<void>;
  };
  logger: Logger;
  /** GitOps setups where git is the only writer: every write answers 403 READ_ONLY. */
  readOnly?: boolean;
  limits?: Partial<ApiLimits>;
  now?: () => Date;
  /** What the console's endpoints (session, container logs) need; without it they answer 503. */
  console?: ConsoleApiDeps;
}

export interface ApiLimits {
  /** Request bodies (default 1 MiB). */
  bodyBytes: number;
  /** Catalog uploads and migrations (default the file cap plus 64 KiB). */
  catalogBodyBytes: number;
  /** Bytes a live-event connection may have buffered before it is dropped (default 1 MiB). */
  streamBufferBytes: number;
  /** Server-sent events comment / WebSocket ping interval (default 15 s). */
  heartbeatMs: number;
  /** Backups kept per base catalog (default 20). */
  backupsKept: number;
  /** Live-event connections one token may hold at once (MCP_PORTAL_LIVE_MAX_CONNECTIONS_PER_TOKEN, default 8). */
  liveConnectionsPerToken: number;
  /** How often open live-event connections check that their token still exists (default 1 s). */
  tokenRecheckMs: number;
}

/** Everything the route modules share. */
export interface ApiContext {
  deps: ApiDeps;
  limits: ApiLimits;
  /** The state dir's lock files, shared with the CLI: one per user, one for the base catalogs. */
  locks: StateLocks;
  now: () => Date;
}

export function resolveLimits(deps: ApiDeps): ApiLimits {
  return {
    bodyBytes: 1024 * 1024,
    catalogBodyBytes: deps.config.maxFileBytes + 64 * 1024,
    streamBufferBytes: 1024 * 1024,
    heartbeatMs: 15_000,
    backupsKept: 20,
    liveConnectionsPerToken: deps.config.live?.maxConnectionsPerToken ?? 8,
    tokenRecheckMs: deps.config.live?.tokenRecheckMs ?? 1000,
    ...deps.limits,
  };
}

/**
 * The data dir with symlinks resolved (a git-sync style checkout swap), read and written as one tree, as the
 * reconciler does; the configured path when it cannot be resolved (it does not exist yet).
 */
export async function dataRoot(ctx: ApiContext): Promise<string> {
  try {
    return await realpath(ctx.deps.config.dataDir);
  } catch {
    return ctx.deps.config.dataDir;
  }
}
