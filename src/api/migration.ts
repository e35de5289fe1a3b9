import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { readCappedFile } from "../catalog/read-json-file.js";
import { type ImportSource, buildCatalog, importedCount } from "../import/catalog.js";
import { loadDockerMcpSource } from "../import/docker-mcp.js";
import { IMPORT_KIND_TITLES, type ImportKind } from "../import/importers.js";
import { mcpRegistrySource } from "../import/mcp-registry/convert.js";
import { parseRegistryText, parseRegistryValue } from "../import/mcp-registry/load.js";
import { runnerImages } from "../import/mcp-registry/runners.js";
import { ImportError, type ServerReport } from "../import/report.js";
import { InvalidPolicyError, readTreeContext } from "../import/tree-context.js";
import { BaseCatalogFile } from "../schema/catalog.js";
import { problemsFromZod } from "../validate/problem.js";
import { type CatalogWriteOutcome, baseCatalogFile, storeBaseCatalog } from "./catalog-files.js";
import { type ApiContext, dataRoot } from "./deps.js";
import { ApiError, badRequest, invalidDesiredState } from "./errors.js";

export interface MigrationRequest {
  /** docker-mcp: the catalog YAML (a string); mcp-registry: server.json JSON (parsed, or its text). */
  body: unknown;
  format: ImportKind;
  /** Target: catalogs/base/<name>.json. */
  name: string;
  dryRun: boolean;
  /** Replace an existing catalog of that name (its previous version is backed up). */
  replace: boolean;
  /** mcp-registry: runner images (`name:tag`) for npm and PyPI packages; the defaults otherwise. */
  npmRunnerImage?: string | undefined;
  pypiRunnerImage?: string | undefined;
}

export interface MigrationResult {
  dry_run: boolean;
  format: ImportKind;
  file: string;
  imported: number;
  skipped: number;
  servers: ServerReport[];
  /** The catalog as it is (or would be) written. */
  catalog: Record<string, unknown>;
  stored?: CatalogWriteOutcome;
}

/**
 * Imports another catalog format into a base catalog through the same path as an upload: the importer maps and
 * reports every server, then the result is validated against the tree and stored with a backup, unless dry-run.
 */
export async function migrateCatalog(ctx: ApiContext, request: MigrationRequest): Promise<MigrationResult> {
  const { maxFileBytes } = ctx.deps.config;
  const dataDir = await dataRoot(ctx);
  const file = baseCatalogFile(request.name);
  const source = await loadSource(ctx, request);
  let tree;
  try {
    tree = await readTreeContext(dataDir, file, maxFileBytes);
  } catch (error) {
    if (!(error instanceof InvalidPolicyError)) throw error;
    throw new ApiError(
      409,
      "DESIRED_STATE_INVALID",
      "cannot check images: policy.json is invalid",
      error.problems,
    );
  }
  const built = buildCatalog(source, {
    name: source.catalogName ?? request.name,
    version: "1",
    description: `Imported from a ${IMPORT_KIND_TITLES[request.format]} through POST /api/v1/admin/system/migration`,
    ...(tree.allowedImages ? { allowedImages: tree.allowedImages } : {}),
    takenIds: tree.takenIds,
  });
  const imported = importedCount(built.reports);
  const result: MigrationResult = {
    dry_run: request.dryRun,
    format: request.format,
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
  if (!request.replace && (await exists(dataDir, file))) {
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

async function exists(dataDir: string, file: string): Promise<boolean> {
  return (await readCappedFile(dataDir, file, { maxBytes: 1 })).status !== "missing";
}

async function loadSource(ctx: ApiContext, request: MigrationRequest): Promise<ImportSource> {
  if (request.format === "docker-mcp") {
    if (typeof request.body !== "string") {
      throw new ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "format=docker-mcp takes the catalog as a YAML body");
    }
    return loadYaml(ctx, request.body);
  }
  let runners;
  try {
    runners = runnerImages({ npm: request.npmRunnerImage, pypi: request.pypiRunnerImage }, {});
  } catch (error) {
    if (error instanceof ImportError) throw badRequest(error.message);
    throw error;
  }
  try {
    const documents =
      typeof request.body === "string"
        ? parseRegistryText({ origin: "request body", text: request.body })
        : parseRegistryValue(request.body, "request body");
    return mcpRegistrySource(documents, runners);
  } catch (error) {
    if (error instanceof ImportError) throw badRequest(error.message);
    throw error;
  }
}

/** The Docker importer reads files; the body goes through a private temp file in the state dir. */
async function loadYaml(ctx: ApiContext, yaml: string): Promise<ImportSource> {
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
