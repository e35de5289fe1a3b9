import fastifyWebsocket from "@fastify/websocket";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { loadAdminToken } from "../auth/admin-token.js";
import { Authenticator } from "../auth/authenticate.js";
import { OidcVerifier } from "../auth/oidc.js";
import { TokenCache } from "../auth/token-store.js";
import { UserId } from "../util/ids.js";
import { PORTAL_VERSION } from "../version.js";
import { type ApiContext, type ApiDeps, resolveLimits } from "./deps.js";
import { ApiError, errorBody, handleError } from "./errors.js";
import { DEFAULT_LOCK_SETTINGS } from "../util/file-lock.js";
import { StateLocks } from "../util/state-locks.js";
import { LiveHub } from "./live/live-hub.js";
import { buildOpenApi } from "./openapi.js";
import { API_PREFIX } from "./prefix.js";
import {
  type ApiRoute,
  type Guard,
  type RegisterOptions,
  type RequestState,
  type RouteMeta,
  defineRoute,
  registerRoute,
  stateOf,
} from "./route.js";
import { YAML_CONTENT_TYPES, adminRoutes } from "./routes/admin-routes.js";
import { WS_ROUTE_META, actorOf, registerWebSocketRoute, sseRoute } from "./routes/event-routes.js";
import { userRoutes } from "./routes/user-routes.js";
import { catalogPreviewRoutes } from "./routes/catalog-preview-routes.js";
import { catalogReadRoutes } from "./routes/catalog-read-routes.js";
import { enabledReadRoutes } from "./routes/enabled-read-routes.js";
import { runtimeRoutes } from "./routes/runtime-routes.js";
import { sessionRoutes } from "./routes/session-routes.js";

export type { ApiDeps, ApiLimits } from "./deps.js";
export type { ConsoleApiDeps } from "./console-deps.js";
export { API_PREFIX } from "./prefix.js";

/** What registerApi hands back: for tests and for the daemon's logs. */
export interface ApiHandle {
  /** Every route under /api/v1, as listed in the OpenAPI document. */
  routes: readonly RouteMeta[];
  hub: LiveHub;
  adminTokenConfigured: boolean;
}

/**
 * Registers the REST API, the live events (server-sent events and WebSocket) and the OpenAPI document under
 * /api/v1 on the daemon's fastify instance; call before `listen`. Reads the admin token from `deps.env`
 * (throws AdminTokenError on a bad one) and user tokens from <state-dir>/tokens.json.
 */
export async function registerApi(server: FastifyInstance, deps: ApiDeps): Promise<ApiHandle> {
  const adminToken = await loadAdminToken(deps.env);
  const limits = resolveLimits(deps);
  const logger = deps.logger.child({ component: "api" });
  const tokens = new TokenCache(deps.config.stateDir, (message) =>
    logger.error({ err: message }, "tokens.json is invalid: user tokens are refused until it is fixed"),
  );
  const locks = new StateLocks(deps.config.stateDir, deps.config.locks ?? DEFAULT_LOCK_SETTINGS);
  const ctx: ApiContext = { deps, limits, locks, now: deps.now ?? (() => new Date()) };
  const oidcSettings = deps.config.oidc;
  const oidc = oidcSettings ? new OidcVerifier(oidcSettings) : undefined;
  // The API's own audience: without MCP_PORTAL_OIDC_API_AUDIENCE it accepts no OIDC token.
  const audiences = oidcSettings?.apiAudience !== undefined ? [oidcSettings.apiAudience] : [];
  const hub = new LiveHub(deps.events, logger, {
    maxBufferedBytes: limits.streamBufferBytes,
    heartbeatMs: limits.heartbeatMs,
    recheckMs: limits.tokenRecheckMs,
    validTokens: async () => {
      const snapshot = await tokens.current();
      return snapshot.status === "ok" ? (id) => snapshot.byId.has(id) : () => false;
    },
  });
  const states = new WeakMap<FastifyRequest, RequestState>();
  const options: RegisterOptions = {
    guard: createGuard(new Authenticator(adminToken, tokens, oidc), audiences, deps.readOnly === true),
    states,
    defaultBodyLimit: limits.bodyBytes,
    onWriteDone: (request, reply, meta, state) => auditWrite(deps, request, reply, meta, state),
  };
  const routes: ApiRoute[] = [
    ...userRoutes(ctx),
    ...adminRoutes(ctx),
    sseRoute(hub, limits.liveConnectionsPerToken),
    // The console's reads (session, engine views, catalog files for editing).
    ...sessionRoutes(ctx),
    ...runtimeRoutes(ctx),
    ...enabledReadRoutes(ctx),
    ...catalogReadRoutes(ctx),
    ...catalogPreviewRoutes(ctx),
  ];
  const metas: RouteMeta[] = [];
  let document: Record<string, unknown> | undefined;
  const docs = defineRoute({
    method: "GET",
    path: "/openapi.json",
    access: "public",
    tag: "meta",
    summary: "This API's OpenAPI 3.1 document",
    responses: { 200: "The document" },
    handle: () => {
      document ??= buildOpenApi(metas, PORTAL_VERSION);
      return Promise.resolve({ body: document });
    },
  });
  metas.push(...routes.map((r) => r.meta), WS_ROUTE_META, docs.meta);

  await server.register(
    async (api) => {
      await api.register(fastifyWebsocket, {
        options: { maxPayload: 64 * 1024 },
        // Our own preClose ends the connections (hub.closeAll); do not wait for clients' close frames here.
        preClose: (done) => done(),
      });
      api.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
        const code = error instanceof ApiError ? error.code : (error.code ?? "INTERNAL");
        stateOf(states, request).errorCode = code;
        return handleError(error, request, reply);
      });
      api.setNotFoundHandler((request, reply) =>
        reply
          .code(404)
          .send(errorBody(404, "NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`)),
      );
      api.addContentTypeParser(
        YAML_CONTENT_TYPES.filter((type) => type !== "text/plain"),
        { parseAs: "string" },
        (_request, body, done) => done(null, body),
      );
      api.addHook("preClose", (done) => {
        hub.closeAll();
        done();
      });
      for (const route of [...routes, docs]) registerRoute(api, route, options);
      registerWebSocketRoute(api, hub, options, limits.liveConnectionsPerToken);
    },
    { prefix: API_PREFIX },
  );

  if (adminToken === undefined) {
    logger.warn("no admin token (MCP_PORTAL_ADMIN_TOKEN): admin endpoints refuse every request");
  }
  if (deps.readOnly === true) logger.info("API is read-only: every write answers 403");
  return { routes: metas, hub, adminTokenConfigured: adminToken !== undefined };
}

