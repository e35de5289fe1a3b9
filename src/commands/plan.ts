import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { DATA_PATHS, listUserDirs } from "../catalog/data-tree.js";
import { readJsonFile } from "../catalog/read-json-file.js";
import type { Config } from "../config.js";
import { createDaemon } from "../daemon.js";
import { type AllowedImages, describeAllowedImages } from "../desired/image-policy.js";
import { dockerFromEnv } from "../docker/connect.js";
import { DockerodeRuntime } from "../docker/dockerode-runtime.js";
import type { ContainerRuntime } from "../docker/runtime.js";
import { LABELS, ownerFilters } from "../labels.js";
import { createLogger, type LogLevel } from "../observability/logger.js";
import { type ActualUser, type PlanStep, changedFields, describeStep } from "../reconcile/plan.js";
import { sliceByUser } from "../reconcile/user-slices.js";
import { EnabledServersFile } from "../schema/enabled-servers.js";
import { PolicyFile } from "../schema/policy.js";
import { digestKeyPath } from "../secrets/digest.js";
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
  --user ID              only this user
  --output FORMAT        text (default) or json: {"in_sync","users":[{"user_id","in_sync","steps","problems"}],
                         "allowed_images":{"source","globs"},...}

Says which image allow-list applies: policy.json allowed_images, else MCP_PORTAL_ALLOWED_IMAGES, else none
(any image from any registry runs; a warning).

