import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { type Caller, actorOf } from "../../auth/authenticate.js";
import type { PortalEvent } from "../../events/event-bus.js";
import { UserId } from "../../util/ids.js";
import { ApiError, badRequest } from "../errors.js";
import type { Credential, LiveHub } from "../live/live-hub.js";
import { sseSink, wsSink } from "../live/sinks.js";
import { type ApiRoute, type RegisterOptions, type RouteMeta, defineRoute, stateOf } from "../route.js";
import { problemsFromZod } from "../../validate/problem.js";

export const EventsQuery = z.object({ user_id: UserId.optional() });

export const EVENT_TYPES = [
  "USER_CATALOG_UPDATED",
  "SERVER_STATUS_CHANGED",
  "RESOURCE_USAGE_UPDATE",
] as const;

const EVENTS_DESCRIPTION =
  `Live events (${EVENT_TYPES.join(", ")}). A user token receives its own user's events; the admin token receives ` +
  "every user's, or one user's with `?user_id=`. A client that does not keep up (over the buffer cap) is " +
  "disconnected; reconnect and re-read the state (events are hints, the files and status are the truth).";

/** Which events a caller may see; a user token asking for another user is refused. */
export function eventFilter(
  caller: Caller | undefined,
  userId: string | undefined,
): (event: PortalEvent) => boolean {
  if (caller === undefined) throw new ApiError(401, "UNAUTHENTICATED", "missing bearer token");
  if (caller.kind === "user") {
    if (userId !== undefined && userId !== caller.userId) {
      throw new ApiError(403, "FORBIDDEN", "a user token receives only its own user's events");
    }
    return (event) => event.data.user_id === caller.userId;
  }
  return userId === undefined ? () => true : (event) => event.data.user_id === userId;
}

export { actorOf };

/** An OIDC access token is held to its expiry; a static user token to its existence in tokens.json. */
function credentialOf(caller: Caller | undefined): Credential {
  if (caller === undefined) throw new ApiError(401, "UNAUTHENTICATED", "missing bearer token");
  if (caller.oidc) return { kind: "expiring", key: caller.oidc.tokenKey, expiresAt: caller.oidc.expiresAt };
  return caller.kind === "admin" ? { kind: "admin" } : { kind: "token", tokenId: caller.tokenId };
}

/** The per-token cap on live connections; an over-cap request is answered 429 before any stream starts. */
function admit(hub: LiveHub, credential: Credential, maxPerToken: number): void {
  if (hub.countFor(credential) < maxPerToken) return;
  throw new ApiError(
    429,
    "TOO_MANY_STREAMS",
    `this token already has ${maxPerToken} live-event connection(s) open (MCP_PORTAL_LIVE_MAX_CONNECTIONS_PER_TOKEN); close one first`,
  );
}

export function sseRoute(hub: LiveHub, maxPerToken: number): ApiRoute {
  return defineRoute({
    method: "GET",
    path: "/events",
    access: "token",
    tag: "events",
    summary: "Live events as server-sent events",
    description: `${EVENTS_DESCRIPTION} Each event is \`event: <TYPE>\` + \`data: <json>\`; a comment line every 15 s keeps the connection alive.`,
    query: EventsQuery,
    produces: "text/event-stream",
    responses: {
      200: "An endless text/event-stream",
      400: "Malformed query",
      401: "Missing or invalid token",
      403: "Another user's events",
      429: "This token has too many live-event connections open",
    },
    handle: ({ query, caller, reply }) => {
      const accepts = eventFilter(caller, query.user_id);
      const credential = credentialOf(caller);
      admit(hub, credential, maxPerToken);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      raw.write("retry: 3000\n: connected\n\n");
      const forget = hub.open(sseSink(raw, actorOf(caller)), accepts, credential);
      raw.on("close", forget);
      return Promise.resolve(undefined);
    },
  });
}

export const WS_ROUTE_META: RouteMeta = {
  method: "GET",
  path: "/ws",
  access: "token",
  tag: "events",
  summary: "Live events over WebSocket",
  description: `${EVENTS_DESCRIPTION} Upgrade with \`Authorization: Bearer <token>\`; each event is one text frame \`{"event": TYPE, "data": {...}}\`; the server pings every 15 s.`,
  query: EventsQuery,
  websocket: true,
  responses: {
    101: "Switching protocols",
    400: "Malformed query",
    401: "Missing or invalid token",
    403: "Another user's events",
    429: "This token has too many live-event connections open",
  },
};

/** GET /ws: the guard and the query check run as HTTP hooks, so a refused upgrade gets a normal error answer. */
export function registerWebSocketRoute(
  instance: FastifyInstance,
  hub: LiveHub,
  options: RegisterOptions,
  maxPerToken: number,
): void {
  const filters = new WeakMap<FastifyRequest, (event: PortalEvent) => boolean>();
  instance.route({
    method: "GET",
    url: WS_ROUTE_META.path,
    websocket: true,
    exposeHeadRoute: false,
    onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
      await options.guard.check(request, reply, WS_ROUTE_META, stateOf(options.states, request));
    },
    preHandler: (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) => {
      const query = EventsQuery.safeParse(request.query);
      if (!query.success) return done(badRequest("invalid query", problemsFromZod("query", query.error)));
      try {
        const caller = stateOf(options.states, request).caller;
        filters.set(request, eventFilter(caller, query.data.user_id));
        admit(hub, credentialOf(caller), maxPerToken);
      } catch (error) {
        return done(error as Error);
      }
      done();
    },
    handler: (socket, request) => {
      const accepts = filters.get(request) ?? (() => false);
      const caller = stateOf(options.states, request).caller;
      const credential = credentialOf(caller);
      // Upgrades admitted at the same moment may together pass the cap: the second look closes the extra one.
      if (hub.countFor(credential) >= maxPerToken) {
        socket.close(1008, "too many live-event connections for this token");
        return;
      }
      const forget = hub.open(wsSink(socket, actorOf(caller)), accepts, credential);
      socket.on("close", forget);
      // Clients only listen; anything they send is ignored.
      socket.on("message", () => undefined);
    },
  });
}
