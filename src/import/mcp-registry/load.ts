import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { ImportError, type ServerReport, unreadableReport } from "../report.js";
import { errorCode, errorText, isRecord } from "../text.js";
import { OFFICIAL_META_KEY, OfficialMeta, ServerDetail, schemaVersionOf } from "./schema.js";

/*
 * Reads server.json documents in every shape they come in: one server, an array of servers, the registry API's
 * list page `{servers: [{server, _meta}], metadata}` (or one `{server, _meta}` answer), a file or a directory of
 * such files (`*.json` and `<name>/server.json`). Each document is checked for its schema version and against
 * the subset we read; a refused or unreadable one becomes a skipped report, the others RegistryEntry values.
 */

/** Cap on one input file (bytes). */
export const MCP_REGISTRY_MAX_INPUT_BYTES = 50 * 1024 * 1024;
/** Cap on the JSON files read from one directory. */
export const MCP_REGISTRY_MAX_FILES = 10_000;
/** Cap on the servers in one import (the catalog's own limit). */
export const MCP_REGISTRY_MAX_SERVERS = 10_000;

export type RegistryFormat = "server-json" | "server-list" | "api-page" | "directory";

export const REGISTRY_FORMAT_LABELS: Record<RegistryFormat, string> = {
  "server-json": "MCP registry server.json",
  "server-list": "array of MCP registry server.json documents",
  "api-page": "MCP registry API page",
  directory: "directory of MCP registry server.json files",
};

/** One server document that passed the schema checks. */
export interface RegistryEntry {
  origin: string;
  server: ServerDetail;
  /** The API wrapper's `_meta` (registry-managed, plus any extensions a downstream registry put there). */
  wrapperMeta?: Record<string, unknown>;
  official?: OfficialMeta;
  /** The schema date the document follows (declared, or the latest when it has no `$schema`). */
  schemaDate: string;
}

export interface RegistryDocuments {
  format: RegistryFormat;
  entries: RegistryEntry[];
  /** Documents refused or unreadable, and older versions of a server listed twice. */
  refused: ServerReport[];
}

export interface SourceText {
  /** Shown in reports and errors (a file path, or "request body"). */
  origin: string;
  text: string;
}

/** Reads a file or a directory of files. */
export async function readRegistryInput(
  input: string,
  maxBytes = MCP_REGISTRY_MAX_INPUT_BYTES,
): Promise<RegistryDocuments> {
  let info;
  try {
    info = await stat(input);
  } catch (error) {
    throw new ImportError(
      `${input}: ${errorCode(error) === "ENOENT" ? "no such file or directory" : errorText(error)}`,
    );
  }
  if (!info.isDirectory()) {
    return parseRegistryText({ origin: input, text: await readText(input, info.size, maxBytes) });
  }
  const files = await registryFiles(input);
  if (files.length === 0) throw new ImportError(`${input}: no *.json or <name>/server.json files found`);
  if (files.length > MCP_REGISTRY_MAX_FILES) {
    throw new ImportError(`${input}: ${files.length} JSON files, over the cap of ${MCP_REGISTRY_MAX_FILES}`);
  }
  const collected: Collected = { items: [], refused: [] };
  for (const file of files) {
    try {
      const size = (await stat(file)).size;
      collectDocument(
        parseJson({ origin: file, text: await readText(file, size, maxBytes) }),
        file,
        collected,
      );
    } catch (error) {
      if (!(error instanceof ImportError)) throw error;
      collected.refused.push(
        unreadableReport(path.basename(file), file, error.message.replace(`${file}: `, "")),
      );
    }
  }
  return finish("directory", collected);
}

/** Parses one document text (a file's content or an HTTP body). */
export function parseRegistryText(source: SourceText): RegistryDocuments {
  return parseRegistryValue(parseJson(source), source.origin);
}

/** Reads an already parsed JSON value (one server, an array, an API page). */
export function parseRegistryValue(value: unknown, origin: string): RegistryDocuments {
  const collected: Collected = { items: [], refused: [] };
  const format = collectDocument(value, origin, collected);
  return finish(format, collected);
}

interface Candidate {
  origin: string;
  document: unknown;
  wrapperMeta?: Record<string, unknown>;
}

interface Collected {
  items: Candidate[];
  refused: ServerReport[];
}

/** Adds the documents of one parsed value; returns its shape or throws when it is none of them. */
function collectDocument(
  value: unknown,
  origin: string,
  into: Collected,
): Exclude<RegistryFormat, "directory"> {
  if (Array.isArray(value)) {
    value.forEach((item, i) => into.items.push(candidate(item, `${origin}: [${i}]`)));
    return "server-list";
  }
  if (isRecord(value) && Array.isArray(value.servers)) {
    value.servers.forEach((item, i) => into.items.push(candidate(item, `${origin}: servers[${i}]`)));
    return "api-page";
  }
  if (isRecord(value) && value.name === undefined && isRecord(value.server)) {
    into.items.push(candidate(value, origin));
    return "api-page";
  }
  if (isRecord(value) && typeof value.name === "string") {
    into.items.push(candidate(value, origin));
    return "server-json";
  }
  throw new ImportError(
    `${origin}: neither a server.json (no "name"), an array of them, nor a registry API page (no "servers" array)`,
  );
}

