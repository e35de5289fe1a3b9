import type { z } from "zod";
import { BaseCatalogFile } from "../../schema/catalog.js";
import { previewBaseCatalog } from "../catalog-preview.js";
import { baseCatalogFile } from "../catalog-files.js";
import type { ApiContext } from "../deps.js";
import { CatalogParams } from "../params.js";
import { type ApiRoute, defineRoute } from "../route.js";

/* What saving a base catalog would change, for which users, before it is saved. */
export function catalogPreviewRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "POST",
      path: "/admin/catalogs/base/{catalog_id}/preview",
      access: "admin",
      tag: "admin",
      summary: "Plan a base catalog that is not saved: what would change for which users",
      description:
        "The body is the CatalogFile, as for `PUT` (the catalog need not exist yet). It is checked as an upload " +
        "would be (400/422 with the same `file: path: reason` problems), then the installation is planned as " +
        "`mcp-portal plan` plans it (the controller's own decision, on one listing of the engine) with the " +
        "candidate in place of catalogs/base/{catalog_id}.json, and compared with today's plan: per user the " +
        "steps (`caused_by_catalog: false` for a step pending anyway), `cancelled_steps`, `newly_blocked_servers` " +
        "and `affected`. Nothing is written and the engine is only listed. A POST, so `--read-only-api` refuses " +
        "it like every POST.",
      params: CatalogParams,
      body: BaseCatalogFile,
      bodyLimit: ctx.limits.catalogBodyBytes,
      bodyFile: (_raw, params) => ({ file: baseCatalogFile(params.catalog_id ?? "<name>"), at: [] }),
      responses: {
        200: "The preview",
        400: "Malformed path or body",
        401: "Missing or invalid token",
        403: "Not the admin token (or the API is disabled or read-only)",
        413: "Body too large",
        422: "The catalog would make the desired state invalid (as an upload would answer)",
        503: "The engine does not answer",
      },
      audit: { action: "preview_base_catalog" },
      handle: async ({ params, body, rawBody, audit }) => {
        audit({ resource: baseCatalogFile(params.catalog_id), details: { servers: body.servers.length } });
        // Valid against the strict schema, so the body as sent is the schema's input shape.
        const input = rawBody as z.input<typeof BaseCatalogFile>;
        const preview = await previewBaseCatalog(ctx, params.catalog_id, input, body);
        audit({ details: { affected_users: preview.affected_users.length } });
        return { body: preview };
      },
    }),
  ];
}
