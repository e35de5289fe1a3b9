import { readFile } from "node:fs/promises";
import { z } from "zod";
import { fileProblems, loadUserFiles } from "../../catalog/data-tree.js";
import { catalogServers, mergeUserCatalog } from "../../catalog/merge.js";
import { ServerConfig } from "../../schema/enabled-servers.js";
import { MAX_SECRET_VALUE_BYTES } from "../../secrets/store.js";
import { SecretName } from "../../util/ids.js";
import { formatProblem } from "../../validate/problem.js";
import { type ApiContext, dataRoot } from "../deps.js";
import { ApiError, notFound } from "../errors.js";
import { QueryBoolean, UserParams, UserSecretParams, UserServerParams } from "../params.js";
import { type ApiRoute, defineRoute } from "../route.js";
import { sourced } from "../write-checks.js";
import { disableServer, enableServer, listSecretNames, removeSecret, setSecrets } from "../user-files.js";

const SecretValue = z
  .string()
  .min(1, "a secret value must not be empty")
  .refine(
    (v) => Buffer.byteLength(v, "utf8") <= MAX_SECRET_VALUE_BYTES,
    `a secret value is at most ${MAX_SECRET_VALUE_BYTES} bytes`,
  )
  .refine((v) => !v.includes("\0"), "a secret value must not contain NUL characters");

export const SetSecretsRequest = z.strictObject({
  secrets: z
    .record(SecretName, SecretValue)
    .refine((s) => Object.keys(s).length > 0, "name at least one secret")
    .refine((s) => Object.keys(s).length <= 64, "at most 64 secrets per request"),
});

export const ServersQuery = z.object({
  category: z.string().min(1).max(64).optional(),
  enabled_only: QueryBoolean.optional(),
});

const USER_ERRORS = {
  400: "Malformed path, query or body",
  401: "Missing or invalid token",
  403: "The token may not access this user (or the API is disabled or read-only)",
} as const;

/** What every write for a user may also answer: the API changes only existing, real user directories. */
const USER_WRITE_ERRORS = {
  ...USER_ERRORS,
  404: "users/{user_id}/ does not exist (USER_NOT_FOUND): the API never creates a user",
  409: "The file is invalid as it is, or users/{user_id} or the file is a symbolic link (USER_DIR_REFUSED)",
  503: "Another process (the CLI) holds the user's lock (LOCKED; retry), or no valid catalog yet",
} as const;

/** The user's merged catalog: base catalogs, selected overlays, then the user's custom servers. */
async function userCatalog(ctx: ApiContext, userId: string) {
  const root = await dataRoot(ctx);
  const snapshot = await ctx.deps.global.get(root);
  if (snapshot.inputs === undefined) {
    throw new ApiError(503, "CATALOG_UNAVAILABLE", "no valid catalog yet (see problems)", snapshot.problems);
  }
  const files = await loadUserFiles(root, userId, { maxBytes: ctx.deps.config.maxFileBytes });
  const catalog = mergeUserCatalog(snapshot.inputs.catalog, sourced(files.custom));
  return {
    catalog,
    files,
    header: {
      user_id: userId,
      catalog_version: catalog.inputsHash,
      using_last_good: snapshot.usingLastGood,
      problems: [...snapshot.problems, ...fileProblems(files.custom), ...fileProblems(files.enabled)].map(
        formatProblem,
      ),
    },
  };
}

