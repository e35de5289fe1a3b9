// An API on a fresh fastify instance over a temp data dir, with fakes for the controller and audit log.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Registry } from "prom-client";
import { type ApiDeps, type ApiHandle, type ConsoleApiDeps, registerApi } from "../../../src/api/api.js";
import { type HttpServer, createHttpServer } from "../../../src/api/http-server.js";
import type { OidcSettings } from "../../../src/auth/oidc-settings.js";
import { createToken } from "../../../src/auth/token-store.js";
import { EventBus } from "../../../src/events/event-bus.js";
import type { AuditEventInput } from "../../../src/observability/audit.js";
import { createLogger } from "../../../src/observability/logger.js";
import { GlobalInputsStore } from "../../../src/reconcile/desired-inputs.js";
import type { PruneGuardState } from "../../../src/reconcile/prune-guard.js";
import { StatusStore } from "../../../src/reconcile/status.js";
import { loadDigestKey } from "../../../src/secrets/digest.js";
import { generateKey, parseKeyList } from "../../../src/secrets/key-ring.js";

/** A JSON answer's fields, typed loosely for assertions. */
export type Answer = Record<string, unknown> & { problems: string[]; message: string };

export const answer = (response: { json: <T>() => T }): Answer => response.json<Answer>();

export const ADMIN_TOKEN = "admin-token-for-tests-0123456789";

export function server(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, name: id, image: "mcp/test", tag: "1", ...extra };
}

export interface FixtureOptions {
  adminToken?: string | undefined;
  readOnly?: boolean;
  secretKeys?: boolean;
  /** The key line (`<id>:<base64>`) the API encrypts with; a fresh one by default. */
  secretKey?: string;
  limits?: ApiDeps["limits"];
  logLines?: string[];
  /** The console's engine views (GET containers, logs); absent: they answer 503. */
  console?: ConsoleApiDeps;
  overlays?: string[];
  /** An OpenID Connect provider whose tokens the API accepts (with its apiAudience). */
  oidc?: OidcSettings;
}

export interface ApiFixture {
  http: HttpServer;
  api: ApiHandle;
  /** Every route fastify registered after the fixture's hook (method, url). */
  routes: { method: string; url: string }[];
  dataDir: string;
  stateDir: string;
  bus: EventBus;
  enqueued: string[];
  /** Who released the prune guard through the API; `tripPruneGuard` makes it tripped for a test. */
  released: string[];
  tripPruneGuard(pending: number): void;
  audits: AuditEventInput[];
  admin: Record<string, string>;
  tokenFor(userId: string): Promise<Record<string, string>>;
  write(rel: string, content: unknown): Promise<void>;
  read(rel: string): Promise<string | undefined>;
  dispose(): Promise<void>;
}

export async function apiFixture(options: FixtureOptions = {}): Promise<ApiFixture> {
  const root = await mkdtemp(path.join(tmpdir(), "mcp-portal-api-"));
  const dataDir = path.join(root, "data");
  const stateDir = path.join(root, "state");
  await mkdir(dataDir, { recursive: true });
  const write = async (rel: string, content: unknown) => {
    const file = path.join(dataDir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, typeof content === "string" ? content : `${JSON.stringify(content, null, 2)}\n`);
  };
  const lines = options.logLines ?? [];
  const logger = createLogger({
    level: "info",
    destination: { write: (line: string) => void lines.push(line) },
  });
  const http = createHttpServer({
    registry: new Registry(),
    logger,
    health: { isShuttingDown: () => false, dockerReachable: () => true, firstSyncDone: () => true },
  });
  const keyRing = parseKeyList(options.secretKey ?? generateKey("k1"));
  const enqueued: string[] = [];
  const released: string[] = [];
  let pruneGuard: PruneGuardState = { tripped: false, pending: 0 };
  const audits: AuditEventInput[] = [];
  const bus = new EventBus();
  const adminToken = "adminToken" in options ? options.adminToken : ADMIN_TOKEN;
  const routes: { method: string; url: string }[] = [];
  http.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });
  const api = await registerApi(http, {
    config: {
      dataDir,
      stateDir,
      overlays: options.overlays ?? [],
      maxFileBytes: 5 * 1024 * 1024,
      ...(options.oidc ? { oidc: options.oidc } : {}),
    },
    env: adminToken === undefined ? {} : { MCP_PORTAL_ADMIN_TOKEN: adminToken },
    events: bus,
    global: new GlobalInputsStore(options.overlays ?? [], 5 * 1024 * 1024),
    statuses: new StatusStore(stateDir),
    secrets:
      options.secretKeys === false
        ? undefined
        : { keyRing, digestKey: await loadDigestKey(stateDir, keyRing) },
    audit: {
      write: (event) => {
        audits.push(event);
        return Promise.resolve(true);
      },
    },
    controller: {
      enqueue: (userId) => void enqueued.push(userId),
      pruneGuard: () => pruneGuard,
      releasePruneGuard: (by) => {
        pruneGuard = { tripped: false, pending: 0 };
        released.push(by);
        return Promise.resolve();
      },
    },
    logger,
    readOnly: options.readOnly === true,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.console ? { console: options.console } : {}),
  });
  return {
    http,
    api,
    routes,
    dataDir,
    stateDir,
    bus,
    enqueued,
    released,
    tripPruneGuard: (pending) => {
      pruneGuard = { tripped: true, reason: "test", trippedAt: "2026-11-30T00:00:00.000Z", pending };
    },
    audits,
    admin: { authorization: `Bearer ${adminToken ?? ""}` },
    tokenFor: async (userId) => ({ authorization: `Bearer ${(await createToken(stateDir, userId)).token}` }),
    write,
    read: async (rel) => readFile(path.join(dataDir, rel), "utf8").catch(() => undefined),
    dispose: async () => {
      await http.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
