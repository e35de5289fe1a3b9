import { z } from "zod";

/*
 * The subset of the official MCP registry's server.json (camelCase, the published dated schemas from 2025-09-29
 * on) that the importer reads, and the registry API's list page around it. Objects stay open (the published
 * schema allows extra fields and `_meta` extensions); the fields we read are checked as the schema defines them.
 */

/** `https://static.modelcontextprotocol.io/schemas/<date>/server.schema.json` */
const SCHEMA_URL =
  /^https:\/\/static\.modelcontextprotocol\.io\/schemas\/(\d{4}-\d{2}-\d{2})\/server\.schema\.json$/;

/** The published dated server schemas this importer reads, oldest first; the last is "the latest". */
export const SUPPORTED_SCHEMA_DATES = ["2025-09-29", "2025-10-17", "2025-12-11"] as const;
export const LATEST_SCHEMA_DATE = SUPPORTED_SCHEMA_DATES[SUPPORTED_SCHEMA_DATES.length - 1]!;

/** Published dates before 2025-09-29, with what sets them apart, for the refusal message. */
const OLDER_SCHEMA_DATES: Readonly<Record<string, string>> = {
  "2025-07-09": "snake_case fields such as registry_type and environment_variables",
  "2025-09-16": "registry-managed status and official _meta inside the document",
};

export type SchemaVersion = { ok: true; date: string; declared: boolean } | { ok: false; reason: string };

/** Which schema a document says it follows; documents without `$schema` are read as the latest. */
export function schemaVersionOf(document: unknown): SchemaVersion {
  const declared =
    typeof document === "object" && document !== null
      ? (document as { $schema?: unknown }).$schema
      : undefined;
  if (declared === undefined) return { ok: true, date: LATEST_SCHEMA_DATE, declared: false };
  const supported = `supported: ${SUPPORTED_SCHEMA_DATES.join(", ")}`;
  if (typeof declared !== "string") return { ok: false, reason: `"$schema" is not a string (${supported})` };
  const date = SCHEMA_URL.exec(declared)?.[1];
  if (date === undefined) {
    return {
      ok: false,
      reason: `"$schema" ${JSON.stringify(declared)} is not a published dated MCP server schema (${supported}; without "$schema" a document is read as ${LATEST_SCHEMA_DATE})`,
    };
  }
  if ((SUPPORTED_SCHEMA_DATES as readonly string[]).includes(date)) return { ok: true, date, declared: true };
  const older = OLDER_SCHEMA_DATES[date];
  if (older !== undefined || date < SUPPORTED_SCHEMA_DATES[0]) {
    return {
      ok: false,
      reason: `written for the ${date} server schema${older ? ` (${older})` : ""}, which this importer does not read (${supported}); republish it with the registry's current publisher tool`,
    };
  }
  return {
    ok: false,
    reason: `written for the ${date} server schema, newer than this importer knows (${supported})`,
  };
}

const InputFormat = z.enum(["string", "number", "boolean", "filepath"]);

/** An input as the schema's `Input`: a fixed value, or what a user would be asked for. */
export const Input = z.looseObject({
  value: z.string().optional(),
  default: z.string().optional(),
  description: z.string().optional(),
  placeholder: z.string().optional(),
  isRequired: z.boolean().optional(),
  isSecret: z.boolean().optional(),
  format: InputFormat.optional(),
  choices: z.array(z.string()).optional(),
});
export type Input = z.infer<typeof Input>;

const InputWithVariables = Input.extend({ variables: z.record(z.string(), Input).optional() });
export type InputWithVariables = z.infer<typeof InputWithVariables>;

export const KeyValueInput = InputWithVariables.extend({ name: z.string().min(1) });
export type KeyValueInput = z.infer<typeof KeyValueInput>;

const PositionalArgument = InputWithVariables.extend({
  type: z.literal("positional"),
  valueHint: z.string().optional(),
  isRepeated: z.boolean().optional(),
}).refine((a) => a.value !== undefined || a.valueHint !== undefined, {
  message: "a positional argument needs value or valueHint",
});
const NamedArgument = InputWithVariables.extend({
  type: z.literal("named"),
  name: z.string().min(1),
  isRepeated: z.boolean().optional(),
});
export const Argument = z.discriminatedUnion("type", [PositionalArgument, NamedArgument]);
export type Argument = z.infer<typeof Argument>;

/** Package transports may template the URL (`http://localhost:{port}/mcp`). */
const TransportUrl = z
  .string()
  .regex(/^(https?:\/\/\S+|\{[a-zA-Z_][a-zA-Z0-9_]*\}\S*)$/, "not an http(s) URL");
const HttpTransport = z.looseObject({
  type: z.enum(["streamable-http", "sse"]),
  url: TransportUrl,
  headers: z.array(KeyValueInput).optional(),
});
export const PackageTransport = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("stdio") }),
  HttpTransport,
]);
export type PackageTransport = z.infer<typeof PackageTransport>;

export const Package = z.looseObject({
  registryType: z.string().min(1),
  registryBaseUrl: z.string().optional(),
  identifier: z.string().min(1),
  version: z
    .string()
    .min(1)
    .refine((v) => v !== "latest", "must be a specific version, not latest")
    .optional(),
  fileSha256: z.string().optional(),
  runtimeHint: z.string().optional(),
  transport: PackageTransport,
  runtimeArguments: z.array(Argument).optional(),
  packageArguments: z.array(Argument).optional(),
  environmentVariables: z.array(KeyValueInput).optional(),
});
export type Package = z.infer<typeof Package>;

export const Remote = HttpTransport.extend({ variables: z.record(z.string(), Input).optional() });
export type Remote = z.infer<typeof Remote>;

const Meta = z.record(z.string(), z.unknown());

export const ServerDetail = z.looseObject({
  $schema: z.string().optional(),
  name: z
    .string()
    .min(3)
    .max(200)
    .regex(/^[a-zA-Z0-9.-]+\/[a-zA-Z0-9._-]+$/, "must be reverse-DNS namespace/name"),
  description: z.string().min(1).max(100),
  title: z.string().min(1).max(100).optional(),
  version: z.string().min(1).max(255),
  packages: z.array(Package).optional(),
  remotes: z.array(Remote).optional(),
  _meta: Meta.optional(),
});
export type ServerDetail = z.infer<typeof ServerDetail>;

/** The registry's own metadata on an API list entry (not part of server.json). */
export const OfficialMeta = z.looseObject({
  status: z.string().optional(),
  isLatest: z.boolean().optional(),
});
export type OfficialMeta = z.infer<typeof OfficialMeta>;

export const OFFICIAL_META_KEY = "io.modelcontextprotocol.registry/official";
