import { z } from "zod";
import { BaseCatalogFile, CatalogFile, OverlayCatalogFile, UserCatalogFile } from "./catalog.js";
import { EnabledServersFile } from "./enabled-servers.js";
import { PolicyFile } from "./policy.js";

/** Where `mcp-portal schema` writes by default, relative to the working directory (the repository root). */
export const DEFAULT_SCHEMA_DIR = "manifests/schemas";

interface SchemaEntry {
  file: string;
  title: string;
  description: string;
  schema: z.ZodType;
}

/** One JSON Schema file per file format of the data directory (README, "The data directory"). */
export const SCHEMA_ENTRIES: readonly SchemaEntry[] = [
  {
    file: "catalog.schema.json",
    title: "mcp-portal catalog file",
    description: "Any catalog file; `source` (base, overlay or user) decides which shape applies.",
    schema: CatalogFile,
  },
  {
    file: "base-catalog.schema.json",
    title: "mcp-portal base catalog",
    description: "catalogs/base/*.json: admin-owned server definitions.",
    schema: BaseCatalogFile,
  },
  {
    file: "overlay-catalog.schema.json",
    title: "mcp-portal catalog overlay",
    description:
      "catalogs/overlays/<name>.json: per server an id plus the fields it changes (maps merge, arrays replace), or disabled: true.",
    schema: OverlayCatalogFile,
  },
  {
    file: "custom-servers.schema.json",
    title: "mcp-portal user catalog",
    description: "users/<user-id>/custom-servers.json: the user's own server definitions (source user).",
    schema: UserCatalogFile,
  },
  {
    file: "enabled-servers.schema.json",
    title: "mcp-portal enabled servers",
    description: "users/<user-id>/enabled-servers.json: the servers this user runs, with per-server config.",
    schema: EnabledServersFile,
  },
  {
    file: "policy.schema.json",
    title: "mcp-portal policy",
    description: "policy.json: allowed images, default and per-user limits, per-server security overrides.",
    schema: PolicyFile,
  },
];

/**
 * File name → file content of every JSON Schema, as committed under manifests/schemas. Input shapes: fields
 * with a default are optional. Stable: the same code always gives the same bytes (2-space indent, final newline).
 */
export function generateJsonSchemas(): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of SCHEMA_ENTRIES) {
    const { $schema, ...rest } = z.toJSONSchema(entry.schema, { io: "input" });
    const document = { $schema, title: entry.title, description: entry.description, ...rest };
    files.set(entry.file, `${JSON.stringify(document, null, 2)}\n`);
  }
  return files;
}
