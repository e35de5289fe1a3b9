import { DATA_PATHS, listUserDirs, loadGlobalFiles, loadUserFiles } from "../catalog/data-tree.js";
import { type MergedCatalog, type Sourced, mergeGlobalCatalog, mergeUserCatalog } from "../catalog/merge.js";
import type { LoadedFile, ReadOptions } from "../catalog/read-json-file.js";
import { isImageAllowed } from "../desired/image-policy.js";
import { resolveUserVolumePath } from "../desired/volume-paths.js";
import type { BaseCatalogFile, UserCatalogFile } from "../schema/catalog.js";
import type { VolumeMount } from "../schema/common.js";
import type { EnabledServer } from "../schema/enabled-servers.js";
import { DEFAULT_POLICY } from "../schema/policy.js";
import { readSecretsFile } from "../secrets/store.js";
import { PLACEHOLDER_USER_ID } from "../validate/validate-tree.js";
import { type Problem, formatProblem, jsonPath, sortProblems } from "../validate/problem.js";

/*
 * The cross-file checks `mcp-portal validate` makes, applied to a candidate write before it is stored. The
 * messages are the same as validate's (src/validate/validate-tree.ts), so a user sees one wording for one
 * problem whichever way it was caught.
 */

export interface EntryContext {
  userId: string;
  catalog: MergedCatalog;
  /** False when a catalog input is invalid: an id missing from `catalog` proves nothing then. */
  catalogComplete: boolean;
  /** Undefined when secrets.env cannot be read (its own problem). */
  secretNames: ReadonlySet<string> | undefined;
  overlayNames: readonly string[];
}

/** One entry of users/<id>/enabled-servers.json at `$.servers[index]`. */
export function checkEnabledEntry(
  file: string,
  index: number,
  entry: EnabledServer,
  ctx: EntryContext,
): Problem[] {
  const problems: Problem[] = [];
  entry.config?.volumes?.forEach((volume, j) => {
    const problem = volumeProblem(file, ["servers", index, "config", "volumes", j], volume, ctx.userId);
    if (problem) problems.push(problem);
  });
  const server = ctx.catalog.servers.get(entry.id);
  if (server === undefined) {
    if (!ctx.catalogComplete) return problems;
    const overlays = ctx.overlayNames.length > 0 ? `, the overlays ${ctx.overlayNames.join(", ")}` : "";
    problems.push({
      file,
      path: jsonPath(["servers", index, "id"]),
      message: `unknown server "${entry.id}": not in the base catalogs${overlays} or ${DATA_PATHS.customServers(ctx.userId)}`,
    });
    return problems;
  }
  if (entry.config !== undefined && !server.definition.user_configurable) {
    problems.push({
      file,
      path: jsonPath(["servers", index, "config"]),
      message: `server "${entry.id}" is not user_configurable (${server.origin.file}); remove its config`,
    });
  }
  if (ctx.secretNames === undefined) return problems;
  for (const name of server.definition.required_secrets) {
    if (ctx.secretNames.has(name)) continue;
    problems.push({
      file,
      path: jsonPath(["servers", index]),
      message: `server "${entry.id}" requires secret ${name}, which ${DATA_PATHS.secrets(ctx.userId)} does not declare (mcp-portal secrets set ${ctx.userId} ${name})`,
    });
  }
  return problems;
}

export function checkEnabledEntries(
  file: string,
  entries: readonly EnabledServer[],
  ctx: EntryContext,
): Problem[] {
  return entries.flatMap((entry, i) => checkEnabledEntry(file, i, entry, ctx));
}

/** Image against policy and every volume's host path, for the servers of a catalog file. */
export function checkCatalogServers(
  file: string,
  servers: readonly { image?: string | undefined; volumes?: readonly VolumeMount[] | undefined }[],
  userId: string,
  allowedImages: readonly string[] | undefined,
): Problem[] {
  const problems: Problem[] = [];
  servers.forEach((server, i) => {
    if (
      server.image !== undefined &&
      allowedImages !== undefined &&
      !isImageAllowed(server.image, allowedImages)
    ) {
      problems.push({
        file,
        path: jsonPath(["servers", i, "image"]),
        message: `image "${server.image}" is not allowed by ${DATA_PATHS.policy} allowed_images`,
      });
    }
    server.volumes?.forEach((volume, j) => {
      const problem = volumeProblem(file, ["servers", i, "volumes", j], volume, userId);
      if (problem) problems.push(problem);
    });
  });
  return problems;
}