function createGuard(authenticator: Authenticator, audiences: readonly string[], readOnly: boolean): Guard {
  return {
    async check(request, reply, meta, state) {
      if (meta.access === "public") return;
      const result = await authenticator.authenticate(request.headers.authorization, { audiences });
      if (!result.ok) {
        if (result.statusCode === 401)
          reply.header(
            "www-authenticate",
            result.invalidToken
              ? 'Bearer realm="mcp-portal", error="invalid_token"'
              : 'Bearer realm="mcp-portal"',
          );
        if (result.statusCode === 503) reply.header("retry-after", "5");
        throw new ApiError(result.statusCode, result.code, result.message);
      }
      const caller = result.caller;
      state.caller = caller;
      if (meta.access === "admin" && caller.kind !== "admin") {
        throw new ApiError(403, "FORBIDDEN", "this endpoint needs the admin token");
      }
      if (meta.access === "user" && caller.kind === "user" && pathUserId(request) !== caller.userId) {
        throw new ApiError(403, "FORBIDDEN", `this token may only access user ${caller.userId}`);
      }
      if (readOnly && meta.method !== "GET") {
        throw new ApiError(
          403,
          "READ_ONLY",
          "the API is read-only (--read-only-api): change the desired state in git instead",
        );
      }
    },
  };
}

function pathUserId(request: FastifyRequest): string | undefined {
  const params = request.params as Record<string, unknown> | undefined;
  const value = params?.user_id;
  return typeof value === "string" ? value : undefined;
}

/** One audit line per write request, whatever its outcome; secrets by name only. */
async function auditWrite(
  deps: ApiDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  meta: RouteMeta,
  state: RequestState,
): Promise<void> {
  const status = reply.statusCode;
  const userId = UserId.safeParse(pathUserId(request));
  const userAgent = request.headers["user-agent"];
  await deps.audit.write({
    event_type: meta.audit?.eventType ?? "API_REQUEST",
    user_id: userId.success ? userId.data : null,
    action: meta.audit?.action ?? `${meta.method} ${meta.path}`,
    resource: state.note.resource ?? request.url.split("?")[0] ?? request.url,
    result: status < 400 ? "success" : status === 401 || status === 403 ? "blocked" : "failure",
    details: {
      method: meta.method,
      route: `${API_PREFIX}${meta.path}`,
      status_code: status,
      actor: actorOf(state.caller),
      ...(state.errorCode !== undefined ? { error_code: state.errorCode } : {}),
      ...state.note.details,
    },
    ip_address: request.ip,
    ...(typeof userAgent === "string" ? { user_agent: userAgent.slice(0, 512) } : {}),
  });
}
