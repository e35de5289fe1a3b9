import { stat } from "node:fs/promises";
import path from "node:path";
import {
  DATA_PATHS,
  fileProblems,
  listJsonFiles,
  listUserDirs,
  loadUserFiles,
} from "../catalog/data-tree.js";
import { type MergedCatalog, type Sourced, mergeGlobalCatalog, mergeUserCatalog } from "../catalog/merge.js";
import {
  type LoadedFile,
  type ReadOptions,
  readCappedFile,
  readJsonFile,
} from "../catalog/read-json-file.js";
import type { Backend } from "../config.js";
import type { AllowedImages } from "../desired/image-policy.js";
import { BaseCatalogFile, OverlayCatalogFile, type UserCatalogFile } from "../schema/catalog.js";
import { DEFAULT_POLICY, PolicyFile } from "../schema/policy.js";
import { parseSecretsFile } from "../secrets/secrets-file.js";
import {
  PLACEHOLDER_USER_ID,
  allowedImagesOf,
  allowedImagesWarning,
  checkCatalogServers,
  checkEnabledEntries,
  checkLoosenedServerEnvironment,
  checkShadowingServers,
  egressUnsupportedWarnings,
  restrictedEgressEntries,
} from "./cross-checks.js";
import { type PoolSettings, emptyPoolCapacity, maxPortsWarnings, poolShortfalls } from "./capacity.js";
import { catalogIdleWarnings, policyIdleWarnings } from "./idle-backend.js";
import { type Problem, sortProblems } from "./problem.js";

export interface ValidateTreeOptions {
  /** Overlays to merge, in order (MCP_PORTAL_OVERLAYS), or every file of catalogs/overlays by name. */
  overlays?: readonly string[] | "all";
  /** Size cap per file; 5 MiB by default. */
  maxFileBytes?: number;
  /** MCP_PORTAL_ALLOWED_IMAGES: the image allow-list when policy.json gives none. */
  defaultAllowedImages?: readonly string[] | undefined;
  /** The port and subnet pools: warns when the tree has more users than they hold. */
  pools?: PoolSettings;
  /** MCP_PORTAL_BACKEND: on `swarm`, restricted-egress servers are refused (a warning per entry), and every idle
   * timeout the tree sets is a warning (not applied). */
  backend?: Backend;
}

export interface ValidateReport {
  /** What is wrong: `validate` exits 1 on any. */
  problems: Problem[];
  /** What works but may surprise: shown, never a failure. */
  warnings: Problem[];
  /** The image allow-list in force and where it comes from; undefined when policy.json is invalid. */
  allowedImages: AllowedImages | undefined;
}

interface GlobalState {
  catalog: MergedCatalog;
  /** False when a base catalog or selected overlay is invalid: an id missing from `catalog` proves nothing. */
  complete: boolean;
  /** Undefined when policy.json is invalid (its own problem); image checks are then skipped. */
  allowedImages: AllowedImages | undefined;
  /** policy.json, or the defaults without it; undefined when it is invalid (checks against it are skipped). */
  policy: PolicyFile | undefined;
  overlayNames: readonly string[];
  /** The backend applies no idle timeout (Swarm): each one set is a warning. */
  idleNotApplied: boolean;
}

/**
 * Checks the whole desired-state tree without Docker or keys: every file parses, the selected overlays merge,
 * enabled servers exist and are configurable where configured, volumes stay in the user's area, images are
 * allowed, required secrets are declared, no custom server takes an id policy.json server_security loosens.
 * Problems come back sorted, each naming a file, a path and a reason.
 */
export async function validateTree(dataDir: string, options: ValidateTreeOptions = {}): Promise<Problem[]> {
  return (await validateTreeReport(dataDir, options)).problems;
}

/** validateTree's problems, plus warnings and the image allow-list in force. */
export async function validateTreeReport(
  dataDir: string,
  options: ValidateTreeOptions = {},
): Promise<ValidateReport> {
  if (!(await isDirectory(dataDir))) {
    return {
      problems: [
        { file: ".", path: "$", message: `data dir ${dataDir} does not exist or is not a directory` },
      ],
      warnings: [],
      allowedImages: undefined,
    };
  }
  const read: ReadOptions = options.maxFileBytes === undefined ? {} : { maxBytes: options.maxFileBytes };
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  const global = await checkGlobalFiles(dataDir, options, read, problems, warnings);
  const unrestricted = global.allowedImages && allowedImagesWarning(global.allowedImages);
  if (unrestricted) warnings.push(unrestricted);
  const users = await listUserDirs(dataDir);
  problems.push(...users.problems);
  const perUser = await Promise.all(
    users.names.map((userId) => checkUser(dataDir, userId, global, read, options.backend)),
  );
  let restrictedUsers = 0;
  for (const user of perUser) {
    problems.push(...user.problems);
    warnings.push(...user.warnings);
    if (user.restricted) restrictedUsers++;
  }
  if (options.pools) {
    warnings.push(...capacityWarnings(options.pools, users.names.length, restrictedUsers, global.policy));
  }
  return {
    problems: dedupe(sortProblems(problems)),
    warnings: dedupe(sortProblems(warnings)),
    allowedImages: global.allowedImages,
  };
}