export function userRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "GET",
      path: "/users/{user_id}/catalog",
      access: "user",
      tag: "users",
      summary: "The user's merged catalog",
      description:
        "Base catalogs, then the selected overlays, then the user's custom servers; servers sorted by id. " +
        "`catalog_version` is the hash of every input file. When a catalog file is invalid the last good catalog " +
        "is served with `using_last_good: true` and the problems listed.",
      params: UserParams,
      responses: { 200: "The merged catalog", ...USER_ERRORS, 503: "No valid catalog yet" },
      handle: async ({ params }) => {
        const { catalog, header } = await userCatalog(ctx, params.user_id);
        return { body: { ...header, servers: catalogServers(catalog) } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/users/{user_id}/catalog/servers",
      access: "user",
      tag: "users",
      summary: "The servers available to the user, each with whether it is enabled",
      params: UserParams,
      query: ServersQuery,
      responses: { 200: "Servers sorted by id", ...USER_ERRORS, 503: "No valid catalog yet" },
      handle: async ({ params, query }) => {
        const { catalog, files, header } = await userCatalog(ctx, params.user_id);
        const enabled = new Set(
          files.enabled.status === "ok" ? files.enabled.value.servers.map((s) => s.id) : [],
        );
        const servers = catalogServers(catalog)
          .map((server) => ({ ...server, enabled: enabled.has(server.id) }))
          .filter((s) => query.category === undefined || s.category === query.category)
          .filter((s) => query.enabled_only !== true || s.enabled);
        return { body: { ...header, servers } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/users/{user_id}/servers/{server_id}/enable",
      access: "user",
      tag: "users",
      summary: "Enable a server for the user",
      description:
        "Adds the server to users/{user_id}/enabled-servers.json. An optional body `{environment, volumes}` " +
        "replaces the server's per-server config (`{}` removes it); without a body an enabled server keeps its " +
        "config. The candidate file is validated as `mcp-portal validate` would (unknown server, config on a " +
        "server that is not user_configurable, volume paths, required secrets); on failure nothing is written.",
      params: UserServerParams,
      body: ServerConfig.optional(),
      responses: {
        200: "Enabled (`changed: false` when the file already said so)",
        ...USER_WRITE_ERRORS,
        422: "The change would make the desired state invalid",
      },
      audit: { action: "enable_server" },
      handle: async ({ params, body, rawBody, audit }) => {
        const { user_id: userId, server_id: serverId } = params;
        audit({ details: { server_id: serverId, config: body !== undefined } });
        // Valid against the strict schema, so the body as sent is its input shape (written without defaults).
        const config = body === undefined ? undefined : (rawBody as z.input<typeof ServerConfig>);
        const outcome = await enableServer(ctx, userId, serverId, config);
        audit({ resource: outcome.file, details: { changed: outcome.changed } });
        return { body: { user_id: userId, server_id: serverId, enabled: true, ...outcome } };
      },
    }),
    defineRoute({
      method: "POST",
      path: "/users/{user_id}/servers/{server_id}/disable",
      access: "user",
      tag: "users",
      summary: "Disable a server for the user",
      description:
        "Removes the server from users/{user_id}/enabled-servers.json; `changed: false` when it was not enabled.",
      params: UserServerParams,
      responses: { 200: "Disabled", ...USER_WRITE_ERRORS },
      audit: { action: "disable_server" },
      handle: async ({ params, audit }) => {
        const { user_id: userId, server_id: serverId } = params;
        audit({ details: { server_id: serverId } });
        const outcome = await disableServer(ctx, userId, serverId);
        audit({ resource: outcome.file, details: { changed: outcome.changed } });
        return { body: { user_id: userId, server_id: serverId, enabled: false, ...outcome } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/users/{user_id}/status",
      access: "user",
      tag: "users",
      summary: "The user's observed state (status.json)",
      params: UserParams,
      responses: { 200: "status.json as the controller wrote it", ...USER_ERRORS, 404: "No status yet" },
      handle: async ({ params, reply }) => {
        let text: string;
        try {
          text = await readFile(ctx.deps.statuses.file(params.user_id), "utf8");
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") {
            throw notFound(`no status for user ${params.user_id} yet`);
          }
          throw error;
        }
        reply.type("application/json; charset=utf-8");
        return { body: text };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/users/{user_id}/secrets",
      access: "user",
      tag: "users",
      summary: "Names of the user's secrets (never values)",
      params: UserParams,
      responses: { 200: "Secret names and key ids", ...USER_ERRORS, 409: "secrets.env is invalid" },
      handle: async ({ params }) => ({
        body: { user_id: params.user_id, secrets: await listSecretNames(ctx, params.user_id) },
      }),
    }),
    defineRoute({
      method: "POST",
      path: "/users/{user_id}/secrets",
      access: "user",
      tag: "users",
      summary: "Set secrets (encrypted into users/{user_id}/secrets.env)",
      description:
        "Body `{secrets: {NAME: value}}`; each value replaces a secret of the same name. The answer lists names only.",
      params: UserParams,
      body: SetSecretsRequest,
      responses: {
        200: "Stored; every secret name the user now has",
        ...USER_WRITE_ERRORS,
        503: "The controller has no secret keys, or another process holds the user's lock (LOCKED; retry)",
      },
      audit: { action: "set_secrets", eventType: "SECRET_CHANGE" },
      handle: async ({ params, body, audit }) => {
        const names = Object.keys(body.secrets).sort();
        audit({ resource: `users/${params.user_id}/secrets.env`, details: { names } });
        const all = await setSecrets(ctx, params.user_id, new Map(Object.entries(body.secrets)));
        return { body: { user_id: params.user_id, set: names, secrets: all.sort() } };
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/users/{user_id}/secrets/{name}",
      access: "user",
      tag: "users",
      summary: "Remove a secret",
      description: "Refused with 422 while an enabled server requires the secret.",
      params: UserSecretParams,
      responses: {
        200: "Removed",
        ...USER_WRITE_ERRORS,
        404: "No such secret, or users/{user_id}/ does not exist (USER_NOT_FOUND)",
        422: "An enabled server requires the secret",
      },
      audit: { action: "remove_secret", eventType: "SECRET_CHANGE" },
      handle: async ({ params, audit }) => {
        audit({ resource: `users/${params.user_id}/secrets.env`, details: { names: [params.name] } });
        await removeSecret(ctx, params.user_id, params.name);
        return { body: { user_id: params.user_id, removed: params.name } };
      },
    }),
  ];
}
