import { randomBytes } from "node:crypto";
import { access, readFile, realpath } from "node:fs/promises";
import { DATA_PATHS, listUserDirs } from "../catalog/data-tree.js";
import { readJsonFile } from "../catalog/read-json-file.js";
import type { Config } from "../config.js";
import { PruneLatchFile, pruneLatchPath } from "../contracts/prune-latch.js";
import { type AllowedImages, describeAllowedImages } from "../desired/image-policy.js";
import { runtimeFor } from "../docker/backend.js";
import type { ContainerRuntime } from "../docker/runtime.js";
import { LABELS, isOwnedBy } from "../labels.js";
import { NetworkAllocator, allocatorOptions } from "../reconcile/allocator.js";
import { type Decision, decideUser } from "../reconcile/decide.js";
import { IdleStateFile, MAX_IDLE_STATE_BYTES, idleStatePath } from "../contracts/idle-state.js";
import type { IdleMark } from "../reconcile/idle.js";
import { readStateFile } from "../util/read-state-file.js";
import { type GlobalSnapshot, GlobalInputsStore, UserInputsStore } from "../reconcile/desired-inputs.js";
import { prepareDesiredSource } from "../reconcile/desired-source.js";
import { Observer } from "../reconcile/observer.js";
import { type PlanStep, describeStep, stepResource } from "../reconcile/plan.js";
import { pruneLimit } from "../reconcile/prune-guard.js";
import { preferredBlock } from "../reconcile/reconciler.js";
import type { SecretKeys } from "../reconcile/user-secrets.js";
import { DigestKey, digestKeyPath, loadDigestKey } from "../secrets/digest.js";
import { SECRET_KEYS_ENV, SECRET_KEYS_FILE_ENV, loadKeyRing } from "../secrets/key-ring.js";
import { PolicyFile } from "../schema/policy.js";
import { poolShortfalls } from "../validate/capacity.js";
import { allowedImagesOf, allowedImagesWarning } from "../validate/cross-checks.js";
import { type Problem, formatProblem } from "../validate/problem.js";
import {
  type InstallationViewOptions,
  commandFailure,
  commandOptions,
  errorMessage,
  parseInstallationViewOptions,
  writeJson,
} from "./common.js";
import type { CommandIo } from "./io.js";

const USAGE = `Usage: mcp-portal plan [--data-dir DIR] [--state-dir DIR] [--installation NAME] [--user ID] [--output text|json]

Dry run against the live engine: what "mcp-portal run" would do now, user by user, with causes (create,
replace with the changed fields, start, rename, remove, networks, volumes). Never changes anything: no Docker
mutation, no status, cache or audit writes.

Options:
  --data-dir DIR         desired-state tree (MCP_PORTAL_DATA_DIR, default .)
  --state-dir DIR        the controller's state dir, read for the secret digest key (MCP_PORTAL_STATE_DIR)
  --installation NAME    label value of the installation to compare with (MCP_PORTAL_INSTALLATION)
  --backend KIND         engine or swarm (MCP_PORTAL_BACKEND, default engine)
  --user ID              only this user
  --output FORMAT        text (default) or json: {"in_sync","users":[{"user_id","in_sync","steps","problems"}],
                         "allowed_images":{"source","globs"},...}

Says which image allow-list applies: policy.json allowed_images, else MCP_PORTAL_ALLOWED_IMAGES, else none
(any image from any registry runs; a warning). Warns when more users need a new port block or subnet than the
pools have free.

Exit codes: 0 in sync, 2 a run would change something, 1 error: the desired state of a user (or a global file)
is invalid so nothing could be planned for it, or the engine is unreachable. Usage errors exit 2 too.
`;

/** The shape of `plan --output json`; bumped when it changes (2: one step per engine call). */
export const PLAN_OUTPUT_VERSION = 2;

