import { readFile } from "node:fs/promises";
import { z } from "zod";
import { isRuntimeError } from "../../docker/runtime.js";
import { UserStatus } from "../../contracts/status-file.js";
import { SecretsFileError } from "../../secrets/errors.js";
import { readSecretsFile, resolveSecrets } from "../../secrets/store.js";
import { type ConsoleApiDeps, LOG_LIMITS } from "../console-deps.js";
import { type ApiContext, dataRoot } from "../deps.js";
import type { ContainerInfo } from "../engine/container-reader.js";
import { splitLogLines } from "../engine/log-tail.js";
import { redactValues } from "../engine/redact-values.js";
import { countRestarts, readAuditWindow } from "../engine/restart-count.js";
import { ApiError, notFound } from "../errors.js";
import { UserParams, UserServerParams } from "../params.js";
import { type ApiRoute, defineRoute } from "../route.js";

/*
 * Read-only engine views for the console's Server Monitor: the user's containers as the engine sees them, and
 * the last lines of one server's log with the user's secret values replaced before they leave the controller.
 */

export const LogsQuery = z.strictObject({
  lines: z.coerce
    .number()
    .int()
    .min(1)
    .max(LOG_LIMITS.maxLines, `at most ${LOG_LIMITS.maxLines} lines`)
    .default(LOG_LIMITS.defaultLines),
});

const USER_ERRORS = {
  400: "Malformed path or query",
  401: "Missing or invalid token",
  403: "The token may not access this user (or the API is disabled)",
} as const;

function engineOf(ctx: ApiContext): ConsoleApiDeps {
  const engine = ctx.deps.console;
  if (engine === undefined) throw new ApiError(503, "ENGINE_UNAVAILABLE", "this API has no engine access");
  return engine;
}

/** Engine errors as API answers: the engine being away is a 503, not a 500. */
async function engineCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isRuntimeError(error, "NotFound")) throw notFound("the container is gone");
    if (isRuntimeError(error, "Timeout") || isRuntimeError(error, "Unavailable")) {
      throw new ApiError(503, "ENGINE_UNAVAILABLE", `the Docker Engine did not answer: ${error.message}`);
    }
    throw error;
  }
}

/** The user's status.json, or undefined when there is none or it does not hold the contract's shape. */
async function readStatus(ctx: ApiContext, userId: string): Promise<UserStatus | undefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(ctx.deps.statuses.file(userId), "utf8"));
  } catch {
    return undefined;
  }
  const parsed = UserStatus.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/** The container serving a server: the one status names, else the newest (a replace may show two briefly). */
function containerOf(
  containers: readonly ContainerInfo[],
  serverId: string,
  status: UserStatus | undefined,
): ContainerInfo | undefined {
  const mine = containers.filter((c) => c.serverId === serverId);
  const named = status?.servers.find((s) => s.id === serverId)?.container_id;
  return (
    mine.find((c) => c.id === named) ??
    [...mine].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0))[0]
  );
}

/**
 * Every secret value of the user, decrypted, to be searched for in log text. A secrets file that exists but cannot
 * be read or decrypted means the values are unknown: the log is then refused rather than shown unredacted.
 */
async function secretValues(ctx: ApiContext, userId: string): Promise<{ name: string; value: string }[]> {
  let entries;
  try {
    entries = await readSecretsFile(await dataRoot(ctx), userId, { maxBytes: ctx.deps.config.maxFileBytes });
  } catch (error) {
    if (!(error instanceof SecretsFileError)) throw error;
    throw new ApiError(
      409,
      "SECRETS_UNREADABLE",
      "the log is withheld: the user's secrets cannot be read to redact it",
    );
  }
  if (entries.length === 0) return [];
  const keys = ctx.deps.secrets;
  if (keys === undefined) {
    throw new ApiError(
      503,
      "SECRETS_UNAVAILABLE",
      "the log is withheld: without secret keys it cannot be redacted",
    );
  }
  const resolved = resolveSecrets(
    entries,
    userId,
    entries.map((e) => e.name),
    keys.keyRing,
    keys.digestKey,
  );
  const values: { name: string; value: string }[] = [];
  for (const [name, resolution] of resolved) {
    if (!resolution.ok) {
      throw new ApiError(
        409,
        "SECRETS_UNREADABLE",
        `the log is withheld: secret ${name} cannot be decrypted to redact it`,
      );
    }
    values.push({ name, value: resolution.value });
  }
  return values;
}

/** A container as the console's endpoints describe it. */
export interface ContainerAnswer {
  id: string;
  name: string;
  state: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  oom_killed: boolean;
  error: string | null;
}

