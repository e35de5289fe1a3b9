import { DATA_PATHS } from "../../catalog/data-tree.js";
import { readJsonFile } from "../../catalog/read-json-file.js";
import { EnabledServersFile, type EnabledServer } from "../../schema/enabled-servers.js";
import { formatProblem } from "../../validate/problem.js";
import { type ApiContext, dataRoot } from "../deps.js";
import { UserParams } from "../params.js";
import { type ApiRoute, defineRoute } from "../route.js";

/** GET /users/{user_id}/enabled: the answer. */
export interface EnabledServersAnswer {
  user_id: string;
  file: string;
  /** False when the file is missing or invalid (`problems` say why; a missing file means nothing enabled). */
  valid: boolean;
  problems: string[];
  environment: Record<string, string>;
  servers: EnabledServer[];
  suspend: boolean;
}

/* The user's enabled-servers.json as the console edits it: each entry's per-server config. */
export function enabledReadRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "GET",
      path: "/users/{user_id}/enabled",
      access: "user",
      tag: "users",
      summary: "The user's enabled servers with their per-server config (enabled-servers.json)",
      description:
        "Entries in priority order with their `config`. A missing file is an empty list (`valid: true`); an " +
        "invalid one answers `valid: false` with its problems and no entries (the reconciler keeps the last good " +
        "state meanwhile).",
      params: UserParams,
      responses: {
        200: "The entries",
        400: "Malformed user id",
        401: "Missing or invalid token",
        403: "The token may not access this user (or the API is disabled)",
      },
      handle: async ({ params }) => {
        const file = DATA_PATHS.enabledServers(params.user_id);
        const loaded = await readJsonFile(await dataRoot(ctx), file, EnabledServersFile, {
          maxBytes: ctx.deps.config.maxFileBytes,
        });
        const empty = { environment: {}, servers: [], suspend: false };
        const body: EnabledServersAnswer =
          loaded.status === "ok"
            ? { user_id: params.user_id, file, valid: true, problems: [], ...loaded.value }
            : loaded.status === "missing"
              ? { user_id: params.user_id, file, valid: true, problems: [], ...empty }
              : {
                  user_id: params.user_id,
                  file,
                  valid: false,
                  problems: loaded.problems.map(formatProblem),
                  ...empty,
                };
        return { body };
      },
    }),
  ];
}
