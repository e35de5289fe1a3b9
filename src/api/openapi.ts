import { z } from "zod";
import { BaseCatalogFile } from "../schema/catalog.js";
import { ServerConfig } from "../schema/enabled-servers.js";
import { API_PREFIX } from "./prefix.js";
import type { RouteMeta } from "./route.js";

type JsonObject = Record<string, unknown>;

const ERROR_SCHEMA = {
  type: "object",
  required: ["statusCode", "code", "error", "message"],
  properties: {
    statusCode: { type: "integer" },
    code: { type: "string", description: "Machine-readable error code" },
    error: { type: "string" },
    message: { type: "string" },
    problems: {
      type: "array",
      items: { type: "string" },
      description: "`file: path: reason` lines, as `mcp-portal validate` prints them",
    },
  },
};

const SECURITY_SCHEMES = {
  adminToken: {
    type: "http",
    scheme: "bearer",
    description:
      "The admin token (MCP_PORTAL_ADMIN_TOKEN or MCP_PORTAL_ADMIN_TOKEN_FILE): every endpoint, every user.",
  },
  userToken: {
    type: "http",
    scheme: "bearer",
    bearerFormat: "mcp_<id>_<secret>",
    description: "A user token (`mcp-portal tokens create <user>`): only that user's paths and events.",
  },
};

/** File formats shared by several operations, referenced from components. */
const NAMED_SCHEMAS: readonly [z.ZodType, string][] = [
  [BaseCatalogFile, "BaseCatalogFile"],
  [ServerConfig, "ServerConfig"],
];

function security(meta: RouteMeta): JsonObject[] {
  switch (meta.access) {
    case "public":
      return [];
    case "admin":
      return [{ adminToken: [] }];
    default:
      return [{ userToken: [] }, { adminToken: [] }];
  }
}

function operationId(meta: RouteMeta): string {
  const words = `${meta.method.toLowerCase()} ${meta.path.replace(/\{[^}]+\}/g, "")}`
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w !== "");
  return words.map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join("");
}

function unwrapOptional(schema: z.ZodType): { schema: z.ZodType; required: boolean } {
  return schema instanceof z.ZodOptional
    ? { schema: schema.unwrap() as z.ZodType, required: false }
    : { schema, required: true };
}

function strip(schema: JsonObject): JsonObject {
  const { $schema: _schema, $id: _id, ...rest } = schema;
  return rest;
}

/** Path and query parameters from the zod object schemas of a route. */
function parameters(meta: RouteMeta): JsonObject[] {
  const out: JsonObject[] = [];
  for (const [where, schema] of [
    ["path", meta.params],
    ["query", meta.query],
  ] as const) {
    if (schema === undefined) continue;
    const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
      properties?: Record<string, JsonObject>;
      required?: string[];
    };
    for (const [name, property] of Object.entries(json.properties ?? {})) {
      out.push({
        name,
        in: where,
        required: where === "path" || (json.required ?? []).includes(name),
        schema: property,
      });
    }
  }
  return out;
}

/**
 * The OpenAPI 3.1 document of every route in the table: each with its security, parameters and body schema
 * (JSON Schema 2020-12 generated from the same zod schemas the handlers parse with).
 */
export function buildOpenApi(routes: readonly RouteMeta[], version: string): JsonObject {
  const registry = z.registry<{ id: string }>();
  for (const [schema, id] of NAMED_SCHEMAS) registry.add(schema, { id });
  const bodies = new Map<RouteMeta, { id: string; required: boolean }>();
  for (const meta of routes) {
    if (meta.body === undefined) continue;
    const { schema, required } = unwrapOptional(meta.body);
    const known = registry.get(schema)?.id;
    const id = known ?? `${operationId(meta)[0]!.toUpperCase()}${operationId(meta).slice(1)}Request`;
    if (known === undefined) registry.add(schema, { id });
    bodies.set(meta, { id, required: meta.bodyRequired ?? required });
  }
  const generated = z.toJSONSchema(registry, {
    io: "input",
    unrepresentable: "any",
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, JsonObject> };
  const schemas: Record<string, JsonObject> = { Error: ERROR_SCHEMA };
  for (const [id, schema] of Object.entries(generated.schemas)) schemas[id] = strip(schema);

  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const meta of routes) {
    const route = `${API_PREFIX}${meta.path}`;
    const body = bodies.get(meta);
    const operation: JsonObject = {
      operationId: operationId(meta),
      summary: meta.summary,
      ...(meta.description ? { description: meta.description } : {}),
      tags: [meta.tag],
      security: security(meta),
      parameters: parameters(meta),
      ...(body
        ? {
            requestBody: {
              required: body.required,
              content: Object.fromEntries(
                (meta.bodyContentTypes ?? ["application/json"]).map((type) => [
                  type,
                  { schema: { $ref: `#/components/schemas/${body.id}` } },
                ]),
              ),
            },
          }
        : {}),
      responses: Object.fromEntries(
        Object.entries(meta.responses).map(([code, description]) => {
          const status = Number(code);
          if (status >= 400) {
            return [
              code,
              {
                description,
                content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
              },
            ];
          }
          if (status === 101) return [code, { description }];
          return [code, { description, content: { [meta.produces ?? "application/json"]: { schema: {} } } }];
        }),
      ),
      ...(meta.websocket ? { "x-websocket": true } : {}),
    };
    paths[route] ??= {};
    paths[route][meta.method.toLowerCase()] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "mcp-portal API",
      version,
      description:
        "Reads and writes the GitOps desired-state files (validated first, written atomically) and streams live " +
        "events. Without any token configured the API is disabled (403 API_DISABLED); with --read-only-api every " +
        "write answers 403 READ_ONLY.",
    },
    servers: [{ url: "/" }],
    tags: [
      { name: "users", description: "One user's catalog, servers, status and secrets" },
      { name: "admin", description: "Admin token only" },
      { name: "events", description: "Live events" },
      { name: "meta", description: "This document" },
    ],
    paths,
    components: { schemas, securitySchemes: SECURITY_SCHEMES },
  };
}