/** One planned step as the json output shows it: one engine call. */
export interface PlanStepView {
  kind: PlanStep["kind"];
  server_id?: string;
  /** The container, network, volume or image the step acts on (for a create, the name it gets). */
  resource: string;
  cause: string;
  /** The reconciler's own one-line description (describeStep), as the daemon logs it. */
  description: string;
  image?: string;
  /** For a create that replaces a container: the one it replaces and the spec fields that differ. */
  replaces?: string;
  changed_fields?: string[];
  /** For a stop, remove or network removal: it goes because it is no longer desired (the prune guard counts it). */
  prune?: boolean;
  /** For a create or an in-place update on Swarm: the node the workload is placed on. */
  node_id?: string;
}

export interface UserPlanView {
  user_id: string;
  in_sync: boolean;
  /** The user's directory is gone: the steps clean up what it left on the engine. */
  deleted?: boolean;
  /** enabled-servers.json says suspend: a run changes nothing; `held_steps` counts what it holds back. */
  suspended?: boolean;
  held_steps?: number;
  steps: PlanStepView[];
  problems: Problem[];
  /** Why nothing could be planned (InvalidDesiredState, PortPoolExhausted, EnabledServersMissing). */
  blocked_reason?: string;
  /** Servers a run would not start, and why (MissingSecret, ImageNotAllowed, ...). */
  blocked_servers?: { server_id: string; reason: string; message: string }[];
}

export interface PlanView {
  version: typeof PLAN_OUTPUT_VERSION;
  in_sync: boolean;
  users: UserPlanView[];
  /** Problems outside any user's files (catalogs, overlays, policy.json, user directory names). */
  problems: Problem[];
  warnings: string[];
  /** The image allow-list in force and its source; null when policy.json is invalid (see problems). */
  allowed_images: { source: AllowedImages["source"]; globs: readonly string[] } | null;
}

type PlanOptions = InstallationViewOptions;

/** `mcp-portal plan`; `args` are the arguments after "plan". */
export async function planCommand(args: string[], io: CommandIo): Promise<number> {
  const options = await commandOptions(io, USAGE, () => parseInstallationViewOptions(args, io.env));
  if (typeof options === "number") return options;
  let view: PlanView;
  try {
    view = await computePlan(options, io);
  } catch (error) {
    return commandFailure(io, options.output, "plan", errorMessage(error));
  }
  if (options.output === "json") writeJson(io, view);
  else io.stdout.write(formatPlan(view));
  return planExitCode(view);
}

export function planExitCode(view: PlanView): number {
  if (view.problems.length > 0 || view.users.some((u) => u.problems.length > 0 || u.blocked_reason)) return 1;
  return view.in_sync ? 0 : 2;
}

/**
 * What `run` would do now, from the same pure decision the loop makes (decideUser), on one listing of the
 * engine. Read-only by construction: the engine is only listed, the data tree only read, and nothing is written
 * (no status, cache, audit or key file; a secret digest key is read when one exists).
 */
