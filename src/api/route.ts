import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Caller } from "../auth/authenticate.js";
import type { AuditEventType } from "../observability/audit.js";
import { type Problem, problemsFromZod } from "../validate/problem.js";
import { badRequest } from "./errors.js";

/*
 * One table of routes drives both the fastify registration (auth, read-only mode, zod parsing, audit) and the
 * OpenAPI document, so the document cannot miss an endpoint.
 */

/** public: no token; token: any valid token; user: the token of the path's {user_id}, or admin; admin: admin only. */
export type Access = "public" | "token" | "user" | "admin";
export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

/** What a write route records in the audit log (filled in by the handler as it learns more). */
export interface AuditNote {
  resource?: string;
  details?: Record<string, unknown>;
}

export interface RouteContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  /** The request body as sent (after a successful parse it has the schema's input shape). */
  rawBody: unknown;
  /** Undefined only on public routes. */
  caller: Caller | undefined;
  request: FastifyRequest;
  reply: FastifyReply;
  /** Adds resource and details to this request's audit line (write routes). */
  audit: (note: AuditNote) => void;
}

/** A JSON answer; `undefined` means the handler took over the reply (streams). */
export type RouteResult = { status?: number; body: unknown } | undefined;

/** Where body problems belong when the body (or part of it) becomes a desired-state file. */
export interface BodyFile {
  file: string;
  /** Path inside the body where the file's content starts (`[]`: the whole body). */
  at: readonly (string | number)[];
}

export interface RouteMeta {
  method: HttpMethod;
  /** OpenAPI style, relative to /api/v1: `/users/{user_id}/catalog`. */
  path: string;
  access: Access;
  summary: string;
  description?: string;
  tag: string;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** Content types the body may have (default application/json). */
  bodyContentTypes?: readonly string[];
  bodyRequired?: boolean;
  bodyLimit?: number;
  /** Content type of a successful answer (default application/json). */
  produces?: string;
  responses: Readonly<Record<number, string>>;
  /** Write routes: the audit action and event type. */
  audit?: { action: string; eventType?: AuditEventType };
  /** A WebSocket route: registered separately, listed in the OpenAPI document. */
  websocket?: boolean;
}

export interface RouteDef<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> extends RouteMeta {
  params?: P;
  query?: Q;
  body?: B;
  bodyFile?: (rawBody: unknown, rawParams: Readonly<Record<string, string>>) => BodyFile | undefined;
  handle: (ctx: RouteContext<z.output<P>, z.output<Q>, z.output<B>>) => Promise<RouteResult>;
}

/** Per-request state shared by the hooks and the handler. */
export interface RequestState {
  caller?: Caller;
  note: AuditNote;
  errorCode?: string;
}

export interface ApiRoute {
  meta: RouteMeta;
  run(request: FastifyRequest, reply: FastifyReply, state: RequestState): Promise<RouteResult>;
}

export function defineRoute<
  P extends z.ZodType = z.ZodUnknown,
  Q extends z.ZodType = z.ZodUnknown,
  B extends z.ZodType = z.ZodUnknown,
>(def: RouteDef<P, Q, B>): ApiRoute {
  const { handle, bodyFile, ...meta } = def;
  return {
    meta,
    async run(request, reply, state) {
      const rawParams = stringRecord(request.params);
      const params = parse(def.params, request.params, "path");
      const query = parse(def.query, request.query, "query");
      const body = parse(def.body, request.body, "request body", bodyFile?.(request.body, rawParams));
      return handle({
        params,
        query,
        body,
        rawBody: request.body,
        caller: state.caller,
        request,
        reply,
        audit: (note) => {
          if (note.resource !== undefined) state.note.resource = note.resource;
          state.note.details = { ...state.note.details, ...note.details };
        },
      });
    },
  };
}

function parse<S extends z.ZodType>(
  schema: S | undefined,
  value: unknown,
  label: string,
  target?: BodyFile,
): z.output<S> {
  // Without a schema the route ignores this part of the request (its type is `unknown`).
  if (schema === undefined) return value as z.output<S>;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw badRequest(`invalid ${label}`, problemsOf(parsed.error, label, target));
}

/** Issues inside the part of the body that becomes a file are reported on that file, as `validate` would. */
function problemsOf(error: z.ZodError, label: string, target: BodyFile | undefined): Problem[] {
  return error.issues.flatMap((issue) => {
    const inside = target !== undefined && target.at.every((segment, i) => issue.path[i] === segment);
    const file = inside ? target.file : label;
    const path = inside ? issue.path.slice(target.at.length) : issue.path;
    return problemsFromZod(file, new z.ZodError([{ ...issue, path }]));
  });
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value !== "object" || value === null) return out;
  for (const [key, v] of Object.entries(value)) if (typeof v === "string") out[key] = v;
  return out;
}

/** `/users/{user_id}` → `/users/:user_id`. */
export function fastifyPath(path: string): string {
  return path.replace(/\{([A-Za-z0-9_]+)\}/g, ":$1");
}

export interface Guard {
  /** Authenticates and authorises the request; throws ApiError. */
  check(request: FastifyRequest, reply: FastifyReply, meta: RouteMeta, state: RequestState): Promise<void>;
}

export interface RegisterOptions {
  guard: Guard;
  states: WeakMap<FastifyRequest, RequestState>;
  defaultBodyLimit: number;
  onWriteDone(
    request: FastifyRequest,
    reply: FastifyReply,
    meta: RouteMeta,
    state: RequestState,
  ): Promise<void>;
}

export function stateOf(
  states: WeakMap<FastifyRequest, RequestState>,
  request: FastifyRequest,
): RequestState {
  let state = states.get(request);
  if (state === undefined) {
    state = { note: {} };
    states.set(request, state);
  }
  return state;
}

export function registerRoute(instance: FastifyInstance, route: ApiRoute, options: RegisterOptions): void {
  const { meta } = route;
  const isWrite = meta.method !== "GET";
  instance.route({
    method: meta.method,
    url: fastifyPath(meta.path),
    // HEAD is not part of the API (and would hold an event stream open for nothing).
    exposeHeadRoute: false,
    bodyLimit: meta.bodyLimit ?? options.defaultBodyLimit,
    onRequest: async (request, reply) => {
      await options.guard.check(request, reply, meta, stateOf(options.states, request));
    },
    ...(isWrite
      ? {
          onResponse: async (request: FastifyRequest, reply: FastifyReply) => {
            await options.onWriteDone(request, reply, meta, stateOf(options.states, request));
          },
        }
      : {}),
    handler: async (request, reply) => {
      const result = await route.run(request, reply, stateOf(options.states, request));
      if (result === undefined) return reply;
      return reply.code(result.status ?? 200).send(result.body);
    },
  });
}
