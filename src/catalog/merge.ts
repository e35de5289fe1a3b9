import {
  type BaseCatalogFile,
  type OverlayCatalogFile,
  type OverlayServer,
  ServerDefinition,
  type UserCatalogFile,
} from "../schema/catalog.js";
import { canonicalHash } from "../util/canonical-json.js";
import { type Problem, jsonPath } from "../validate/problem.js";

export interface Sourced<T> {
  file: string;
  hash: string;
  catalog: T;
}

/** Where a merged server's final definition came from, for error messages that point at a file and field. */
export interface ServerOrigin {
  file: string;
  index: number;
  /** `user`: the definition is the user's own (custom-servers.json), not the admins' catalogs. */
  source: "catalog" | "user";
}

export interface MergedServer {
  definition: ServerDefinition;
  origin: ServerOrigin;
}

export interface MergedCatalog {
  servers: ReadonlyMap<string, MergedServer>;
  /** Content hash of every input that produced this catalog. */
  inputsHash: string;
}

export interface MergeResult {
  catalog: MergedCatalog;
  problems: Problem[];
}

/**
 * Base catalogs (in file-name order) then the selected overlays (in the order given). Pure: the same inputs in
 * any listing order give the same catalog.
 */
export function mergeGlobalCatalog(
  base: readonly Sourced<BaseCatalogFile>[],
  overlays: readonly Sourced<OverlayCatalogFile>[],
): MergeResult {
  const problems: Problem[] = [];
  const servers = new Map<string, MergedServer>();
  const sortedBase = [...base].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  for (const source of sortedBase) {
    source.catalog.servers.forEach((definition, index) => {
      const existing = servers.get(definition.id);
      if (existing) {
        problems.push({
          file: source.file,
          path: jsonPath(["servers", index, "id"]),
          message: `server id "${definition.id}" is also defined in ${existing.origin.file} (${jsonPath(["servers", existing.origin.index])})`,
        });
        return;
      }
      servers.set(definition.id, { definition, origin: { file: source.file, index, source: "catalog" } });
    });
  }
  for (const overlay of overlays) {
    overlay.catalog.servers.forEach((patch, index) => {
      applyOverlayServer(servers, patch, { file: overlay.file, index, source: "catalog" }, problems);
    });
  }
  const inputsHash = canonicalHash({
    base: sortedBase.map((s) => [s.file, s.hash]),
    overlays: overlays.map((s) => [s.file, s.hash]),
  });
  return { catalog: { servers, inputsHash }, problems };
}

function applyOverlayServer(
  servers: Map<string, MergedServer>,
  patch: OverlayServer,
  origin: ServerOrigin,
  problems: Problem[],
): void {
  const { id, disabled, ...fields } = patch;
  if (disabled === true) {
    servers.delete(id);
    return;
  }
  const existing = servers.get(id);
  const candidate: Record<string, unknown> = existing ? { ...existing.definition } : { id };
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const previous = candidate[key];
    // Maps merge key by key; arrays and scalars replace (README, "The data directory"). `egress` is one setting,
    // not a map: an overlay's replaces it whole (merging {mode: "none"} into an allow-list would be invalid).
    candidate[key] =
      key !== "egress" && isPlainObject(value) && isPlainObject(previous) ? { ...previous, ...value } : value;
  }
  const parsed = ServerDefinition.safeParse(candidate);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const what = existing
        ? "after applying this overlay"
        : `adds server "${id}" that no base catalog defines, but`;
      problems.push({
        file: origin.file,
        path: jsonPath(["servers", origin.index, ...issue.path]),
        message: `${what}: ${issue.code === "unrecognized_keys" ? "unknown field" : issue.message}`,
      });
    }
    return;
  }
  servers.set(id, { definition: parsed.data, origin });
}

/** A user's catalog: the global catalog with the user's custom servers replacing by id. */
export function mergeUserCatalog(
  global: MergedCatalog,
  custom: Sourced<UserCatalogFile> | undefined,
): MergedCatalog {
  const servers = new Map(global.servers);
  custom?.catalog.servers.forEach((definition, index) => {
    servers.set(definition.id, { definition, origin: { file: custom.file, index, source: "user" } });
  });
  return {
    servers,
    inputsHash: canonicalHash({
      global: global.inputsHash,
      custom: custom ? [custom.file, custom.hash] : null,
    }),
  };
}

/** Servers sorted by id, the stable form used for the cache file and the API. */
export function catalogServers(catalog: MergedCatalog): ServerDefinition[] {
  return [...catalog.servers.values()]
    .map((s) => s.definition)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
