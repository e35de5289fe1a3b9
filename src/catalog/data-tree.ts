import { readdir } from "node:fs/promises";
import path from "node:path";
import { BaseCatalogFile, OverlayCatalogFile, UserCatalogFile } from "../schema/catalog.js";
import { EnabledServersFile } from "../schema/enabled-servers.js";
import { PolicyFile } from "../schema/policy.js";
import { isValidUserId } from "../util/ids.js";
import type { Problem } from "../validate/problem.js";
import { isErrno, type LoadedFile, type ReadOptions, readJsonFile } from "./read-json-file.js";
import { checkTreeDir, errnoCode, resolveRoot, symlinkRefused } from "./tree-paths.js";

/** Relative paths of the data-directory contract (README: the data directory). */
export const DATA_PATHS = {
  baseDir: "catalogs/base",
  overlayDir: "catalogs/overlays",
  usersDir: "users",
  policy: "policy.json",
  enabledServers: (userId: string) => `users/${userId}/enabled-servers.json`,
  customServers: (userId: string) => `users/${userId}/custom-servers.json`,
  secrets: (userId: string) => `users/${userId}/secrets.env`,
  overlay: (name: string) => `catalogs/overlays/${name}.json`,
} as const;

export interface Listing {
  names: string[];
  problems: Problem[];
}

/**
 * `*.json` files of a directory, sorted by name so results never depend on the listing order. A directory that
 * leads outside the data dir is a problem, not a listing (each file is checked again when read).
 */
export async function listJsonFiles(dataDir: string, relDir: string): Promise<Listing> {
  const unlistable = (error: unknown): Listing => ({
    names: [],
    problems: [{ file: relDir, path: "$", message: `cannot list directory: ${errnoCode(error)}` }],
  });
  try {
    const root = await resolveRoot(dataDir);
    if (root === undefined) return { names: [], problems: [] };
    const dir = await checkTreeDir(root, relDir);
    if (dir.status === "missing") return { names: [], problems: [] };
    if (dir.status === "refused") return { names: [], problems: [dir.problem] };
    const entries = await readdir(dir.dir, { withFileTypes: true });
    const names = entries
      .filter(
        (e) => (e.isFile() || e.isSymbolicLink()) && e.name.endsWith(".json") && !e.name.startsWith("."),
      )
      .map((e) => `${relDir}/${e.name}`)
      .sort();
    return { names, problems: [] };
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { names: [], problems: [] };
    return unlistable(error);
  }
}

/**
 * The user ids of the data dir, plus a problem for each entry that may not be used as one. A user directory that
 * is a symbolic link is listed (so the controller looks at it and keeps its last good state) with a problem: its
 * files are refused when read. `users` itself being a link is a problem too; its entries are listed the same way.
 */
export async function listUserDirs(dataDir: string): Promise<Listing> {
  const problems: Problem[] = [];
  const unlistable = (error: unknown): Listing => ({
    names: [],
    problems: [
      ...problems,
      { file: DATA_PATHS.usersDir, path: "$", message: `cannot list directory: ${errnoCode(error)}` },
    ],
  });
  let root: string | undefined;
  try {
    root = await resolveRoot(dataDir);
  } catch (error) {
    return unlistable(error);
  }
  if (root === undefined) return { names: [], problems: [] };
  const usersDir = await checkTreeDir(root, DATA_PATHS.usersDir);
  if (usersDir.status === "missing") return { names: [], problems: [] };
  if (usersDir.status === "refused") problems.push(usersDir.problem);
  let entries;
  try {
    entries = await readdir(path.join(root, DATA_PATHS.usersDir), { withFileTypes: true });
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { names: [], problems };
    return unlistable(error);
  }
  const names: string[] = [];
  for (const entry of entries) {
    const link = entry.isSymbolicLink();
    if (!entry.isDirectory() && !link) continue;
    const file = `${DATA_PATHS.usersDir}/${JSON.stringify(entry.name).slice(1, -1).slice(0, 80)}`;
    if (!isValidUserId(entry.name)) {
      problems.push({
        file,
        path: "$",
        message: "directory name is not a valid user id (^[a-zA-Z0-9-]{1,32}$); ignored",
      });
      continue;
    }
    names.push(entry.name);
    if (link) problems.push(symlinkRefused(file));
  }
  return { names: names.sort(), problems };
}

export interface GlobalFiles {
  base: LoadedFile<BaseCatalogFile>[];
  /** The overlays selected for merging, in the order they were named. */
  overlays: LoadedFile<OverlayCatalogFile>[];
  policy: LoadedFile<PolicyFile>;
  listingProblems: Problem[];
}

export async function loadGlobalFiles(
  dataDir: string,
  overlayNames: readonly string[],
  options: ReadOptions = {},
): Promise<GlobalFiles> {
  const baseListing = await listJsonFiles(dataDir, DATA_PATHS.baseDir);
  const base = await Promise.all(
    baseListing.names.map((f) => readJsonFile(dataDir, f, BaseCatalogFile, options)),
  );
  const overlays = await Promise.all(
    overlayNames.map(async (name): Promise<LoadedFile<OverlayCatalogFile>> => {
      const file = DATA_PATHS.overlay(name);
      const loaded = await readJsonFile(dataDir, file, OverlayCatalogFile, options);
      if (loaded.status !== "missing") return loaded;
      return {
        status: "invalid",
        file,
        problems: [
          {
            file,
            path: "$",
            message: `overlay "${name}" is selected (MCP_PORTAL_OVERLAYS) but does not exist`,
          },
        ],
      };
    }),
  );
  const policy = await readJsonFile(dataDir, DATA_PATHS.policy, PolicyFile, options);
  return { base, overlays, policy, listingProblems: baseListing.problems };
}

export interface UserFiles {
  userId: string;
  enabled: LoadedFile<EnabledServersFile>;
  custom: LoadedFile<UserCatalogFile>;
}

export async function loadUserFiles(
  dataDir: string,
  userId: string,
  options: ReadOptions = {},
): Promise<UserFiles> {
  const [enabled, custom] = await Promise.all([
    readJsonFile(dataDir, DATA_PATHS.enabledServers(userId), EnabledServersFile, options),
    readJsonFile(dataDir, DATA_PATHS.customServers(userId), UserCatalogFile, options),
  ]);
  return { userId, enabled, custom };
}

export function fileProblems(file: LoadedFile<unknown>): Problem[] {
  return file.status === "invalid" ? file.problems : [];
}
