import type { z } from "zod";
import { DATA_PATHS, loadUserFiles } from "../catalog/data-tree.js";
import { mergeUserCatalog } from "../catalog/merge.js";
import { jsonSyntaxProblem, readCappedFile } from "../catalog/read-json-file.js";
import { EnabledServersFile, type ServerConfig } from "../schema/enabled-servers.js";
import { encryptSecret } from "../secrets/cipher.js";
import { SecretsFileError } from "../secrets/errors.js";
import { checkTreeDir } from "../catalog/tree-paths.js";
import { writeTreeFile } from "../catalog/tree-write.js";
import { readSecretsFile, writeSecretsFile } from "../secrets/store.js";
import { LockNames } from "../util/state-locks.js";
import { type EntryContext, checkEnabledEntries, checkEnabledEntry } from "../validate/cross-checks.js";
import { type Problem, problemsFromZod } from "../validate/problem.js";
import { type ApiContext, dataRoot } from "./deps.js";
import { ApiError, invalidDesiredState } from "./errors.js";
import { introduced, secretNames, sourced } from "./write-checks.js";

/*
 * Writes to one user's desired-state files: read, change, validate, write atomically, all under the user's lock
 * (a lock file in the state dir, shared with the CLI), then enqueue the user (the file watcher would notice too;
 * this saves the debounce). The user's directory must exist and be a real directory: the API never creates a
 * user (a token outliving its user must not bring the user back) and never writes through a link.
 */

/** Runs a write for one user under the user's lock, once users/<id>/ is known to be a real directory. */
function userWrite<T>(
  ctx: ApiContext,
  userId: string,
  purpose: string,
  task: (root: string) => Promise<T>,
): Promise<T> {
  return ctx.locks.run(LockNames.user(userId), `api: ${purpose}`, async () => {
    const root = await dataRoot(ctx);
    const dir = await checkTreeDir(root, `${DATA_PATHS.usersDir}/${userId}`);
    if (dir.status === "missing") {
      throw new ApiError(
        404,
        "USER_NOT_FOUND",
        `users/${userId}/ does not exist in the data directory; the API never creates a user (add the directory to the tree first)`,
      );
    }
    if (dir.status === "refused") {
      throw new ApiError(409, "USER_DIR_REFUSED", `users/${userId}/ cannot be used`, [dir.problem]);
    }
    return task(root);
  });
}

type EnabledInput = z.input<typeof EnabledServersFile>;
type EntryInput = EnabledInput["servers"][number];

export interface WriteOutcome {
  file: string;
  changed: boolean;
}

/** The user's enabled-servers.json as written (input shape, so defaults are not spelled out), or a fresh one. */
async function readEnabledForUpdate(
  ctx: ApiContext,
  root: string,
  userId: string,
): Promise<{ file: string; value: EnabledInput; text: string | undefined }> {
  const file = DATA_PATHS.enabledServers(userId);
  const read = await readCappedFile(root, file, { maxBytes: ctx.deps.config.maxFileBytes });
  if (read.status === "missing") return { file, value: { servers: [] }, text: undefined };
  if (read.status === "invalid") throw conflict(file, [read.problem]);
  const text = read.bytes.toString("utf8");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw conflict(file, [jsonSyntaxProblem(file, text, error)]);
  }
  const parsed = EnabledServersFile.safeParse(raw);
  if (!parsed.success) throw conflict(file, problemsFromZod(file, parsed.error));
  // Valid against a strict schema, so the raw value is exactly the schema's input shape.
  return { file, value: raw as EnabledInput, text };
}

function conflict(file: string, problems: readonly Problem[]): ApiError {
  return new ApiError(
    409,
    "DESIRED_STATE_INVALID",
    `${file} is invalid as it is; fix it (in git or by hand) before changing it through the API`,
    problems,
  );
}

async function writeEnabled(
  root: string,
  file: string,
  value: EnabledInput,
  previous: string | undefined,
): Promise<boolean> {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  if (text === previous) return false;
  await writeTreeFile(root, file, text);
  return true;
}

async function entryContext(ctx: ApiContext, root: string, userId: string): Promise<EntryContext> {
  const { maxFileBytes, overlays } = ctx.deps.config;
  const snapshot = await ctx.deps.global.get(root);
  if (snapshot.inputs === undefined) {
    throw new ApiError(
      503,
      "CATALOG_UNAVAILABLE",
      "the catalogs have never been valid since the controller started; servers cannot be checked",
      snapshot.problems,
    );
  }
  const files = await loadUserFiles(root, userId, { maxBytes: maxFileBytes });
  return {
    userId,
    catalog: mergeUserCatalog(snapshot.inputs.catalog, sourced(files.custom)),
    catalogComplete: snapshot.problems.length === 0 && files.custom.status !== "invalid",
    secretNames: await secretNames(root, userId),
    overlayNames: overlays,
  };
}

/**
 * Adds `serverId` to the user's enabled servers. `config` (as sent: defaults are not spelled out in the file)
 * replaces the server's config (an empty one removes it); without `config` an enabled server keeps its config.
 */
