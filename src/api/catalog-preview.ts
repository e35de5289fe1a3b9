import type { z } from "zod";
import { fileProblems, loadGlobalFiles } from "../catalog/data-tree.js";
import { type Sourced, mergeGlobalCatalog } from "../catalog/merge.js";
import type { LoadedFile } from "../catalog/read-json-file.js";
import { type PlanStepView, type PlanView, type UserPlanView, computePlan } from "../commands/plan.js";
import type { GlobalSnapshot } from "../reconcile/desired-inputs.js";
import type { BaseCatalogFile } from "../schema/catalog.js";
import { DEFAULT_POLICY } from "../schema/policy.js";
import { sha256Hex } from "../util/canonical-json.js";
import { formatProblem } from "../validate/problem.js";
import { baseCatalogFile } from "./catalog-files.js";
import { type ApiContext, dataRoot } from "./deps.js";
import { ApiError, invalidDesiredState } from "./errors.js";
import { baseCatalogProblems } from "./write-checks.js";

/*
 * What saving a base catalog would do, before it is saved: the plan `mcp-portal plan` computes (the loop's own
 * pure decision, decideUser on prepareDesiredSource, on one listing of the engine), once against the tree as it
 * is and once with the candidate in place of catalogs/base/<name>.json, compared user by user. Nothing is written
 * and the engine is only listed.
 */

export interface PreviewStep extends PlanStepView {
  /** Not in today's plan: the candidate causes it (false: it is pending anyway). */
  caused_by_catalog: boolean;
}

export interface PreviewUser extends Omit<UserPlanView, "steps"> {
  steps: PreviewStep[];
  /** Steps today's plan has that the candidate would no longer take. */
  cancelled_steps: PlanStepView[];
  /** Servers the candidate would block that are not blocked today (an image the policy refuses, a new secret). */
  newly_blocked_servers: NonNullable<UserPlanView["blocked_servers"]>;
  /** Anything about this user differs from today's plan. */
  affected: boolean;
}

/** POST /admin/catalogs/base/{catalog_id}/preview. */
export interface CatalogPreviewAnswer {
  name: string;
  file: string;
  /** Users whose plan the candidate changes, sorted. */
  affected_users: string[];
  users: PreviewUser[];
  /** `file: path: reason` of the tree outside any user's files, with the candidate in place. */
  problems: string[];
  warnings: string[];
}

/**
 * The global inputs as they would be with `candidate` stored: the tree's other base catalogs, the selected
 * overlays and policy.json, merged as the loop merges them. Invalid when any of them is (no last good state: a
 * preview of a broken tree shows every user held).
 */
export async function candidateGlobalSnapshot(
  root: string,
  overlays: readonly string[],
  maxBytes: number,
  candidate: Sourced<BaseCatalogFile>,
): Promise<GlobalSnapshot> {
  const files = await loadGlobalFiles(root, overlays, { maxBytes });
  const stored: LoadedFile<BaseCatalogFile> = {
    status: "ok",
    file: candidate.file,
    hash: candidate.hash,
    value: candidate.catalog,
  };
  // Base catalogs merge in file-name order; the candidate takes its file's place.
  const base = [...files.base.filter((f) => f.file !== candidate.file), stored].sort((a, b) =>
    a.file < b.file ? -1 : a.file > b.file ? 1 : 0,
  );
  const problems = [
    ...files.listingProblems,
    ...base.flatMap(fileProblems),
    ...files.overlays.flatMap(fileProblems),
    ...fileProblems(files.policy),
  ];
  const held = (list: typeof problems): GlobalSnapshot => ({
    inputs: undefined,
    problems: list,
    usingLastGood: false,
    key: "preview",
  });
  if (problems.length > 0) return held(problems);
  const merged = mergeGlobalCatalog(okFiles(base), okFiles(files.overlays));
  if (merged.problems.length > 0) return held(merged.problems);
  return {
    inputs: {
      catalog: merged.catalog,
      policy: files.policy.status === "ok" ? files.policy.value : DEFAULT_POLICY,
      policyHash: files.policy.status === "ok" ? files.policy.hash : "default",
    },
    problems: [],
    usingLastGood: false,
    key: "preview",
  };
}

function okFiles<T>(files: readonly LoadedFile<T>[]): Sourced<T>[] {
  return files.flatMap((f) => (f.status === "ok" ? [{ file: f.file, hash: f.hash, catalog: f.value }] : []));
}

/** Compares the candidate's plan with today's, user by user. Pure. */
export function comparePlans(today: PlanView, candidate: PlanView): PreviewUser[] {
  const before = new Map(today.users.map((u) => [u.user_id, u]));
  return candidate.users.map((user) => {
    const now = before.get(user.user_id);
    const nowSteps = new Set((now?.steps ?? []).map((s) => s.description));
    const nextSteps = new Set(user.steps.map((s) => s.description));
    const nowBlocked = new Set((now?.blocked_servers ?? []).map((b) => `${b.server_id}\n${b.reason}`));
    const steps = user.steps.map((s) => ({ ...s, caused_by_catalog: !nowSteps.has(s.description) }));
    const cancelled = (now?.steps ?? []).filter((s) => !nextSteps.has(s.description));
    const newlyBlocked = (user.blocked_servers ?? []).filter(
      (b) => !nowBlocked.has(`${b.server_id}\n${b.reason}`),
    );
    const affected =
      steps.some((s) => s.caused_by_catalog) ||
      cancelled.length > 0 ||
      newlyBlocked.length > 0 ||
      (user.blocked_reason ?? "") !== (now?.blocked_reason ?? "") ||
      (user.held_steps ?? 0) !== (now?.held_steps ?? 0);
    return { ...user, steps, cancelled_steps: cancelled, newly_blocked_servers: newlyBlocked, affected };
  });
}

/**
 * Checks the candidate as an upload would (422 with the same problems, nothing written either way), then plans
 * the installation with and without it.
 */
export async function previewBaseCatalog(
  ctx: ApiContext,
  name: string,
  input: z.input<typeof BaseCatalogFile>,
  parsed: BaseCatalogFile,
): Promise<CatalogPreviewAnswer> {
  const planning = ctx.deps.console?.planning;
  if (planning === undefined) throw new ApiError(503, "ENGINE_UNAVAILABLE", "this API cannot plan");
  const { config, runtime } = planning;
  const file = baseCatalogFile(name);
  const text = `${JSON.stringify(input, null, 2)}\n`;
  const candidate = { file, hash: sha256Hex(text), catalog: parsed };
  const root = await dataRoot(ctx);
  const problems = await baseCatalogProblems(
    { dataDir: root, overlays: config.overlays, read: { maxBytes: config.maxFileBytes } },
    candidate,
  );
  if (problems.length > 0) throw invalidDesiredState(problems);
  const global = await candidateGlobalSnapshot(root, config.overlays, config.maxFileBytes, candidate);
  const options = { config, user: undefined, output: "json" as const };
  const io = { env: ctx.deps.env };
  let today: PlanView;
  let next: PlanView;
  try {
    today = await computePlan(options, io, runtime);
    next = await computePlan(options, io, runtime, { global });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ApiError(503, "ENGINE_UNAVAILABLE", `cannot plan: ${message}`);
  }
  const users = comparePlans(today, next);
  return {
    name,
    file,
    affected_users: users.filter((u) => u.affected).map((u) => u.user_id),
    users,
    problems: next.problems.map(formatProblem),
    warnings: next.warnings,
  };
}