/**
 * More users than the pools hold, and policy.json limits that ask for more ports than a block has. A user with a
 * restricted-egress server holds two subnets (its network and its egress network).
 */
function capacityWarnings(
  pools: PoolSettings,
  users: number,
  restrictedUsers: number,
  policy: PolicyFile | undefined,
): Problem[] {
  const capacity = emptyPoolCapacity(pools);
  const demand = {
    blocks: { needed: users, free: capacity.blocks },
    subnets: { needed: users + restrictedUsers, free: capacity.subnets, egress: restrictedUsers },
  };
  const shortfalls = poolShortfalls(pools, demand, "tree").map((message): Problem => ({
    file: DATA_PATHS.usersDir,
    path: "$",
    message,
  }));
  return [...shortfalls, ...(policy ? maxPortsWarnings(policy, pools.portsPerUser) : [])];
}

async function checkGlobalFiles(
  dataDir: string,
  options: ValidateTreeOptions,
  read: ReadOptions,
  problems: Problem[],
  warnings: Problem[],
): Promise<GlobalState> {
  const idleNotApplied = options.backend === "swarm";
  const overlaySelection = options.overlays ?? [];
  const baseListing = await listJsonFiles(dataDir, DATA_PATHS.baseDir);
  const overlayListing = await listJsonFiles(dataDir, DATA_PATHS.overlayDir);
  problems.push(...baseListing.problems, ...overlayListing.problems);

  const base = await Promise.all(
    baseListing.names.map((file) => readJsonFile(dataDir, file, BaseCatalogFile, read)),
  );
  // Every overlay file must parse, selected or not: a broken overlay should fail review, not the next rollout.
  const overlays = new Map<string, LoadedFile<OverlayCatalogFile>>();
  await Promise.all(
    overlayListing.names.map(async (file) => {
      overlays.set(
        path.posix.basename(file, ".json"),
        await readJsonFile(dataDir, file, OverlayCatalogFile, read),
      );
    }),
  );
  for (const file of [...base, ...overlays.values()]) problems.push(...fileProblems(file));

  const selectedNames = overlaySelection === "all" ? [...overlays.keys()].sort() : [...overlaySelection];
  const selected: Sourced<OverlayCatalogFile>[] = [];
  let complete = base.every((file) => file.status === "ok");
  for (const name of selectedNames) {
    const loaded = overlays.get(name);
    if (loaded === undefined) {
      problems.push({
        file: DATA_PATHS.overlay(name),
        path: "$",
        message: `overlay "${name}" is selected (MCP_PORTAL_OVERLAYS) but does not exist`,
      });
      complete = false;
    } else if (loaded.status === "ok") {
      selected.push(sourced(loaded));
    } else {
      complete = false;
    }
  }

  const okBase = base.filter((file) => file.status === "ok").map(sourced);
  const merged = mergeGlobalCatalog(okBase, selected);
  // With a base catalog or selected overlay unreadable, an overlay patching a server it cannot see would be
  // reported as adding an incomplete server: only the base catalogs' own merge problems are real then.
  const baseFiles = new Set(base.map((file) => file.file));
  problems.push(...(complete ? merged.problems : merged.problems.filter((p) => baseFiles.has(p.file))));
  // Overlays not selected here still have to merge: each on its own on top of what is selected.
  for (const [name, loaded] of overlays) {
    if (!complete || selectedNames.includes(name) || loaded.status !== "ok") continue;
    const alone = mergeGlobalCatalog(okBase, [...selected, sourced(loaded)]);
    problems.push(...alone.problems.filter((p) => p.file === loaded.file));
  }

  const policy = await readJsonFile(dataDir, DATA_PATHS.policy, PolicyFile, read);
  problems.push(...fileProblems(policy));
  const allowedImages = allowedImagesOf(policy, options.defaultAllowedImages);

  for (const file of okBase) {
    problems.push(
      ...checkCatalogServers(file.file, file.catalog.servers, PLACEHOLDER_USER_ID, allowedImages),
    );
    if (idleNotApplied) warnings.push(...catalogIdleWarnings(file.file, file.catalog.servers));
  }
  for (const loaded of overlays.values()) {
    if (loaded.status !== "ok") continue;
    problems.push(
      ...checkCatalogServers(loaded.file, loaded.value.servers, PLACEHOLDER_USER_ID, allowedImages),
    );
    if (idleNotApplied) warnings.push(...catalogIdleWarnings(loaded.file, loaded.value.servers));
  }
  if (idleNotApplied && policy.status === "ok")
    warnings.push(...policyIdleWarnings(policy.file, policy.value));
  return {
    catalog: merged.catalog,
    complete,
    allowedImages,
    policy: policy.status === "ok" ? policy.value : policy.status === "missing" ? DEFAULT_POLICY : undefined,
    overlayNames: selectedNames,
    idleNotApplied,
  };
}