/** An API list item `{server, _meta}` or a bare server.json. */
function candidate(item: unknown, origin: string): Candidate {
  if (isRecord(item) && item.name === undefined && isRecord(item.server)) {
    return { origin, document: item.server, ...(isRecord(item._meta) ? { wrapperMeta: item._meta } : {}) };
  }
  return { origin, document: item };
}

function finish(format: RegistryFormat, collected: Collected): RegistryDocuments {
  if (collected.items.length > MCP_REGISTRY_MAX_SERVERS) {
    throw new ImportError(
      `${collected.items.length} server documents, over the cap of ${MCP_REGISTRY_MAX_SERVERS} per import`,
    );
  }
  const entries: RegistryEntry[] = [];
  const refused = [...collected.refused];
  for (const item of collected.items) {
    const checked = checkDocument(item);
    if ("reason" in checked) refused.push(unreadableReport(checked.name, item.origin, checked.reason));
    else entries.push(checked);
  }
  return { format, entries: latestVersions(entries, refused), refused };
}

function checkDocument(item: Candidate): RegistryEntry | { name: string; reason: string } {
  const name =
    isRecord(item.document) && typeof item.document.name === "string" ? item.document.name : "(unnamed)";
  const version = schemaVersionOf(item.document);
  if (!version.ok) return { name, reason: version.reason };
  const parsed = ServerDetail.safeParse(item.document);
  if (!parsed.success) {
    return {
      name,
      reason: `does not validate as the ${version.date} server schema: ${issuesText(parsed.error, item.document)}`,
    };
  }
  const official = OfficialMeta.safeParse(item.wrapperMeta?.[OFFICIAL_META_KEY]);
  return {
    origin: item.origin,
    server: parsed.data,
    schemaDate: version.date,
    ...(item.wrapperMeta ? { wrapperMeta: item.wrapperMeta } : {}),
    ...(official.success && official.data !== undefined ? { official: official.data } : {}),
  };
}

/** At most three issues, with a hint when the document uses the snake_case names of the 2025-07-09 schema. */
function issuesText(error: z.ZodError, document: unknown): string {
  const issues = error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join(".") : "$"}: ${i.message}`);
  const text = JSON.stringify(document) ?? "";
  const hint = /"(registry_type|environment_variables|package_arguments|version_detail)"/.test(text)
    ? " (it uses snake_case field names: the 2025-07-09 schema, which this importer does not read)"
    : "";
  return `${issues.join("; ")}${error.issues.length > 3 ? `; and ${error.issues.length - 3} more` : ""}${hint}`;
}

/**
 * An API page listing all versions names a server more than once: keep the one the registry marks latest (else
 * the first listed), report the others.
 */
function latestVersions(entries: RegistryEntry[], refused: ServerReport[]): RegistryEntry[] {
  const chosen = new Map<string, RegistryEntry>();
  for (const entry of entries) {
    const current = chosen.get(entry.server.name);
    if (current === undefined || (entry.official?.isLatest === true && current.official?.isLatest !== true)) {
      chosen.set(entry.server.name, entry);
    }
  }
  const kept = new Set(chosen.values());
  for (const entry of entries) {
    if (kept.has(entry)) continue;
    const winner = chosen.get(entry.server.name)!;
    refused.push(
      unreadableReport(
        entry.server.name,
        entry.origin,
        `version ${entry.server.version} not imported: version ${winner.server.version} of this server is (${winner.origin})`,
      ),
    );
  }
  return entries.filter((entry) => kept.has(entry));
}

function parseJson(source: SourceText): unknown {
  try {
    return JSON.parse(source.text) as unknown;
  } catch (error) {
    throw new ImportError(`${source.origin}: not valid JSON: ${errorText(error)}`);
  }
}

async function readText(file: string, size: number, maxBytes: number): Promise<string> {
  if (size > maxBytes) throw new ImportError(`${file}: larger than ${maxBytes} bytes`);
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new ImportError(`${file}: cannot read (${errorCode(error) ?? errorText(error)})`);
  }
}

/** `*.json` directly in the directory and `<name>/server.json` one level down, sorted. */
async function registryFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".")) continue;
    const full = path.join(dir, entry.name);
    if (entry.isFile() && entry.name.endsWith(".json")) found.push(full);
    else if (entry.isDirectory()) {
      const nested = path.join(full, "server.json");
      try {
        if ((await stat(nested)).isFile()) found.push(nested);
      } catch {
        // Not a server directory.
      }
    }
  }
  return found.sort();
}
