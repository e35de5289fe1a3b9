import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { DATA_PATHS, listJsonFiles, listUserDirs } from "../../catalog/data-tree.js";
import { readJsonFile } from "../../catalog/read-json-file.js";
import type { UserStatus } from "../../contracts/status-file.js";
import { BaseCatalogFile } from "../../schema/catalog.js";
import { formatProblem } from "../../validate/problem.js";
import { baseCatalogFile, storeBaseCatalog } from "../catalog-files.js";
import { type ApiContext, dataRoot } from "../deps.js";
import { notFound } from "../errors.js";
import { IMPORT_KINDS } from "../../import/importers.js";
import { migrateCatalog } from "../migration.js";
import { CatalogName, CatalogParams, QueryBoolean, UserParams } from "../params.js";
import { type ApiRoute, defineRoute } from "../route.js";

export const UploadBaseCatalogRequest = z.strictObject({
  name: CatalogName,
  catalog: BaseCatalogFile,
});

export const MigrationQuery = z.object({
  /** Default: the format's name (catalogs/base/docker-mcp.json, catalogs/base/mcp-registry.json). */
  name: CatalogName.optional(),
  format: z.enum(IMPORT_KINDS).default("docker-mcp"),
  dry_run: QueryBoolean.default(false),
  replace: QueryBoolean.default(false),
  npm_runner_image: z.string().min(1).max(512).optional(),
  pypi_runner_image: z.string().min(1).max(512).optional(),
});

export const YAML_CONTENT_TYPES = [
  "application/yaml",
  "application/x-yaml",
  "text/yaml",
  "text/plain",
] as const;

const ADMIN_ERRORS = {
  400: "Malformed path, query or body",
  401: "Missing or invalid token",
  403: "Not the admin token (or the API is disabled or read-only)",
} as const;

const CATALOG_WRITE = {
  409: "The existing file cannot be read, or the file or its directory is a link the API does not write through",
  503: "Another process holds the base catalogs lock (LOCKED; retry)",
  413: "Body or resulting file too large",
  422: "The catalog would make the desired state invalid; nothing written",
} as const;