function volumeProblem(
  file: string,
  at: readonly (string | number)[],
  volume: VolumeMount,
  userId: string,
): Problem | undefined {
  const resolved = resolveUserVolumePath(volume.host_path, userId);
  if (resolved.ok) return undefined;
  return {
    file,
    path: jsonPath([...at, "host_path"]),
    message: `${JSON.stringify(volume.host_path.slice(0, 128))} is not inside the user's area: ${resolved.reason}`,
  };
}

/** Names declared in a user's secrets.env, or undefined when the file cannot be read or parsed. */
export async function secretNames(dataDir: string, userId: string): Promise<ReadonlySet<string> | undefined> {
  try {
    return new Set((await readSecretsFile(dataDir, userId)).map((entry) => entry.name));
  } catch {
    return undefined;
  }
}

export function sourced<T>(file: LoadedFile<T>): Sourced<T> | undefined {
  return file.status === "ok" ? { file: file.file, hash: file.hash, catalog: file.value } : undefined;
}

/** Problems in `after` that are not in `before`: what a write would introduce. */
export function introduced(before: readonly Problem[], after: readonly Problem[]): Problem[] {
  const known = new Set(before.map(formatProblem));
  const seen = new Set<string>();
  return sortProblems(
    after.filter((problem) => {
      const key = formatProblem(problem);
      if (known.has(key) || seen.has(key)) return false;
      seen.add(key);
      return true;
    }),
  );
}

interface UserView {
  userId: string;
  enabledFile: string;
  enabled: readonly EnabledServer[];
  custom: Sourced<UserCatalogFile> | undefined;
  customInvalid: boolean;
  secretNames: ReadonlySet<string> | undefined;
}

/**
 * What replacing (or adding) the base catalog `file` with `candidate` would break: the candidate's own images
 * and volumes, merge conflicts with the other base catalogs and the selected overlays, and every user's enabled
 * servers that would become unknown, unconfigurable or need a secret they do not have. Only problems the change
 * introduces are returned; problems the tree already has are not this write's fault.
 */
export async function baseCatalogProblems(
  options: { dataDir: string; overlays: readonly string[]; read: ReadOptions },
  candidate: Sourced<BaseCatalogFile>,
): Promise<Problem[]> {
  const { dataDir, overlays, read } = options;
  const global = await loadGlobalFiles(dataDir, overlays, read);
  const others = global.base.filter((f) => f.file !== candidate.file);
  const complete =
    others.every((f) => f.status === "ok") &&
    global.overlays.every((f) => f.status === "ok") &&
    global.listingProblems.length === 0;
  const okOthers = others.map(sourced).filter((s) => s !== undefined);
  const current = global.base.map(sourced).filter((s) => s !== undefined);
  const selected = global.overlays.map(sourced).filter((s) => s !== undefined);
  const allowedImages =
    global.policy.status === "ok"
      ? global.policy.value.allowed_images
      : global.policy.status === "missing"
        ? DEFAULT_POLICY.allowed_images
        : undefined;

  const before = mergeGlobalCatalog(current, selected);
  const after = mergeGlobalCatalog([...okOthers, candidate], selected);
  const problemsBefore = [...before.problems];
  const problemsAfter = [
    ...after.problems,
    ...checkCatalogServers(candidate.file, candidate.catalog.servers, PLACEHOLDER_USER_ID, allowedImages),
  ];
  if (complete) {
    const users = await loadUserViews(dataDir, read);
    problemsBefore.push(...usersProblems(users, before.catalog, overlays));
    problemsAfter.push(...usersProblems(users, after.catalog, overlays));
  }
  return introduced(problemsBefore, problemsAfter);
}

async function loadUserViews(dataDir: string, read: ReadOptions): Promise<UserView[]> {
  const { names } = await listUserDirs(dataDir);
  const views = await Promise.all(
    names.map(async (userId): Promise<UserView | undefined> => {
      const files = await loadUserFiles(dataDir, userId, read);
      if (files.enabled.status !== "ok") return undefined;
      return {
        userId,
        enabledFile: files.enabled.file,
        enabled: files.enabled.value.servers,
        custom: sourced(files.custom),
        customInvalid: files.custom.status === "invalid",
        secretNames: await secretNames(dataDir, userId),
      };
    }),
  );
  return views.filter((v) => v !== undefined);
}

function usersProblems(
  users: readonly UserView[],
  global: MergedCatalog,
  overlays: readonly string[],
): Problem[] {
  return users.flatMap((user) =>
    checkEnabledEntries(user.enabledFile, user.enabled, {
      userId: user.userId,
      catalog: mergeUserCatalog(global, user.custom),
      catalogComplete: !user.customInvalid,
      secretNames: user.secretNames,
      overlayNames: overlays,
    }),
  );
}