export function enableServer(
  ctx: ApiContext,
  userId: string,
  serverId: string,
  config: z.input<typeof ServerConfig> | undefined,
): Promise<WriteOutcome> {
  return userWrite(ctx, userId, "enable server", async (root) => {
    const { file, value, text } = await readEnabledForUpdate(ctx, root, userId);
    const servers: EntryInput[] = [...value.servers];
    let index = servers.findIndex((s) => s.id === serverId);
    const entry: EntryInput = index >= 0 ? { ...(servers[index] as EntryInput) } : { id: serverId };
    if (config !== undefined) {
      if (isEmptyConfig(config)) delete entry.config;
      else entry.config = config;
    }
    if (index >= 0) servers[index] = entry;
    else index = servers.push(entry) - 1;
    const candidate: EnabledInput = { ...value, servers };
    const parsed = EnabledServersFile.safeParse(candidate);
    if (!parsed.success) throw invalidDesiredState(problemsFromZod(file, parsed.error));
    const parsedEntry = parsed.data.servers[index];
    if (parsedEntry !== undefined) {
      const problems = checkEnabledEntry(file, index, parsedEntry, await entryContext(ctx, root, userId));
      if (problems.length > 0) throw invalidDesiredState(problems);
    }
    const changed = await writeEnabled(root, file, candidate, text);
    if (changed) ctx.deps.controller.enqueue(userId);
    return { file, changed };
  });
}

function isEmptyConfig(config: z.input<typeof ServerConfig>): boolean {
  return config.environment === undefined && config.volumes === undefined;
}

/** Removes `serverId` from the user's enabled servers; unchanged (not an error) when it was not enabled. */
export function disableServer(ctx: ApiContext, userId: string, serverId: string): Promise<WriteOutcome> {
  return userWrite(ctx, userId, "disable server", async (root) => {
    const { file, value, text } = await readEnabledForUpdate(ctx, root, userId);
    const servers = value.servers.filter((s) => s.id !== serverId);
    if (servers.length === value.servers.length) return { file, changed: false };
    const changed = await writeEnabled(root, file, { ...value, servers }, text);
    if (changed) ctx.deps.controller.enqueue(userId);
    return { file, changed };
  });
}

/** The user's secrets.env entries; a file that cannot be used is a 409 with its problems. */
async function readSecretsForUpdate(ctx: ApiContext, root: string, userId: string) {
  try {
    return await readSecretsFile(root, userId, { maxBytes: ctx.deps.config.maxFileBytes });
  } catch (error) {
    if (!(error instanceof SecretsFileError)) throw error;
    const file = DATA_PATHS.secrets(userId);
    throw conflict(
      file,
      error.problems.map((line) => {
        const rest = line.startsWith(`${file}: `) ? line.slice(file.length + 2) : line;
        const match = /^(line \d+): (.*)$/s.exec(rest);
        return { file, path: match?.[1] ?? "$", message: match?.[2] ?? rest };
      }),
    );
  }
}

/** Encrypts and stores the given secrets (one write for all of them); returns every name the user now has. */
export function setSecrets(
  ctx: ApiContext,
  userId: string,
  values: ReadonlyMap<string, string>,
): Promise<string[]> {
  const keys = ctx.deps.secrets;
  if (keys === undefined) {
    return Promise.reject(
      new ApiError(
        503,
        "SECRETS_UNAVAILABLE",
        "secrets cannot be stored: the controller has no MCP_PORTAL_SECRET_KEYS (or _FILE)",
      ),
    );
  }
  return userWrite(ctx, userId, "set secrets", async (root) => {
    const entries = await readSecretsForUpdate(ctx, root, userId);
    for (const [name, value] of values) {
      const entry = { name, ...encryptSecret(keys.keyRing, userId, name, value) };
      const index = entries.findIndex((existing) => existing.name === name);
      if (index >= 0) entries[index] = entry;
      else entries.push(entry);
    }
    await writeSecretsFile(root, userId, entries);
    ctx.deps.controller.enqueue(userId);
    return entries.map((entry) => entry.name);
  });
}

/** Secret names (and the key id each is encrypted with) of a user; never values. */
export async function listSecretNames(
  ctx: ApiContext,
  userId: string,
): Promise<{ name: string; key_id: string }[]> {
  const entries = await readSecretsForUpdate(ctx, await dataRoot(ctx), userId);
  return entries.map((entry) => ({ name: entry.name, key_id: entry.keyId }));
}

/**
 * Removes a secret. Refused (422) while an enabled server requires it, since the tree would then be invalid;
 * 404 when the user has no such secret.
 */
export function removeSecret(ctx: ApiContext, userId: string, name: string): Promise<void> {
  return userWrite(ctx, userId, "remove secret", async (root) => {
    const entries = await readSecretsForUpdate(ctx, root, userId);
    const remaining = entries.filter((entry) => entry.name !== name);
    if (remaining.length === entries.length)
      throw new ApiError(404, "NOT_FOUND", `user ${userId} has no secret ${name}`);
    const files = await loadUserFiles(root, userId, { maxBytes: ctx.deps.config.maxFileBytes });
    if (files.enabled.status === "ok") {
      const base = await entryContext(ctx, root, userId);
      const before = checkEnabledEntries(files.enabled.file, files.enabled.value.servers, base);
      const after = checkEnabledEntries(files.enabled.file, files.enabled.value.servers, {
        ...base,
        secretNames: new Set(remaining.map((entry) => entry.name)),
      });
      const problems = introduced(before, after);
      if (problems.length > 0) throw invalidDesiredState(problems);
    }
    await writeSecretsFile(root, userId, remaining);
    ctx.deps.controller.enqueue(userId);
  });
}