export function adminRoutes(ctx: ApiContext): ApiRoute[] {
  const catalogBodyLimit = ctx.limits.catalogBodyBytes;
  return [
    defineRoute({
      method: "GET",
      path: "/admin/catalogs/base",
      access: "admin",
      tag: "admin",
      summary: "The base catalog files, with version, server count and problems",
      responses: { 200: "One entry per catalogs/base/*.json", ...ADMIN_ERRORS },
      handle: async () => {
        const { maxFileBytes } = ctx.deps.config;
        const dataDir = await dataRoot(ctx);
        const listing = await listJsonFiles(dataDir, DATA_PATHS.baseDir);
        const catalogs = await Promise.all(
          listing.names.map(async (file) => {
            const loaded = await readJsonFile(dataDir, file, BaseCatalogFile, { maxBytes: maxFileBytes });
            const name = path.posix.basename(file, ".json");
            if (loaded.status === "ok") {
              return {
                name,
                file,
                valid: true,
                version: loaded.value.version,
                servers: loaded.value.servers.length,
                hash: loaded.hash,
              };
            }
            return {
              name,
              file,
              valid: false,
              problems: loaded.status === "invalid" ? loaded.problems.map(formatProblem) : [],
            };
          }),
        );
        return { body: { catalogs } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/admin/catalogs/base",
      access: "admin",
      tag: "admin",
      summary: "Upload (create or replace) a base catalog",
      description:
        "Body `{name, catalog}`: stored as catalogs/base/{name}.json after validation against the whole tree " +
        "(merge conflicts, overlays, policy, users' enabled servers). A replaced version is kept in " +
        "<state-dir>/backups/catalogs/base/{name}.<timestamp>.json. Every user reconciles.",
      body: UploadBaseCatalogRequest,
      bodyLimit: catalogBodyLimit,
      bodyFile: (raw) => {
        const name = (raw as { name?: unknown } | null)?.name;
        const valid = CatalogName.safeParse(name);
        return {
          file: valid.success ? baseCatalogFile(valid.data) : `${DATA_PATHS.baseDir}/<name>.json`,
          at: ["catalog"],
        };
      },
      responses: { 200: "Replaced (or unchanged)", 201: "Created", ...ADMIN_ERRORS, ...CATALOG_WRITE },
      audit: { action: "upload_base_catalog" },
      handle: async ({ body, rawBody, audit }) => {
        audit({ resource: baseCatalogFile(body.name), details: { servers: body.catalog.servers.length } });
        // Valid against the strict schema, so the body as sent is the schema's input shape.
        const input = (rawBody as z.input<typeof UploadBaseCatalogRequest>).catalog;
        const outcome = await storeBaseCatalog(ctx, body.name, input, body.catalog, { mustExist: false });
        audit({ details: { changed: outcome.changed, created: outcome.created, backup: outcome.backup } });
        return { status: outcome.created ? 201 : 200, body: outcome };
      },
    }),
    defineRoute({
      method: "PUT",
      path: "/admin/catalogs/base/{catalog_id}",
      access: "admin",
      tag: "admin",
      summary: "Replace an existing base catalog",
      description: "The body is the CatalogFile itself. Same validation, backup and reconcile as the upload.",
      params: CatalogParams,
      body: BaseCatalogFile,
      bodyLimit: catalogBodyLimit,
      bodyFile: (_raw, params) => ({ file: baseCatalogFile(params.catalog_id ?? "<name>"), at: [] }),
      responses: {
        200: "Replaced (or unchanged)",
        ...ADMIN_ERRORS,
        404: "No such catalog",
        ...CATALOG_WRITE,
      },
      audit: { action: "replace_base_catalog" },
      handle: async ({ params, body, rawBody, audit }) => {
        audit({ resource: baseCatalogFile(params.catalog_id), details: { servers: body.servers.length } });
        const input = rawBody as z.input<typeof BaseCatalogFile>;
        const outcome = await storeBaseCatalog(ctx, params.catalog_id, input, body, { mustExist: true });
        audit({ details: { changed: outcome.changed, backup: outcome.backup } });
        return { body: outcome };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/admin/users/{user_id}/catalogs/regenerate",
      access: "admin",
      tag: "admin",
      summary: "Re-read the catalogs and reconcile the user now",
      params: UserParams,
      responses: { 202: "Queued", ...ADMIN_ERRORS, 404: "No such user directory" },
      audit: { action: "regenerate_user_catalog" },
      handle: async ({ params, audit }) => {
        const { names } = await listUserDirs(await dataRoot(ctx));
        if (!names.includes(params.user_id)) throw notFound(`no directory users/${params.user_id}`);
        audit({ resource: `users/${params.user_id}` });
        ctx.deps.global.invalidate();
        ctx.deps.controller.enqueue(params.user_id);
        return { status: 202, body: { user_id: params.user_id, queued: true } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/admin/prune-guard",
      access: "admin",
      tag: "admin",
      summary: "The mass-prune latch: tripped or open, since when, why, and how many removals wait",
      responses: { 200: "{tripped, reason?, tripped_at?, pending}", ...ADMIN_ERRORS },
      handle: () => {
        const state = ctx.deps.controller.pruneGuard();
        return Promise.resolve({
          body: {
            tripped: state.tripped,
            ...(state.reason !== undefined ? { reason: state.reason } : {}),
            ...(state.trippedAt !== undefined ? { tripped_at: state.trippedAt } : {}),
            pending: state.pending,
          },
        });
      },
    }),
    defineRoute({
      method: "POST",
      path: "/admin/prune-guard/release",
      access: "admin",
      tag: "admin",
      summary: "Release the mass-prune latch: the removals the controller holds back go ahead",
      responses: { 202: "Released; the held removals are queued", ...ADMIN_ERRORS },
      audit: { action: "release_prune_guard" },
      handle: async ({ audit }) => {
        const was = ctx.deps.controller.pruneGuard();
        audit({ resource: "prune-guard", details: { was_tripped: was.tripped, pending: was.pending } });
        await ctx.deps.controller.releasePruneGuard("api:admin");
        return { status: 202, body: { released: true, was_tripped: was.tripped, pending: was.pending } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/admin/users",
      access: "admin",
      tag: "admin",
      summary: "Every user of the data dir with phase and server counts from their status",
      responses: { 200: "Users sorted by id", ...ADMIN_ERRORS },
      handle: async () => {
        const listing = await listUserDirs(await dataRoot(ctx));
        const users = await Promise.all(listing.names.map((userId) => userOverview(ctx, userId)));
        return { body: { users, problems: listing.problems.map(formatProblem) } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/admin/system/migration",
      access: "admin",
      tag: "admin",
      summary: "Import a Docker MCP catalog (YAML) or MCP registry server.json (JSON) into a base catalog",
      description:
        "`format=docker-mcp` (the default): the body is the YAML of `docker mcp catalog show --format yaml` (or one " +
        "docker/mcp-registry server.yaml). `format=mcp-registry`: the body is JSON: one server.json, an array of " +
        "them, or a registry API page (`{servers: [{server, _meta}]}`); npm and PyPI packages run on the runner " +
        "images `npm_runner_image` / `pypi_runner_image` (`name:tag`, defaults as the CLI's). Every server is " +
        "reported: imported (with notes and dropped fields) or skipped (with the reason). `dry_run=true` reports " +
        "and returns the catalog without writing; otherwise it is stored as catalogs/base/{name}.json like an " +
        "upload (an existing file only with `replace=true`, backed up).",
      query: MigrationQuery,
      body: z.union([
        z.string().min(1, "the body must hold the catalog").max(catalogBodyLimit),
        z.array(z.unknown()),
        z.record(z.string(), z.unknown()),
      ]),
      bodyContentTypes: [...YAML_CONTENT_TYPES, "application/json"],
      bodyLimit: catalogBodyLimit,
      responses: {
        200: "Imported (or the dry-run report)",
        ...ADMIN_ERRORS,
        409: "The catalog exists (pass replace=true), or policy.json is invalid",
        413: "Body or resulting file too large",
        415: "A content type the format does not take (docker-mcp: YAML; mcp-registry: JSON, or its text)",
        422: "Nothing importable, or the result would make the desired state invalid",
      },
      audit: { action: "migrate_docker_mcp_catalog" },
      handle: async ({ query, body, audit }) => {
        const name = query.name ?? query.format;
        audit({ resource: baseCatalogFile(name), details: { dry_run: query.dry_run, format: query.format } });
        const result = await migrateCatalog(ctx, {
          body,
          format: query.format,
          name,
          dryRun: query.dry_run,
          replace: query.replace,
          npmRunnerImage: query.npm_runner_image,
          pypiRunnerImage: query.pypi_runner_image,
        });
        audit({
          details: {
            imported: result.imported,
            skipped: result.skipped,
            changed: result.stored?.changed ?? false,
          },
        });
        return { body: result };
      },
    }),
  ];
}

async function userOverview(ctx: ApiContext, userId: string) {
  let status: UserStatus | undefined;
  try {
    status = JSON.parse(await readFile(ctx.deps.statuses.file(userId), "utf8")) as UserStatus;
  } catch {
    status = undefined;
  }
  const servers = status?.servers ?? [];
  const count = (phase: string) => servers.filter((s) => s.phase === phase).length;
  return {
    user_id: userId,
    phase: status?.phase ?? null,
    observed_generation: status?.observed_generation ?? null,
    servers: {
      total: servers.length,
      running: count("Running"),
      pending: count("Pending"),
      blocked: count("Blocked"),
      failed: count("Failed"),
    },
    last_reconcile: status?.last_reconciles.at(-1) ?? null,
  };
}