Exit codes: 0 in sync, 2 a run would change something, 1 error: the desired state of a user (or a global file)
is invalid so nothing could be planned for it, or the engine is unreachable. Usage errors exit 2 too.
`;

/** One planned step as the json output shows it. */
export interface PlanStepView {
  kind: PlanStep["kind"];
  server_id?: string;
  /** The container, network or volume the step acts on (for a create, the name it will get). */
  resource: string;
  cause: string;
  /** The reconciler's own one-line description (describeStep), as the daemon logs it. */
  description: string;
  image?: string;
  /** For a replace: the spec fields whose digests differ from the running container's. */
  changed_fields?: string[];
  /** For a remove: the container goes because it is no longer desired (counts against the mass-prune guard). */
  prune?: boolean;
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
  /** Why nothing could be planned (InvalidDesiredState, PortPoolExhausted, ReconcileFailed). */
  blocked_reason?: string;
  /** Servers a run would not start, and why (MissingSecret, ImageNotAllowed, ...), when the reconciler says. */
  blocked_servers?: { server_id: string; reason: string; message: string }[];
}

export interface PlanView {
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
 * Builds the daemon graph in a read-only form and asks the reconciler for every user's dry-run plan.
 * Read-only by construction, not by care:
 *  - the engine adapter refuses every mutating call (ReadOnlyRuntime), so no Docker object can change;
 *  - the graph gets a throwaway state dir (a copy of the secret digest key, so secret digests match the ones
 *    on the running containers): whatever the graph writes there (merged-catalog cache files, a digest key on
 *    first use, audit lines) never reaches the real state dir. Status files are not written in a dry run.
 */
export async function computePlan(options: PlanOptions, io: CommandIo): Promise<PlanView> {
  const { config } = options;
  const scratch = await mkdtemp(path.join(tmpdir(), "mcp-portal-plan-"));
  try {
    await copyFile(digestKeyPath(config.stateDir), digestKeyPath(scratch)).catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== "ENOENT") throw error;
    });
    const runtime = new ReadOnlyRuntime(
      new DockerodeRuntime(dockerFromEnv(io.env), { timeoutMs: config.dockerTimeoutMs }),
    );
    const daemon = await createDaemon({
      config: { ...config, stateDir: scratch },
      env: io.env,
      logger: commandLogger(io),
      runtime,
      listen: false,
      watch: false,
    });
    try {
      return await planUsers(options, daemon, config);
    } finally {
      await daemon.stop();
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

type Daemon = Awaited<ReturnType<typeof createDaemon>>;

async function planUsers(options: PlanOptions, daemon: Daemon, config: Config): Promise<PlanView> {
  const { runtime } = daemon;
  try {
    await runtime.ping();
  } catch (error) {
    throw new Error(`cannot reach the Docker Engine: ${errorMessage(error)}`);
  }
  // One listing per resource kind (the whole installation, for the mass-prune check), sliced per user, as the
  // controller's resync does.
  const filters = ownerFilters(config.installation);
  const [containers, networks, volumes] = await Promise.all([
    runtime.listContainers(filters),
    runtime.listNetworks(filters),
    runtime.listVolumes(filters),
  ]);
  const slices = sliceByUser({ containers, networks, volumes });
  const dirs = await listUserDirs(config.dataDir);
  const globalProblems: Problem[] = options.user === undefined ? [...dirs.problems] : [];
  const userIds =
    options.user !== undefined ? [options.user] : [...new Set([...dirs.names, ...slices.keys()])].sort();
  // Users already holding a port block on the engine first, so a new user is offered a block nobody holds.
  const order = [...userIds].sort((a, b) => Number(!slices.has(a)) - Number(!slices.has(b)));
  const views = new Map<string, UserPlanView>();
  const signal = new AbortController().signal;
  for (const userId of order) {
    const snapshot = slices.get(userId) ?? { containers: [], networks: [], volumes: [] };
    views.set(userId, await planUser(userId, snapshot, daemon, config, signal));
  }
  const users = userIds.map((id) => views.get(id)!);
  // Problems in global files show up in every user's list; keep them once at the top as well.
  for (const user of users) {
    for (const problem of user.problems) {
      if (
        !problem.file.startsWith(`${DATA_PATHS.usersDir}/`) &&
        !globalProblems.some((p) => sameProblem(p, problem))
      )
        globalProblems.push(problem);
    }
  }
  const warnings: string[] = [];
  const allowedImages = await readAllowedImages(config);
  const unrestricted = allowedImages && allowedImagesWarning(allowedImages);
  if (unrestricted) warnings.push(formatProblem(unrestricted));
  const prunes = users.flatMap((u) => u.steps).filter((s) => s.prune === true).length;
  const managed = containers.filter((c) => c.labels[LABELS.serverId] !== undefined).length;
  const cap = Math.max(config.massPrune.minimum, Math.floor(config.massPrune.share * managed));
  if (!config.massPrune.allow && prunes > cap) {
    warnings.push(
      `a run would remove ${prunes} of ${managed} managed containers (limit ${cap}): the mass-prune guard would stop it unless --allow-mass-prune`,
    );
  }
  return {
    in_sync: users.every((u) => u.in_sync) && globalProblems.length === 0,
    users,
    problems: globalProblems,
    warnings,
    allowed_images: allowedImages ? { source: allowedImages.source, globs: allowedImages.globs } : null,
  };
}

/** policy.json's allowed_images, else MCP_PORTAL_ALLOWED_IMAGES, else every image; undefined if policy.json is invalid. */
async function readAllowedImages(config: Config): Promise<AllowedImages | undefined> {
  const policy = await readJsonFile(config.dataDir, DATA_PATHS.policy, PolicyFile, {
    maxBytes: config.maxFileBytes,
  });
  return allowedImagesOf(policy, config.defaultAllowedImages);
}

async function planUser(
  userId: string,
  snapshot: ActualUser,
  daemon: Daemon,
  config: Config,
  signal: AbortSignal,
): Promise<UserPlanView> {
  let outcome;
  try {
    outcome = await daemon.reconciler.reconcile(userId, { signal, dryRun: true, snapshot });
  } catch (error) {
    return {
      user_id: userId,
      in_sync: false,
      steps: [],
      problems: [],
      blocked_reason: `ReconcileFailed: ${errorMessage(error)}`,
    };
  }
  if (!outcome.plan) {
    // Nothing could be computed: an invalid desired state (no last good one in a fresh process) or no port block.
    const status = outcome.status;
    const stalled = status?.conditions.find((c) => c.type === "Stalled" && c.status === "True");
    return {
      user_id: userId,
      in_sync: false,
      steps: [],
      problems: status?.errors ?? [],
      blocked_reason: stalled ? `${stalled.reason}: ${stalled.message}` : "NothingPlanned",
    };
  }
  const steps = outcome.plan.steps.map(stepView);
  const view: UserPlanView = { user_id: userId, in_sync: steps.length === 0, steps, problems: [] };
  // A dry run that also computes the (unwritten) status tells which servers stay blocked and why.
  const blocked = (outcome.status?.servers ?? []).filter((s) => s.phase === "Blocked");
  if (blocked.length > 0) {
    view.blocked_servers = blocked.map((s) => ({
      server_id: s.id,
      reason: s.reason ?? "Blocked",
      message: s.message ?? "",
    }));
  }
  if (outcome.summary.phase === "Deleted") view.deleted = true;
  else if (await isSuspended(config, userId)) {
    // A suspended user is left exactly as it is; the reconciler's dry run still lists the steps it would hold.
    view.suspended = true;
    view.held_steps = steps.length;
    view.steps = [];
    view.in_sync = true;
  }
  return view;
}

async function isSuspended(config: Config, userId: string): Promise<boolean> {
  const file = await readJsonFile(config.dataDir, DATA_PATHS.enabledServers(userId), EnabledServersFile, {
    maxBytes: config.maxFileBytes,
  });
  return file.status === "ok" && file.value.suspend;
}

function stepView(step: PlanStep): PlanStepView {
  return { ...stepFields(step), description: describeStep(step) };
}

function stepFields(step: PlanStep): Omit<PlanStepView, "description"> {
  switch (step.kind) {
    case "createNetwork":
      return { kind: step.kind, resource: step.name, cause: step.cause };
    case "createVolume":
      return { kind: step.kind, resource: step.volume.name, cause: step.cause };
    case "createContainer":
      return {
        kind: step.kind,
        server_id: step.serverId,
        resource: step.outcome.spec.name,
        cause: step.cause,
        image: step.outcome.spec.image,
      };
    case "replaceContainer":
      return {
        kind: step.kind,
        server_id: step.serverId,
        resource: step.old.name,
        cause: step.cause,
        image: step.outcome.spec.image,
        changed_fields: changedFields(step.old.labels[LABELS.specFields], step.outcome.specFields),
      };
    case "renameContainer":
      return { kind: step.kind, server_id: step.serverId, resource: step.container.name, cause: step.cause };
    case "startContainer":
      return { kind: step.kind, server_id: step.serverId, resource: step.container.name, cause: step.cause };
    case "removeContainer":
      return {
        kind: step.kind,
        server_id: step.serverId,
        resource: step.container.name,
        cause: step.cause,
        prune: step.prune,
      };
    case "removeNetwork":
      return { kind: step.kind, resource: step.network.name, cause: step.cause };
  }
}

const MARKS: Record<PlanStep["kind"], string> = {
  createNetwork: "+",
  createVolume: "+",
  createContainer: "+",
  replaceContainer: "~",
  renameContainer: "~",
  startContainer: ">",
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
        `${user.user_id}: ${user.steps.length} change(s)${user.deleted ? " (user directory removed)" : ""}`,
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
  else summary = `Plan: ${steps} change(s) for ${changed.length} of ${view.users.length} user(s)`;
  if (blocked.length > 0) summary += `; ${blocked.length} user(s) could not be planned`;
  lines.push(summary);
  return `${lines.join("\n")}\n`;
}

function sameProblem(a: Problem, b: Problem): boolean {
  return a.file === b.file && a.path === b.path && a.message === b.message;
}

/** Logs of the graph go to stderr, quiet unless LOG_LEVEL asks for more: stdout carries the plan. */
export function commandLogger(io: CommandIo) {
  const requested = io.env.LOG_LEVEL;
  const level: LogLevel =
    requested && ["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(requested)
      ? (requested as LogLevel)
      : "error";
  const stderr = io.stderr;
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      stderr.write(chunk);
      done();
    },
  });
  return createLogger({ level, destination });
}

export class ReadOnlyMutationError extends Error {
  constructor(operation: string) {
    super(`plan is read-only: refused ${operation}`);
    this.name = "ReadOnlyMutationError";
  }
}

/**
 * The engine adapter with every mutating call refused: list, inspect and events pass through; create, start,
 * stop, remove, rename and pull throw. Whatever a bug in the dry-run path tried, the engine stays untouched.
 */
export class ReadOnlyRuntime implements ContainerRuntime {
  constructor(private readonly inner: ContainerRuntime) {}

  ping: Runtime["ping"] = () => this.inner.ping();
  listContainers: Runtime["listContainers"] = (...args) => this.inner.listContainers(...args);
  listNetworks: Runtime["listNetworks"] = (...args) => this.inner.listNetworks(...args);
  listVolumes: Runtime["listVolumes"] = (...args) => this.inner.listVolumes(...args);
  findContainerByName: Runtime["findContainerByName"] = (...args) => this.inner.findContainerByName(...args);
  findNetworkByName: Runtime["findNetworkByName"] = (...args) => this.inner.findNetworkByName(...args);
  imageExists: Runtime["imageExists"] = (...args) => this.inner.imageExists(...args);
  events: Runtime["events"] = (...args) => this.inner.events(...args);
  pullImage: Runtime["pullImage"] = () => refuse("pull image");
  createNetwork: Runtime["createNetwork"] = () => refuse("create network");
  removeNetwork: Runtime["removeNetwork"] = () => refuse("remove network");
  createVolume: Runtime["createVolume"] = () => refuse("create volume");
  createContainer: Runtime["createContainer"] = () => refuse("create container");
  startContainer: Runtime["startContainer"] = () => refuse("start container");
  stopContainer: Runtime["stopContainer"] = () => refuse("stop container");
  removeContainer: Runtime["removeContainer"] = () => refuse("remove container");
  renameContainer: Runtime["renameContainer"] = () => refuse("rename container");
}

type Runtime = ContainerRuntime;

function refuse(operation: string): Promise<never> {
  return Promise.reject(new ReadOnlyMutationError(operation));
}
