import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { DATA_PATHS, listJsonFiles } from "../catalog/data-tree.js";
import { readCappedFile, readJsonFile } from "../catalog/read-json-file.js";
import { ImportError, type ServerReport, buildCatalog, loadDockerMcpSource } from "../import/docker-mcp.js";
import { BaseCatalogFile } from "../schema/catalog.js";
import { PolicyFile } from "../schema/policy.js";
import { problemsFromZod } from "../validate/problem.js";
import { type CatalogWriteOutcome, baseCatalogFile, storeBaseCatalog } from "./catalog-files.js";
import { type ApiContext, dataRoot } from "./deps.js";
import { ApiError, invalidDesiredState } from "./errors.js";

export interface MigrationRequest {
  /** The Docker MCP catalog YAML (or one registry server.yaml). */
  yaml: string;
  /** Target: catalogs/base/<name>.json. */
  name: string;
  dryRun: boolean;
  /** Replace an existing catalog of that name (its previous version is backed up). */
  replace: boolean;
}

export interface MigrationResult {
  dry_run: boolean;
  file: string;
  imported: number;
  skipped: number;
  servers: ServerReport[];
  /** The catalog as it is (or would be) written. */
  catalog: Record<string, unknown>;
  stored?: CatalogWriteOutcome;
}

/**
 * Imports a Docker MCP catalog into a base catalog through the same path as an upload: the importer maps and
 * reports every server, then the result is validated against the tree and stored with a backup, unless dry-run.
 */
export async function migrateDockerMcp(ctx: ApiContext, request: MigrationRequest): Promise<MigrationResult> {
  const { maxFileBytes } = ctx.deps.config;
  const dataDir = await dataRoot(ctx);
  const file = baseCatalogFile(request.name);
  const source = await loadYaml(ctx, request.yaml);
  const allowedImages = await allowedImagesOf(dataDir, maxFileBytes);
  const takenIds = await idsOfOtherBaseCatalogs(dataDir, file, maxFileBytes);
  const built = buildCatalog(source, {
    name: source.catalogName ?? request.name,
    version: "1",
    description: "Imported from a Docker MCP catalog through POST /api/v1/admin/system/migration",
    ...(allowedImages ? { allowedImages } : {}),
    takenIds,
  });
  const imported = built.reports.filter((r) => r.status === "imported").length;
  const result: MigrationResult = {
    dry_run: request.dryRun,
    file,
    imported,
    skipped: built.reports.length - imported,
    servers: built.reports,
    catalog: built.catalog,
  };
  const parsed = BaseCatalogFile.safeParse(built.catalog);
  if (!parsed.success) throw invalidDesiredState(problemsFromZod(file, parsed.error));
  if (request.dryRun) return result;
  if (imported === 0) {
    throw new ApiError(
      422,
      "NOTHING_TO_IMPORT",
      "no server of the catalog could be imported; nothing written",
    );
  }
  if (!request.replace && (await readCappedFile(dataDir, file, { maxBytes: 1 })).status !== "missing") {
    throw new ApiError(
      409,
      "CATALOG_EXISTS",
      `${file} exists; pass replace=true to replace it (it is backed up)`,
    );
  }
  // Checked against the strict schema just above, so it is the schema's input shape.
  const input = built.catalog as z.input<typeof BaseCatalogFile>;
  result.stored = await storeBaseCatalog(ctx, request.name, input, parsed.data, { mustExist: false });
  return result;
}

/** The importer reads files; the body goes through a private temp file in the state dir. */
async function loadYaml(ctx: ApiContext, yaml: string) {
  const dir = path.join(ctx.deps.config.stateDir, "tmp");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `migration-${randomBytes(8).toString("hex")}.yaml`);
  await writeFile(file, yaml, { mode: 0o600, flag: "wx" });
  try {
    return await loadDockerMcpSource(file);
  } catch (error) {
    if (error instanceof ImportError) {
      throw new ApiError(400, "BAD_REQUEST", error.message.split(file).join("request body"));
    }
    throw error;
  } finally {
    await rm(file, { force: true });
  }
}

async function allowedImagesOf(dataDir: string, maxBytes: number): Promise<readonly string[] | undefined> {
  const policy = await readJsonFile(dataDir, DATA_PATHS.policy, PolicyFile, { maxBytes });
  if (policy.status === "missing") return undefined;
  if (policy.status === "invalid") {
    throw new ApiError(
      409,
      "DESIRED_STATE_INVALID",
      `cannot check images: ${DATA_PATHS.policy} is invalid`,
      policy.problems,
    );
  }
  return policy.value.allowed_images;
}

/** Ids the other base catalogs define, so the import skips them instead of producing a duplicate. */
async function idsOfOtherBaseCatalogs(
  dataDir: string,
  target: string,
  maxBytes: number,
): Promise<Map<string, string>> {
  const taken = new Map<string, string>();
  const listing = await listJsonFiles(dataDir, DATA_PATHS.baseDir);
  for (const file of listing.names) {
    if (file === target) continue;
    const loaded = await readJsonFile(dataDir, file, BaseCatalogFile, { maxBytes });
    if (loaded.status !== "ok") continue;
    for (const server of loaded.value.servers) if (!taken.has(server.id)) taken.set(server.id, file);
  }
  return taken;
}