/** GET /users/{user_id}/containers. */
export interface ContainersAnswer {
  user_id: string;
  containers: (ContainerAnswer & { server_id: string; restarts: number; restarts_exact: boolean })[];
}

/** GET /users/{user_id}/servers/{server_id}/logs. */
export interface LogsAnswer {
  user_id: string;
  server_id: string;
  container: ContainerAnswer;
  lines: string[];
  truncated: boolean;
  redactions: number;
}

function containerBody(container: ContainerInfo): ContainerAnswer {
  return {
    id: container.id,
    name: container.name,
    state: container.state,
    created_at: container.createdAt,
    started_at: container.startedAt,
    finished_at: container.finishedAt,
    exit_code: container.exitCode,
    oom_killed: container.oomKilled,
    error: container.error,
  };
}

export function runtimeRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "GET",
      path: "/users/{user_id}/containers",
      access: "user",
      tag: "users",
      summary: "The user's containers as the engine sees them, with restart counts",
      description:
        "One entry per container of this installation for the user: engine state, start and finish times, exit " +
        "code, OOM kill, the engine's last error, and `restarts`: how often the controller started it again since " +
        "it was created (from the audit log's last 1 MiB; `restarts_exact: false` when that window begins later).",
      params: UserParams,
      responses: { 200: "Containers sorted by server id", ...USER_ERRORS, 503: "The engine does not answer" },
      handle: async ({ params, reply }) => {
        const engine = engineOf(ctx);
        const [containers, window] = await Promise.all([
          engineCall(() => engine.containers.list(params.user_id)),
          readAuditWindow(ctx.deps.config.stateDir),
        ]);
        reply.header("cache-control", "no-store");
        const body: ContainersAnswer = {
          user_id: params.user_id,
          containers: containers
            .map((container) => {
              const { restarts, exact } = countRestarts(window, { userId: params.user_id, ...container });
              return {
                server_id: container.serverId,
                ...containerBody(container),
                restarts,
                restarts_exact: exact,
              };
            })
            .sort((a, b) => (a.server_id < b.server_id ? -1 : a.server_id > b.server_id ? 1 : 0)),
        };
        return { body };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/users/{user_id}/servers/{server_id}/logs",
      access: "user",
      tag: "users",
      summary: "The last lines of a server's container log, with the user's secret values redacted",
      description:
        `\`?lines=\` (default ${LOG_LIMITS.defaultLines}, at most ${LOG_LIMITS.maxLines}) of stdout and stderr, ` +
        `oldest first (plain text, no timestamps); at most ${LOG_LIMITS.maxBytes} bytes are kept (older ` +
        `output dropped first, \`truncated: true\`), lines over ${LOG_LIMITS.maxLineChars} characters are ` +
        "shortened. Every value of the user's secrets is replaced by `[redacted NAME]` before the lines leave the " +
        "controller (`redactions` counts them); when the secrets cannot be read the log is withheld (409/503). " +
        "For a stdio server, stdout is its MCP traffic.",
      params: UserServerParams,
      query: LogsQuery,
      responses: {
        200: "The lines",
        ...USER_ERRORS,
        404: "The server has no container",
        409: "The user's secrets cannot be read, so the log is withheld",
        503: "The engine does not answer, or no secret keys to redact with",
      },
      handle: async ({ params, query, reply }) => {
        const engine = engineOf(ctx);
        const { user_id: userId, server_id: serverId } = params;
        const [containers, status] = await Promise.all([
          engineCall(() => engine.containers.list(userId)),
          readStatus(ctx, userId),
        ]);
        const container = containerOf(containers, serverId, status);
        if (container === undefined) throw notFound(`server ${serverId} of user ${userId} has no container`);
        // Secrets first: nothing is read from the engine unless it can be redacted.
        const secrets = await secretValues(ctx, userId);
        const read = await engineCall(() =>
          engine.containers.logs(container.id, { lines: query.lines, maxBytes: LOG_LIMITS.maxBytes }),
        );
        const redacted = redactValues(read.bytes.toString("utf8"), secrets);
        const lines = splitLogLines(redacted.text, {
          cutAtStart: read.truncated,
          maxLineChars: LOG_LIMITS.maxLineChars,
          maxLines: query.lines,
        });
        reply.header("cache-control", "no-store");
        const body: LogsAnswer = {
          user_id: userId,
          server_id: serverId,
          container: containerBody(container),
          lines,
          truncated: read.truncated,
          redactions: redacted.count,
        };
        return { body };
      },
    }),
  ];
}
