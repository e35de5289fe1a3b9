import { checkTreeDir } from "../catalog/tree-paths.js";
import {
  DATA_PATHS,
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
import { type Clock, systemClock } from "../util/clock.js";

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
  /** Equal keys, equal snapshots (inputs and problems): lets an unchanged reconcile skip its work. */
  key: string;
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

  /** The snapshot already read for `root`, if any (no I/O). */
  peek(root: string): GlobalSnapshot | undefined {
    return this.cached?.root === root ? this.cached.snapshot : undefined;
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
        return {
          inputs: this.lastGood,
          problems: [],
          usingLastGood: false,
          key: snapshotKey(this.lastGood, []),
        };
      }
    }
    return {
      inputs: this.lastGood,
      problems,
      usingLastGood: this.lastGood !== undefined,
      key: snapshotKey(this.lastGood, problems),
    };
  }
}

function snapshotKey(inputs: GlobalInputs | undefined, problems: readonly Problem[]): string {
  return canonicalHash({
    catalog: inputs?.catalog.inputsHash ?? null,
    policy: inputs?.policyHash ?? null,
    problems,
  });
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
  /** Hash of the files' contents: equal hashes, equal inputs. */
  hash: string;
}

export type UserSnapshot =
  | { kind: "absent" }
  | {
      kind: "present";
      inputs: UserInputs | undefined;
      problems: Problem[];
      usingLastGood: boolean;
      /**
       * enabled-servers.json is missing and the grace period runs until this time (ms): the user's intent is
       * unknown, not "nothing enabled", so nothing is removed meanwhile.
       */
      awaitingUntil?: number;
    };

const EMPTY_ENABLED: EnabledServersFile = { environment: {}, servers: [], suspend: false };

export interface UserInputsOptions {
  maxFileBytes: number;
  /** How long a missing enabled-servers.json counts as unknown before it means "nothing enabled". */
  missingFileGraceMs: number;
  /**
   * Keep each user's snapshot until `invalidate` (the file watcher says what changed); off: read on every call.
   * Only safe with a watcher that reports every change of the user's directory.
   */
  cache: boolean;
  clock?: Clock;
}

/** One user's files, with the last good version kept per user so a bad edit never takes servers down. */
export class UserInputsStore {
  private readonly lastGood = new Map<string, UserInputs>();
  private readonly missingSince = new Map<string, number>();
  private readonly cached = new Map<string, { root: string; snapshot: UserSnapshot }>();
  /** Bumped by every invalidation, so a read that raced a change is not kept. */
  private readonly generations = new Map<string, number>();
  private allGeneration = 0;
  private readonly clock: Clock;

  constructor(private readonly options: UserInputsOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** The user's files changed (or may have): the next `get` reads them. */
  invalidate(userId: string): void {
    this.cached.delete(userId);
    this.generations.set(userId, (this.generations.get(userId) ?? 0) + 1);
  }

  invalidateAll(): void {
    this.cached.clear();
    this.allGeneration++;
  }

  /** The kept snapshot of the user's files for `root`, while it is valid (no I/O). */
  peek(userId: string, root: string): UserSnapshot | undefined {
    const kept = this.cached.get(userId);
    if (kept?.root !== root) return undefined;
    const snapshot = kept.snapshot;
    if (
      snapshot.kind === "present" &&
      snapshot.awaitingUntil !== undefined &&
      snapshot.awaitingUntil <= this.clock.now()
    )
      return undefined;
    return snapshot;
  }

  async get(userId: string, root: string): Promise<UserSnapshot> {
    const kept = this.cached.get(userId);
    if (
      kept?.root === root &&
      !(
        kept.snapshot.kind === "present" &&
        kept.snapshot.awaitingUntil !== undefined &&
        kept.snapshot.awaitingUntil <= this.clock.now()
      )
    ) {
      return kept.snapshot;
    }
    const generation = `${this.allGeneration}:${this.generations.get(userId) ?? 0}`;
    const snapshot = await this.load(userId, root);
    if (this.options.cache && generation === `${this.allGeneration}:${this.generations.get(userId) ?? 0}`)
      this.cached.set(userId, { root, snapshot });
    return snapshot;
  }

  private async load(userId: string, root: string): Promise<UserSnapshot> {
    // Only a directory that is really not there means "user deleted": a link (even a dangling one) or an
    // unreadable one is a problem of that user, whose last good state is kept.
    const dir = await checkTreeDir(root, `${DATA_PATHS.usersDir}/${userId}`);
    if (dir.status === "missing") {
      this.lastGood.delete(userId);
      this.missingSince.delete(userId);
      return { kind: "absent" };
    }
    if (dir.status === "refused") {
      const last = this.lastGood.get(userId);
      return { kind: "present", inputs: last, problems: [dir.problem], usingLastGood: last !== undefined };
    }
    const files = await loadUserFiles(root, userId, { maxBytes: this.options.maxFileBytes });
    const problems = [...fileProblems(files.enabled), ...fileProblems(files.custom)];
    const last = this.lastGood.get(userId);
    if (problems.length > 0) {
      return { kind: "present", inputs: last, problems, usingLastGood: last !== undefined };
    }
    if (files.enabled.status === "missing") {
      const now = this.clock.now();
      const since = this.missingSince.get(userId) ?? now;
      this.missingSince.set(userId, since);
      const until = since + this.options.missingFileGraceMs;
      if (now < until) {
        const problem: Problem = {
          file: files.enabled.file,
          path: "$",
          message: `missing: the user's servers are kept as they are until ${new Date(until).toISOString()}, then it means "nothing enabled" (MCP_PORTAL_MISSING_FILE_GRACE_SECONDS)`,
        };
        return {
          kind: "present",
          inputs: last,
          problems: [problem],
          usingLastGood: last !== undefined,
          awaitingUntil: until,
        };
      }
    } else {
      this.missingSince.delete(userId);
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