export async function computePlan(
  options: PlanOptions,
  io: Pick<CommandIo, "env">,
  /** The engine to list (tests pass the in-memory one); only its reads are ever called. */
  runtime: ContainerRuntime = runtimeFor(options.config, io.env),
  /** `global`: plan against these catalogs and policy instead of the tree's (a base catalog not saved yet). */
  overrides: { global?: GlobalSnapshot } = {},
): Promise<PlanView> {
  const { config } = options;
  try {
    await runtime.ping();
  } catch (error) {
    throw new Error(`cannot reach the Docker Engine: ${errorMessage(error)}`);
  }
  // One listing per resource kind (the whole installation, for the mass-prune check), sliced per user, as the
  // controller's resync does.
  const fleet = await new Observer(runtime, config.installation).listAll();
  const allocator = new NetworkAllocator(allocatorOptions(config));
  allocator.rebuild(
    fleet.allNetworks,
    (n) => (isOwnedBy(n.labels, config.installation) ? n.labels[LABELS.userId] : undefined),
    fleet.listing.containers,
  );
  const root = await realpath(config.dataDir);
  const global =
    overrides.global ?? (await new GlobalInputsStore(config.overlays, config.maxFileBytes).get(root));
  const inputs = new UserInputsStore({
    maxFileBytes: config.maxFileBytes,
    missingFileGraceMs: config.missingFileGraceSeconds * 1000,
    cache: false,
  });
  const secrets = await readOnlySecretKeys(io.env, config.stateDir);
  const dirs = await listUserDirs(config.dataDir);
  const globalProblems: Problem[] = options.user === undefined ? [...dirs.problems, ...global.problems] : [];
  const userIds =
    options.user !== undefined
      ? [options.user]
      : [...new Set([...dirs.names, ...fleet.slices.keys()])].sort();
  // Users already holding a port block on the engine first, so a new user is offered a block nobody holds.
  const order = [...userIds].sort((a, b) => Number(!fleet.slices.has(a)) - Number(!fleet.slices.has(b)));
  // Idle servers (idle.json, read only) stay stopped: no drift to plan for them. Idle stops are the loop's,
  // by time, and are not planned here.
  const idleMarks = config.gateway ? await readIdleMarks(config.stateDir) : undefined;
  const views = new Map<string, UserPlanView>();
  const free = freeInPools(allocator, config.portsPerUser);
  const needed = { blocks: 0, subnets: 0, egress: 0 };
  for (const userId of order) {
    const observed = fleet.slices.get(userId) ?? { containers: [], networks: [], volumes: [] };
    const user = await inputs.get(userId, root);
    const prepared = await prepareDesiredSource({
      config,
      userId,
      root,
      global,
      user,
      secrets,
      mergedCatalog: (_hash, compute) => Promise.resolve(compute()),
    });
    let source = prepared.source;
    if (source.kind === "desired") {
      if (!allocator.blockOf(userId)) needed.blocks++;
      const block = allocator.portBlockFor(userId, preferredBlock(observed, config));
      source = block
        ? { ...source, portBlock: block }
        : { ...source, portBlock: undefined, portPoolExhausted: allocator.portPoolExhaustedMessage() };
    }
    const problems = user.kind === "present" ? [...global.problems, ...user.problems] : [];
    const idle = idleMarks
      ? {
          now: Date.now(),
          marks: idleMarks.get(userId) ?? new Map<string, IdleMark>(),
          wakes: new Set<string>(),
          lastRequest: new Map<string, number>(),
          runningSince: new Map<string, number>(),
        }
      : undefined;
    const decision = decideUser({ userId, source, observed, ...(idle ? { idle } : {}) });
    // Each new network takes a subnet: the user's, and the egress network of a user with a restricted server.
    if (decision.kind !== "hold") {
      for (const step of decision.plan.steps) {
        if (step.kind !== "createNetwork") continue;
        needed.subnets++;
        if (step.role === "egress") needed.egress++;
      }
    }
    views.set(userId, userPlanView(userId, decision, problems));
  }
  const users = userIds.map((id) => views.get(id)!);
  const warnings: string[] = poolShortfalls(
    config,
    {
      blocks: { needed: needed.blocks, free: free.blocks },
      subnets: { needed: needed.subnets, free: free.subnets, egress: needed.egress },
    },
    "engine",
  );
  const allowedImages = await readAllowedImages(config);
  const unrestricted = allowedImages && allowedImagesWarning(allowedImages);
  if (unrestricted) warnings.push(formatProblem(unrestricted));
  const prunes = users.flatMap((u) => u.steps).filter((s) => s.kind === "removeContainer" && s.prune).length;
  const limit = pruneLimit(config.massPrune, fleet.managedContainers);
  const latch = await readLatch(config.stateDir);
  if (latch?.tripped) {
    warnings.push(
      `the mass-prune guard is tripped (${latch.reason ?? "no reason recorded"}): a run removes nothing until it is released or the planned removals are within the limit (${limit})`,
    );
  } else if (!config.massPrune.allow && prunes > limit) {
    warnings.push(
      `a run would remove ${prunes} of ${fleet.managedContainers} managed containers (limit ${limit}): the mass-prune guard would trip and remove nothing unless released (mcp-portal prune-guard release, or --allow-mass-prune)`,
    );
  }
  return {
    version: PLAN_OUTPUT_VERSION,
    in_sync: users.every((u) => u.in_sync) && globalProblems.length === 0,
    users,
    problems: globalProblems,
    warnings,
    allowed_images: allowedImages ? { source: allowedImages.source, globs: allowedImages.globs } : null,
  };
}