async function checkUser(
  dataDir: string,
  userId: string,
  global: GlobalState,
  read: ReadOptions,
  backend: Backend | undefined,
): Promise<{ problems: Problem[]; warnings: Problem[]; restricted: boolean }> {
  const { enabled, custom } = await loadUserFiles(dataDir, userId, read);
  const problems = [...fileProblems(enabled), ...fileProblems(custom)];
  const warnings: Problem[] = [];
  if (custom.status === "ok") {
    problems.push(...checkCustomFile(custom.file, custom.value, userId, global.allowedImages));
    if (global.policy)
      problems.push(...checkShadowingServers(custom.file, custom.value.servers, global.policy));
    if (global.idleNotApplied) warnings.push(...catalogIdleWarnings(custom.file, custom.value.servers));
  }
  const secrets = await readSecretNames(dataDir, userId, read);
  problems.push(...secrets.problems);
  if (enabled.status !== "ok") return { problems, warnings, restricted: false };

  const catalog = mergeUserCatalog(global.catalog, custom.status === "ok" ? sourced(custom) : undefined);
  const catalogComplete = global.complete && custom.status !== "invalid";
  problems.push(
    ...checkEnabledEntries(enabled.file, enabled.value.servers, {
      userId,
      catalog,
      catalogComplete,
      secretNames: secrets.names,
      overlayNames: global.overlayNames,
    }),
  );
  if (global.policy) {
    const environment = checkLoosenedServerEnvironment(enabled.file, enabled.value, catalog, global.policy);
    problems.push(...environment.problems);
    warnings.push(...environment.warnings);
  }
  const restricted = global.policy ? restrictedEgressEntries(enabled.value, catalog, global.policy) : [];
  if (backend === "swarm") warnings.push(...egressUnsupportedWarnings(enabled.file, restricted));
  // On Swarm a restricted server is refused: it makes no egress network.
  return { problems, warnings, restricted: backend !== "swarm" && restricted.length > 0 };
}

function checkCustomFile(
  file: string,
  custom: UserCatalogFile,
  userId: string,
  allowedImages: AllowedImages | undefined,
): Problem[] {
  const problems = checkCatalogServers(file, custom.servers, userId, allowedImages);
  if (custom.user_id !== undefined && custom.user_id !== userId) {
    problems.push({
      file,
      path: "$.user_id",
      message: `"${custom.user_id}" does not match the directory ${DATA_PATHS.usersDir}/${userId}`,
    });
  }
  return problems;
}

/** Names declared in users/<id>/secrets.env (values stay encrypted; no key is needed). */
async function readSecretNames(
  dataDir: string,
  userId: string,
  read: ReadOptions,
): Promise<{ names: ReadonlySet<string> | undefined; problems: Problem[] }> {
  const file = DATA_PATHS.secrets(userId);
  const bytes = await readCappedFile(dataDir, file, read);
  if (bytes.status === "missing") return { names: new Set(), problems: [] };
  if (bytes.status === "invalid") return { names: undefined, problems: [bytes.problem] };
  const parsed = parseSecretsFile(bytes.bytes.toString("utf8"));
  if (parsed.ok) return { names: new Set(parsed.entries.map((e) => e.name)), problems: [] };
  return {
    names: undefined,
    problems: parsed.problems.map((text) => {
      const match = /^(line \d+): (.*)$/s.exec(text);
      return match
        ? { file, path: match[1] ?? "$", message: match[2] ?? text }
        : { file, path: "$", message: text };
    }),
  };
}

function sourced<T>(file: { file: string; hash: string; value: T }): Sourced<T> {
  return { file: file.file, hash: file.hash, catalog: file.value };
}

function dedupe(problems: readonly Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.file}\0${p.path}\0${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
