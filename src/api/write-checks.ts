import { listUserDirs, loadGlobalFiles, loadUserFiles } from "../catalog/data-tree.js";
import { type MergedCatalog, type Sourced, mergeGlobalCatalog, mergeUserCatalog } from "../catalog/merge.js";
import type { LoadedFile, ReadOptions } from "../catalog/read-json-file.js";
import type { BaseCatalogFile, UserCatalogFile } from "../schema/catalog.js";
import type { EnabledServer } from "../schema/enabled-servers.js";
import { readSecretsFile } from "../secrets/store.js";
import {
  PLACEHOLDER_USER_ID,
  allowedImagesOf,
  checkCatalogServers,
  checkEnabledEntries,
} from "../validate/cross-checks.js";
import { type Problem, formatProblem, sortProblems } from "../validate/problem.js";

/*
 * The cross-file checks `mcp-portal validate` makes (src/validate/cross-checks.ts), applied to a candidate write
 * before it is stored: only the problems the write would introduce count.
 */

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
  const allowedImages = allowedImagesOf(global.policy);

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