/** Blocks and subnets a new user can still get, as the listing leaves them. */
function freeInPools(allocator: NetworkAllocator, portsPerUser: number): { blocks: number; subnets: number } {
  const ports = allocator.portStats();
  const subnets = allocator.subnetStats();
  return {
    blocks: (ports.capacity - ports.allocated) / portsPerUser,
    subnets: subnets.capacity - subnets.allocated,
  };
}

/** policy.json's allowed_images, else MCP_PORTAL_ALLOWED_IMAGES, else every image; undefined if policy.json is invalid. */
async function readAllowedImages(config: Config): Promise<AllowedImages | undefined> {
  const policy = await readJsonFile(config.dataDir, DATA_PATHS.policy, PolicyFile, {
    maxBytes: config.maxFileBytes,
  });
  return allowedImagesOf(policy, config.defaultAllowedImages);
}

function userPlanView(userId: string, decision: Decision, problems: Problem[]): UserPlanView {
  // Problems in global files are reported once at the top; a user lists its own.
  const own = problems.filter((p) => p.file.startsWith(`${DATA_PATHS.usersDir}/`));
  if (decision.kind === "hold") {
    return {
      user_id: userId,
      in_sync: false,
      steps: [],
      problems: own,
      blocked_reason: `${decision.stalled.reason}: ${decision.stalled.message}`,
    };
  }
  const steps = decision.plan.steps.map(stepView);
  const view: UserPlanView = { user_id: userId, in_sync: steps.length === 0, steps, problems: own };
  if (decision.kind === "deleted") {
    if (steps.length > 0) view.deleted = true;
    return view;
  }
  const blocked = decision.desired.servers.filter((s) => s.kind === "blocked");
  if (blocked.length > 0) {
    view.blocked_servers = blocked.map((s) => ({
      server_id: s.serverId,
      reason: s.reason,
      message: s.message,
    }));
  }
  if (decision.suspended) {
    // A suspended user is left exactly as it is; the decision lists the steps it holds back.
    view.suspended = true;
    view.held_steps = decision.held.length;
    view.in_sync = true;
  }
  return view;
}

/** The key ring and the digest key as the controller has them, without creating a key file that is missing. */
async function readOnlySecretKeys(env: NodeJS.ProcessEnv, stateDir: string): Promise<SecretKeys | undefined> {
  if (!env[SECRET_KEYS_ENV]?.trim() && !env[SECRET_KEYS_FILE_ENV]?.trim()) return undefined;
  const keyRing = await loadKeyRing(env);
  try {
    await access(digestKeyPath(stateDir));
  } catch {
    // No controller ran with this state dir yet, so no container carries a digest to compare with.
    return { keyRing, digestKey: DigestKey.fromSeed(randomBytes(32)) };
  }
  return { keyRing, digestKey: await loadDigestKey(stateDir, keyRing) };
}

async function readLatch(stateDir: string): Promise<PruneLatchFile | undefined> {
  try {
    const parsed = PruneLatchFile.safeParse(JSON.parse(await readFile(pruneLatchPath(stateDir), "utf8")));
    return parsed.success ? parsed.data : { tripped: true, reason: "the latch file is invalid" };
  } catch {
    return undefined;
  }
}

function stepView(step: PlanStep): PlanStepView {
  return { ...stepFields(step), description: describeStep(step) };
}

