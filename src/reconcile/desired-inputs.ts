import {
  type GlobalFiles,
  type UserFiles,
  fileProblems,
  loadGlobalFiles,
  loadUserFiles,
} from "../catalog/data-tree.js";
import { type MergedCatalog, type Sourced, mergeGlobalCatalog } from "../catalog/merge.js";
import type { BaseCatalogFile, OverlayCatalogFile, UserCatalogFile } from "../schema/catalog.js";
import type { EnabledServersFile } from "../schema/enabled-servers.js";
import { DEFAULT_POLICY, type PolicyFile } from "../schema/policy.js";
import { canonicalHash } from "../util/canonical-json.js";
import type { Problem } from "../validate/problem.js";
import { access } from "node:fs/promises";
import path from "node:path";

export interface GlobalInputs {
  catalog: MergedCatalog;
  policy: PolicyFile;
  policyHash: string;
}

export interface GlobalSnapshot {
  /** Current inputs when valid, else the last good ones, else undefined (nothing may change). */
  inputs: GlobalInputs | undefined;
  problems: Problem[];
  usingLastGood: boolean;
}

/**
 * Base catalogs, overlays and policy, shared by every user. Re-read only after `invalidate()` (the watcher calls
 * it for any global change, every resync calls it too), so a burst of user reconciles parses them once.
 */
export class GlobalInputsStore {
  private cached: { root: string; snapshot: GlobalSnapshot } | undefined;
  private lastGood: GlobalInputs | undefined;
  private loading: { root: string; promise: Promise<GlobalSnapshot> } | undefined;
  private generation = 0;

  constructor(
    private readonly overlays: readonly string[],
    private readonly maxFileBytes: number,
  ) {}

  invalidate(): void {
    this.generation++;
    this.cached = undefined;
  }

  /** `root` is the data dir with symlinks resolved, so a swapped checkout is read whole, never half old. */
  async get(root: string): Promise<GlobalSnapshot> {
    if (this.cached?.root === root) return this.cached.snapshot;
    if (this.loading?.root === root) return this.loading.promise;
    const generation = this.generation;
    const promise = this.load(root).finally(() => {
      if (this.loading?.promise === promise) this.loading = undefined;
    });
    this.loading = { root, promise };
    const snapshot = await promise;
    if (generation === this.generation) this.cached = { root, snapshot };
    return snapshot;
  }

  private async load(root: string): Promise<GlobalSnapshot> {
    const files = await loadGlobalFiles(root, this.overlays, { maxBytes: this.maxFileBytes });
    const problems = [
      ...files.listingProblems,
      ...files.base.flatMap(fileProblems),
      ...files.overlays.flatMap(fileProblems),
    ];
    problems.push(...fileProblems(files.policy));
    if (problems.length === 0) {
      const merged = mergeGlobalCatalog(sourced(files.base), sourced(files.overlays));
      problems.push(...merged.problems);
      if (problems.length === 0) {
        const policy = files.policy.status === "ok" ? files.policy.value : DEFAULT_POLICY;
        const policyHash = files.policy.status === "ok" ? files.policy.hash : "default";
        this.lastGood = { catalog: merged.catalog, policy, policyHash };
        return { inputs: this.lastGood, problems: [], usingLastGood: false };
      }
    }
    return { inputs: this.lastGood, problems, usingLastGood: this.lastGood !== undefined };
  }
}

function sourced<T extends BaseCatalogFile | OverlayCatalogFile>(
  files: GlobalFiles["base"] | GlobalFiles["overlays"],
): Sourced<T>[] {
  const out: Sourced<T>[] = [];
  for (const f of files)
    if (f.status === "ok") out.push({ file: f.file, hash: f.hash, catalog: f.value as T });
  return out;
}

export interface UserInputs {
  enabled: EnabledServersFile;
  custom: Sourced<UserCatalogFile> | undefined;
  hash: string;
}

export type UserSnapshot =
  | { kind: "absent" }
  | { kind: "present"; inputs: UserInputs | undefined; problems: Problem[]; usingLastGood: boolean };

const EMPTY_ENABLED: EnabledServersFile = { environment: {}, servers: [], suspend: false };

/** One user's files, with the last good version kept per user so a bad edit never takes servers down. */
export class UserInputsStore {
  private readonly lastGood = new Map<string, UserInputs>();

  constructor(private readonly maxFileBytes: number) {}

  async get(userId: string, root: string): Promise<UserSnapshot> {
    if (!(await exists(path.join(root, "users", userId)))) {
      this.lastGood.delete(userId);
      return { kind: "absent" };
    }
    const files = await loadUserFiles(root, userId, { maxBytes: this.maxFileBytes });
    const problems = [...fileProblems(files.enabled), ...fileProblems(files.custom)];
    if (problems.length > 0) {
      const last = this.lastGood.get(userId);
      return { kind: "present", inputs: last, problems, usingLastGood: last !== undefined };
    }
    const inputs = toInputs(files);
    this.lastGood.set(userId, inputs);
    return { kind: "present", inputs, problems: [], usingLastGood: false };
  }
}

function toInputs(files: UserFiles): UserInputs {
  const enabled = files.enabled.status === "ok" ? files.enabled.value : EMPTY_ENABLED;
  const custom =
    files.custom.status === "ok"
      ? { file: files.custom.file, hash: files.custom.hash, catalog: files.custom.value }
      : undefined;
  const hash = canonicalHash({
    enabled: files.enabled.status === "ok" ? files.enabled.hash : null,
    custom: custom?.hash ?? null,
  });
  return { enabled, custom, hash };
}

async function exists(dir: string): Promise<boolean> {
  try {
    await access(dir);
    return true;
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return false;
    // Anything but "not there" (permissions, I/O) must not read as "user deleted".
    throw error;
  }
}
