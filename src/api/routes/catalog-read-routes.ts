import path from "node:path";
import { DATA_PATHS, listJsonFiles } from "../../catalog/data-tree.js";
import { parseJsonBytes, readCappedFile } from "../../catalog/read-json-file.js";
import { BaseCatalogFile, OverlayCatalogFile } from "../../schema/catalog.js";
import { sha256Hex } from "../../util/canonical-json.js";
import { formatProblem } from "../../validate/problem.js";
import { baseCatalogFile } from "../catalog-files.js";
import { type ApiContext, dataRoot } from "../deps.js";
import { ApiError, notFound } from "../errors.js";
import { CatalogParams } from "../params.js";
import { type ApiRoute, defineRoute } from "../route.js";

/* Reads of the admin's catalog files for editing and review: one base catalog as written, and the overlays. */

const ADMIN_ERRORS = {
  401: "Missing or invalid token",
  403: "Not the admin token (or the API is disabled)",
} as const;

/** GET /admin/catalogs/base/{catalog_id}. */
export interface BaseCatalogAnswer {
  name: string;
  file: string;
  hash: string;
  valid: boolean;
  problems: string[];
  text: string;
}

/** One entry of GET /admin/catalogs/overlays. */
export interface OverlayAnswer {
  name: string;
  file: string;
  selected: boolean;
  order: number | null;
  missing?: true;
  valid: boolean;
  version?: string;
  metadata_name?: string;
  servers?: { id: string; disabled: boolean; fields: string[] }[];
  problems: string[];
}

export function catalogReadRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "GET",
      path: "/admin/catalogs/base/{catalog_id}",
      access: "admin",
      tag: "admin",
      summary: "One base catalog file as written, with its problems",
      description:
        "`text` is the file byte for byte (also when it is invalid, so it can be fixed); `hash` its sha256; " +
        "`problems` the `file: path: reason` lines of its own validation (empty when valid).",
      params: CatalogParams,
      responses: {
        200: "The file",
        400: "Malformed catalog name",
        ...ADMIN_ERRORS,
        404: "No such catalog",
        409: "The file cannot be read (too large, not a regular file)",
      },
      handle: async ({ params }) => {
        const file = baseCatalogFile(params.catalog_id);
        const read = await readCappedFile(await dataRoot(ctx), file, {
          maxBytes: ctx.deps.config.maxFileBytes,
        });
        if (read.status === "missing")
          throw notFound(`base catalog "${params.catalog_id}" does not exist (${file})`);
        if (read.status === "invalid") {
          throw new ApiError(409, "CATALOG_UNREADABLE", `${file} cannot be read`, [read.problem]);
        }
        const loaded = parseJsonBytes(file, read.bytes, BaseCatalogFile);
        const body: BaseCatalogAnswer = {
          name: params.catalog_id,
          file,
          hash: sha256Hex(read.bytes),
          valid: loaded.status === "ok",
          problems: loaded.status === "invalid" ? loaded.problems.map(formatProblem) : [],
          text: read.bytes.toString("utf8"),
        };
        return { body };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/admin/catalogs/overlays",
      access: "admin",
      tag: "admin",
      summary: "The overlay files, which are selected (MCP_PORTAL_OVERLAYS) and what each changes",
      description:
        "One entry per catalogs/overlays/*.json: `selected` and `order` (its place in MCP_PORTAL_OVERLAYS, or " +
        "null), version, and per server entry its id, the fields it changes and whether it withdraws the " +
        "server. Selected overlays that have no file are listed with `missing: true`.",
      responses: { 200: "Overlays sorted by name", ...ADMIN_ERRORS },
      handle: async () => {
        const { overlays: selected, maxFileBytes } = ctx.deps.config;
        const root = await dataRoot(ctx);
        const listing = await listJsonFiles(root, DATA_PATHS.overlayDir);
        const names = listing.names.map((file) => path.posix.basename(file, ".json"));
        const all = [...new Set([...names, ...selected])].sort();
        const overlays = await Promise.all(
          all.map(async (name): Promise<OverlayAnswer> => {
            const file = DATA_PATHS.overlay(name);
            const order = selected.indexOf(name);
            const head = { name, file, selected: order >= 0, order: order >= 0 ? order : null };
            const read = await readCappedFile(root, file, { maxBytes: maxFileBytes });
            if (read.status === "missing")
              return { ...head, missing: true as const, valid: false, problems: [] };
            if (read.status === "invalid")
              return { ...head, valid: false, problems: [formatProblem(read.problem)] };
            const loaded = parseJsonBytes(file, read.bytes, OverlayCatalogFile);
            if (loaded.status !== "ok") {
              return {
                ...head,
                valid: false,
                problems: loaded.status === "invalid" ? loaded.problems.map(formatProblem) : [],
              };
            }
            return {
              ...head,
              valid: true,
              version: loaded.value.version,
              metadata_name: loaded.value.metadata.name,
              servers: loaded.value.servers.map((server) => ({
                id: server.id,
                disabled: server.disabled === true,
                fields: Object.keys(server)
                  .filter((key) => key !== "id" && key !== "disabled")
                  .sort(),
              })),
              problems: [],
            };
          }),
        );
        return { body: { overlays, problems: listing.problems.map(formatProblem) } };
      },
    }),
  ];
}