function stepFields(step: PlanStep): Omit<PlanStepView, "description"> {
  const base = {
    kind: step.kind,
    resource: stepResource(step),
    cause: step.cause,
    ...("serverId" in step ? { server_id: step.serverId } : {}),
  };
  switch (step.kind) {
    case "createContainer":
      return {
        ...base,
        image: step.outcome.spec.image,
        ...(step.replacing
          ? { replaces: step.replacing.name, changed_fields: step.replacing.changedFields }
          : {}),
        ...(step.placement !== undefined ? { node_id: step.placement } : {}),
      };
    case "pullImage":
      return { ...base, image: step.image };
    case "updateContainer":
      return {
        ...base,
        image: step.outcome.spec.image,
        changed_fields: step.changedFields,
        ...(step.placement !== undefined ? { node_id: step.placement } : {}),
      };
    case "stopContainer":
    case "removeContainer":
    case "removeNetwork":
      return { ...base, prune: step.prune };
    default:
      return base;
  }
}

const MARKS: Record<PlanStep["kind"], string> = {
  createNetwork: "+",
  createVolume: "+",
  pullImage: "+",
  createContainer: "+",
  renameContainer: "~",
  updateContainer: "~",
  startContainer: ">",
  stopContainer: "-",
  removeContainer: "-",
  removeNetwork: "-",
};

/** Text form: one block per user; every line of a step is the reconciler's own description of it. */
export function formatPlan(view: PlanView): string {
  const lines: string[] = [];
  for (const problem of view.problems) lines.push(`! ${formatProblem(problem)}`);
  for (const user of view.users) {
    if (user.blocked_reason) {
      lines.push(`${user.user_id}: nothing planned: ${user.blocked_reason}`);
      for (const problem of user.problems) {
        if (problem.file.startsWith(`${DATA_PATHS.usersDir}/`)) lines.push(`  ! ${formatProblem(problem)}`);
      }
      continue;
    }
    if (user.suspended) {
      lines.push(
        `${user.user_id}: suspended, nothing changes${user.held_steps ? ` (${user.held_steps} step(s) held back)` : ""}`,
      );
      continue;
    }
    if (user.in_sync) {
      lines.push(`${user.user_id}: in sync`);
    } else {
      lines.push(
        `${user.user_id}: ${user.steps.length} step(s)${user.deleted ? " (user directory removed)" : ""}`,
      );
      for (const step of user.steps) lines.push(`  ${MARKS[step.kind]} ${step.description}`);
    }
    for (const b of user.blocked_servers ?? []) {
      lines.push(`  ! ${b.server_id} stays blocked: ${b.reason}${b.message ? `: ${b.message}` : ""}`);
    }
  }
  // Without any allow-list the warning below says so.
  if (view.allowed_images && view.allowed_images.source !== "none")
    lines.push(describeAllowedImages(view.allowed_images));
  for (const warning of view.warnings) lines.push(`warning: ${warning}`);
  const changed = view.users.filter((u) => !u.in_sync && !u.blocked_reason);
  const blocked = view.users.filter((u) => u.blocked_reason);
  const steps = changed.reduce((n, u) => n + u.steps.length, 0);
  let summary: string;
  if (view.users.length === 0) summary = "Plan: no users";
  else if (changed.length === 0 && blocked.length === 0 && view.problems.length === 0)
    summary = `Plan: in sync (${view.users.length} user(s))`;
  else summary = `Plan: ${steps} step(s) for ${changed.length} of ${view.users.length} user(s)`;
  if (blocked.length > 0) summary += `; ${blocked.length} user(s) could not be planned`;
  lines.push(summary);
  return `${lines.join("\n")}\n`;
}

/** The idle marks of idle.json by user (none when it is missing or unusable: plan then shows their starts). */
async function readIdleMarks(stateDir: string): Promise<Map<string, Map<string, IdleMark>>> {
  const read = await readStateFile(idleStatePath(stateDir), IdleStateFile, MAX_IDLE_STATE_BYTES);
  const marks = new Map<string, Map<string, IdleMark>>();
  if (read.status !== "ok") return marks;
  for (const s of read.value.servers) {
    const user = marks.get(s.user_id) ?? new Map<string, IdleMark>();
    user.set(s.server_id, { containerId: s.container_id, since: Date.parse(s.since) });
    marks.set(s.user_id, user);
  }
  return marks;
}
