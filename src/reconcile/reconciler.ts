import { randomBytes } from "node:crypto";
import { realpath } from "node:fs/promises";
import { type MergedCatalog, mergeUserCatalog } from "../catalog/merge.js";
import type { Config } from "../config.js";
import { type SecretResolution, computeDesiredUser } from "../desired/user-desired.js";
import type { DesiredUser } from "../desired/types.js";
import { blockStartOf } from "../desired/port-blocks.js";
import type { ContainerRuntime } from "../docker/runtime.js";
import { LABELS, ownerFilters } from "../labels.js";
import type { AuditWriter } from "../observability/audit.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { canonicalHash, canonicalJson } from "../util/canonical-json.js";
import type { Problem } from "../validate/problem.js";
import { PORTAL_VERSION } from "../version.js";
import type { NetworkAllocator } from "./allocator.js";
import { GatewayHealthReader, type ServerHealth } from "./gateway-health.js";
import type { ApplyResult, PlanApplier } from "./apply.js";
import type { Clock } from "./clock.js";
import type { GlobalInputsStore, UserInputsStore } from "./desired-inputs.js";
import { type ActualUser, type Plan, type PlanStep, describeStep, planUser } from "./plan.js";
import type { PruneGuard } from "./prune-guard.js";
import {
  type Observation,
  type ServerStatus,
  type StatusStore,
  type UserStatus,
  nextStatus,
} from "./status.js";
import { type SecretKeys, loadUserSecrets } from "./user-secrets.js";
import type { ProcessResult } from "./work-queue.js";

export interface CatalogCache {
  get(
    userId: string,
    inputsHash: string,
    compute: () => MergedCatalog,
  ): Promise<{ catalog: MergedCatalog; recomputed: boolean }>;
  remove(userId: string): Promise<void>;
}

export interface ReconcilerDeps {
  config: Config;
  runtime: ContainerRuntime;
  global: GlobalInputsStore;
  users: UserInputsStore;
  catalogs: CatalogCache;
  secrets: SecretKeys | undefined;
  allocator: NetworkAllocator;
  applier: PlanApplier;
  statuses: StatusStore;
  pruneGuard: PruneGuard;
  audit: AuditWriter;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  /** How many containers this installation manages in all, for mass-prune safety. */
  managedTotal: () => number;
  onStatus?: (previous: UserStatus | undefined, next: UserStatus) => void;
  /** The gateway's MCP probes; set when the gateway serves users' ports. */
  health?: GatewayHealthReader;
}

/** What the last reconcile of a user saw, for the controller's gauges. */
export interface UserSummary {
  phase: UserStatus["phase"] | "Deleted";
  containers: Record<string, number>;
  desired: number;
  blocked: Record<string, number>;
  invalidFiles: string[];
}

export interface ReconcileOptions {
  signal: AbortSignal;
  /** A slice of a full listing: when the plan on it is empty, nothing more is asked of the engine. */
  snapshot?: ActualUser;
  /** Compute and return the plan without applying anything (the `plan` command). */
  dryRun?: boolean;
}

export interface ReconcileOutcome extends ProcessResult {
  plan?: Plan;
  status?: UserStatus;
  summary: UserSummary;
}

/**
 * One user, level-triggered: read the whole desired state and everything the user owns on the engine,
 * converge, record what was observed. Safe to run at any time, any number of times.
 */
export class Reconciler {
  private readonly desiredCache = new Map<string, { key: string; desired: DesiredUser }>();

  constructor(private readonly deps: ReconcilerDeps) {}

  async listActual(userId: string): Promise<ActualUser> {
    const filters = ownerFilters(this.deps.config.installation, userId);
    const [containers, networks, volumes] = await Promise.all([
      this.deps.runtime.listContainers(filters),
      this.deps.runtime.listNetworks(filters),
      this.deps.runtime.listVolumes(filters),
    ]);
    return { containers, networks, volumes };
  }

  async reconcile(userId: string, options: ReconcileOptions): Promise<ReconcileOutcome> {
    const { clock, metrics } = this.deps;
    const started = clock.now();
    const log = this.deps.logger.child({ user_id: userId, reconcile_id: randomBytes(4).toString("hex") });
    const end = metrics.reconcileDurationSeconds.startTimer();
    try {
      const outcome = await this.run(userId, options, log, started);
      metrics.reconcileTotal.inc({ result: outcome.status?.phase === "Stalled" ? "blocked" : "success" });
      return outcome;
    } catch (error) {
      metrics.reconcileTotal.inc({ result: "error" });
      log.warn({ err: error instanceof Error ? error.message : String(error) }, "reconcile failed");
      throw error;
    } finally {
      end();
    }
  }

  private async run(
    userId: string,
    options: ReconcileOptions,
    log: Logger,
    started: number,
  ): Promise<ReconcileOutcome> {
    // Resolve the data dir once: with a symlink-swapped checkout (git-sync), every file of this reconcile
    // comes from the same revision.
    const root = await realpath(this.deps.config.dataDir);
    const global = await this.deps.global.get(root);
    const user = await this.deps.users.get(userId, root);
    let actual = options.snapshot ?? (await this.listActual(userId));

    if (user.kind === "absent") return this.reconcileAbsent(userId, actual, options, log, started);

    const errors: Problem[] = [...global.problems, ...user.problems];
    if (!global.inputs || !user.inputs) {
      // Nothing valid to converge to yet: change nothing, say why.
      const status = await this.writeStatus(userId, {
        generation: "invalid",
        suspended: false,
        actual,
        desired: undefined,
        applied: undefined,
        errors,
        stalled: {
          reason: "InvalidDesiredState",
          message:
            "the desired state is invalid and there is no last good state to keep; nothing was changed",
        },
        mutations: 0,
        started,
        dryRun: options.dryRun,
      });
      log.warn({ problems: errors.length }, "desired state invalid, nothing changed");
      return { status, summary: summarize(status, actual, errors) };
    }
    const { inputs: globalInputs } = global;
    const userInputs = user.inputs;
    const custom = userInputs.custom;
    const catalogHash = canonicalHash({
      global: globalInputs.catalog.inputsHash,
      custom: custom ? [custom.file, custom.hash] : null,
    });
    // A dry run (the `plan` command) must not even write the derived cache.
    const { catalog } = options.dryRun
      ? { catalog: mergeUserCatalog(globalInputs.catalog, custom) }
      : await this.deps.catalogs.get(userId, catalogHash, () =>
          mergeUserCatalog(globalInputs.catalog, custom),
        );
    const generation = canonicalHash({
      catalog: catalogHash,
      user: userInputs.hash,
      policy: globalInputs.policyHash,
    }).slice(0, 16);

    const needed = new Set<string>();
    for (const entry of userInputs.enabled.servers) {
      for (const name of catalog.servers.get(entry.id)?.definition.required_secrets ?? []) needed.add(name);
    }
    // Read and decrypted at most once per reconcile, though a stale snapshot makes the plan be computed twice.
    let secrets: Promise<(name: string) => SecretResolution> | undefined;

    const computePlan = async (current: ActualUser) => {
      const block = this.deps.allocator.portBlockFor(userId, preferredBlockStart(current, this.deps.config));
      if (!block) return { block: undefined, desired: undefined, plan: undefined };
      const resolveSecret = await (secrets ??= loadUserSecrets(root, userId, needed, this.deps.secrets));
      const currentPorts = new Map<string, number>();
      for (const c of current.containers) {
        const serverId = c.labels[LABELS.serverId];
        const port = Number(c.labels[LABELS.hostPort]);
        if (serverId !== undefined && Number.isInteger(port) && !currentPorts.has(serverId))
          currentPorts.set(serverId, port);
      }
      // Everything computeDesiredUser depends on besides constant config: an unchanged key means an unchanged
      // result, which spares a no-op resync all the hashing of specs.
      const desiredKey = canonicalJson({
        generation,
        block,
        ports: [...currentPorts].sort(),
        secrets: [...needed].sort().map((name) => {
          const r = resolveSecret(name);
          return r.ok ? [name, r.digest] : [name, r.reason, r.message];
        }),
      });
      const cached = this.desiredCache.get(userId);
      const desired =
        cached?.key === desiredKey
          ? cached.desired
          : computeDesiredUser({
              installation: this.deps.config.installation,
              userId,
              catalog,
              enabled: userInputs.enabled,
              policy: globalInputs.policy,
              defaultLimits: this.deps.config.defaultLimits,
              portBlock: block,
              currentPorts,
              resolveSecret,
              publishHost: this.deps.config.publishHost,
              publishPorts: !this.deps.config.gateway,
              containerUser: this.deps.config.containerUser,
              portalVersion: PORTAL_VERSION,
            });
      this.desiredCache.set(userId, { key: desiredKey, desired });
      return { block, desired, plan: planUser(userId, desired, current) };
    };

    let computed = await computePlan(actual);
    if (options.snapshot && computed.plan && computed.plan.steps.length > 0) {
      // The shared listing may be older than this user's last change: look again before acting.
      actual = await this.listActual(userId);
      computed = await computePlan(actual);
    }
    const { block, desired, plan } = computed;
    if (!block || !desired || !plan) {
      const status = await this.writeStatus(userId, {
        generation,
        suspended: false,
        actual,
        desired: undefined,
        applied: undefined,
        errors,
        stalled: { reason: "PortPoolExhausted", message: "no free port block left in the global port range" },
        mutations: 0,
        started,
        dryRun: options.dryRun,
      });
      return { status, summary: summarize(status, actual, errors) };
    }

    const suspended = userInputs.enabled.suspend;
    let stalled: Observation["stalled"];
    let steps = plan.steps;
    if (suspended) steps = [];
    if (!options.dryRun) {
      const guarded = this.guardPrunes(userId, steps, log);
      steps = guarded.steps;
      stalled = guarded.stalled;
    }
    if (options.dryRun) {
      const status = await this.writeStatus(userId, {
        generation,
        suspended,
        actual,
        desired,
        applied: undefined,
        errors,
        stalled: undefined,
        mutations: 0,
        started,
        dryRun: true,
      });
      return { plan: { ...plan, steps }, status, summary: summarize(undefined, actual, errors) };
    }
    if (steps.length > 0) log.info({ steps: steps.map(describeStep) }, `applying ${steps.length} step(s)`);
    const applied = await this.deps.applier.apply(userId, steps, block.start, log, options.signal);
    if (applied.userError) stalled = { reason: applied.userError.reason, message: applied.userError.message };
    const status = await this.writeStatus(userId, {
      generation,
      suspended,
      actual,
      desired,
      applied,
      errors,
      stalled,
      mutations: applied.mutations,
      started,
      dryRun: false,
    });
    this.auditBlocked(userId, status);
    const done = {
      duration_ms: this.deps.clock.now() - started,
      mutations: applied.mutations,
      steps: steps.length,
      phase: status.phase,
      servers: status.servers.length,
    };
    // A no-op reconcile (every resync, for every user) is debug noise; one that changed something is news.
    if (applied.mutations > 0 || applied.retryable.length > 0) log.info(done, "reconciled");
    else log.debug(done, "reconciled");
    if (applied.retryable.length > 0) {
      throw new AggregateError(
        applied.retryable,
        `${applied.retryable.length} step(s) failed for user ${userId}`,
      );
    }
    return {
      plan,
      status,
      summary: summarize(status, actual, errors),
      ...(applied.requeueAfterMs !== undefined ? { requeueAfterMs: applied.requeueAfterMs } : {}),
      ...(stalled?.reason === "MassPruneBlocked" ? { requeueAfterMs: 60_000 } : {}),
    };
  }

  private async reconcileAbsent(
    userId: string,
    actual: ActualUser,
    options: ReconcileOptions,
    log: Logger,
    started: number,
  ): Promise<ReconcileOutcome> {
    this.desiredCache.delete(userId);
    const plan = planUser(userId, undefined, actual);
    const deleted: UserSummary = {
      phase: "Deleted",
      containers: {},
      desired: 0,
      blocked: {},
      invalidFiles: [],
    };
    if (options.dryRun) return { plan, summary: deleted };
    if (plan.steps.length === 0) {
      if (this.deps.statuses.get(userId) || (await this.deps.statuses.previous(userId)))
        await this.deps.statuses.remove(userId);
      await this.deps.catalogs.remove(userId);
      this.deps.allocator.release(userId);
      return { plan, summary: deleted };
    }
    const guarded = this.guardPrunes(userId, plan.steps, log);
    if (guarded.stalled) {
      const status = await this.writeStatus(userId, {
        generation: "deleted",
        suspended: false,
        actual,
        desired: undefined,
        applied: undefined,
        errors: [],
        stalled: guarded.stalled,
        mutations: 0,
        started,
        dryRun: false,
      });
      return { plan, status, summary: summarize(status, actual, []), requeueAfterMs: 60_000 };
    }
    log.info({ steps: plan.steps.map(describeStep) }, "user directory removed: cleaning up");
    const applied = await this.deps.applier.apply(userId, plan.steps, undefined, log, options.signal);
    if (applied.retryable.length > 0 || applied.userError) {
      throw new AggregateError(applied.retryable, `cleanup of removed user ${userId} incomplete`);
    }
    await this.deps.statuses.remove(userId);
    await this.deps.catalogs.remove(userId);
    this.deps.allocator.release(userId);
    return { plan, summary: deleted };
  }

  private guardPrunes(
    userId: string,
    steps: readonly PlanStep[],
    log: Logger,
  ): { steps: PlanStep[]; stalled?: Observation["stalled"] } {
    const prunes = steps.filter((s) => s.kind === "removeContainer" && s.prune).length;
    const verdict = this.deps.pruneGuard.admit(prunes, this.deps.managedTotal());
    if (verdict.allowed) return { steps: [...steps] };
    const message = verdict.reason ?? "mass prune blocked";
    log.error({ prunes }, `mass prune blocked: ${message}`);
    void this.deps.audit.write({
      event_type: "ACTION_BLOCKED",
      user_id: userId,
      action: "prune_containers",
      resource: userId,
      result: "blocked",
      severity: "critical",
      details: { containers: prunes, reason: message },
    });
    const kept = steps.filter(
      (s) => !(s.kind === "removeContainer" && s.prune) && s.kind !== "removeNetwork",
    );
    return { steps: kept, stalled: { reason: "MassPruneBlocked", message } };
  }

  private auditBlocked(userId: string, status: UserStatus): void {
    for (const server of status.servers) {
      if (server.phase !== "Blocked") continue;
      void this.deps.audit.write({
        event_type: "ACTION_BLOCKED",
        user_id: userId,
        action: "run_server",
        resource: server.id,
        result: "blocked",
        details: { reason: server.reason, message: server.message },
      });
    }
  }

  private async writeStatus(
    userId: string,
    input: {
      generation: string;
      suspended: boolean;
      actual: ActualUser;
      desired: DesiredUser | undefined;
      applied: ApplyResult | undefined;
      errors: Problem[];
      stalled: Observation["stalled"];
      mutations: number;
      started: number;
      dryRun: boolean | undefined;
    },
  ): Promise<UserStatus> {
    const previous = await this.deps.statuses.previous(userId);
    const now = new Date(this.deps.clock.now());
    const servers = serverStatuses(input.actual, input.desired, input.applied, previous);
    if (this.deps.health) applyGatewayHealth(userId, servers, await this.deps.health.read());
    const network = input.applied?.network ?? networkOf(input.actual, input.desired);
    const block = this.deps.allocator.blockOf(userId);
    const summaryParts = [`${input.mutations} mutation(s)`];
    if (input.stalled) summaryParts.push(input.stalled.reason);
    if (input.errors.length > 0) summaryParts.push(`${input.errors.length} problem(s)`);
    const status = nextStatus(
      previous,
      {
        userId,
        generation: input.generation,
        suspended: input.suspended,
        network,
        portBlock: block ?? null,
        servers,
        resources: input.desired
          ? { used: input.desired.usage, limits: input.desired.limits }
          : (previous?.resources ?? null),
        errors: input.errors,
        ...(input.stalled ? { stalled: input.stalled } : {}),
        record: {
          time: now.toISOString(),
          result: input.stalled
            ? "blocked"
            : input.applied && input.applied.retryable.length > 0
              ? "error"
              : "success",
          mutations: input.mutations,
          duration_ms: this.deps.clock.now() - input.started,
          summary: summaryParts.join(", "),
        },
      },
      now,
    );
    if (input.dryRun) return status;
    await this.deps.statuses.write(status);
    if (
      JSON.stringify(previous?.servers) !== JSON.stringify(status.servers) ||
      previous?.phase !== status.phase
    ) {
      this.deps.onStatus?.(previous, status);
    }
    return status;
  }
}

/**
 * Running is not Ready: with the gateway on, a server counts once its MCP probe (initialize, initialized, ping)
 * passed through the gateway, for this very container.
 */
export function applyGatewayHealth(
  userId: string,
  servers: ServerStatus[],
  health: ReadonlyMap<string, ServerHealth>,
): void {
  for (const server of servers) {
    if (server.phase !== "Running" || !server.container_id) continue;
    const probe = health.get(GatewayHealthReader.key(userId, server.id));
    if (!probe || probe.container_id !== server.container_id) {
      server.health = "Starting";
      continue;
    }
    server.health = probe.state;
    if (probe.state === "Unhealthy") {
      server.phase = "Unhealthy";
      server.reason = "Unhealthy";
      server.message = probe.message;
    }
  }
}

function preferredBlockStart(actual: ActualUser, config: Config): number | undefined {
  for (const network of actual.networks) {
    const start = Number(network.labels[LABELS.portBlock]);
    if (Number.isInteger(start)) return start;
  }
  for (const container of actual.containers) {
    const port = Number(container.labels[LABELS.hostPort]);
    if (Number.isInteger(port)) return blockStartOf(config.portRange, config.portsPerUser, port);
  }
  return undefined;
}

function networkOf(actual: ActualUser, desired: DesiredUser | undefined): UserStatus["network"] {
  const network = desired ? actual.networks.find((n) => n.name === desired.network.name) : actual.networks[0];
  if (network)
    return {
      name: network.name,
      id: network.id,
      ...(network.subnets[0] ? { subnet: network.subnets[0] } : {}),
    };
  return desired ? { name: desired.network.name } : null;
}

function serverStatuses(
  actual: ActualUser,
  desired: DesiredUser | undefined,
  applied: ApplyResult | undefined,
  previous: UserStatus | undefined,
): ServerStatus[] {
  if (!desired) {
    // Nothing could be computed: report what runs, as it runs.
    return (previous?.servers ?? []).map((s) => ({ ...s }));
  }
  return desired.servers.map((outcome): ServerStatus => {
    const containers = actual.containers.filter((c) => c.labels[LABELS.serverId] === outcome.serverId);
    const result = applied?.servers.get(outcome.serverId);
    if (outcome.kind === "blocked") {
      const kept = outcome.keepExisting ? containers[0] : undefined;
      return {
        id: outcome.serverId,
        phase: "Blocked",
        reason: outcome.reason,
        message: kept ? `${outcome.message}; the existing container keeps running` : outcome.message,
        ...(kept ? { container_id: kept.id, container_name: kept.name } : {}),
      };
    }
    const base = {
      id: outcome.serverId,
      host_port: outcome.spec.hostPort,
      spec_hash: outcome.specHash,
      image: outcome.spec.image,
    };
    if (result) {
      return {
        ...base,
        phase: result.phase,
        ...(result.reason ? { reason: result.reason } : {}),
        ...(result.message ? { message: result.message } : {}),
        ...(result.containerId ? { container_id: result.containerId } : {}),
        ...(result.containerName ? { container_name: result.containerName } : {}),
      };
    }
    const current = containers.find((c) => c.labels[LABELS.specHash] === outcome.specHash);
    if (current && (current.state === "running" || current.state === "paused")) {
      return { ...base, phase: "Running", container_id: current.id, container_name: current.name };
    }
    return {
      ...base,
      phase: "Pending",
      reason: current ? `Container${capitalize(current.state)}` : "ContainerMissing",
      ...(current ? { container_id: current.id, container_name: current.name } : {}),
    };
  });
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function summarize(status: UserStatus | undefined, actual: ActualUser, errors: Problem[]): UserSummary {
  const containers: Record<string, number> = {};
  const byId = new Map(status?.servers.filter((s) => s.container_id).map((s) => [s.container_id!, s]) ?? []);
  for (const c of actual.containers) {
    if (!c.labels[LABELS.serverId]) continue;
    const state = byId.get(c.id)?.phase === "Running" ? "running" : c.state;
    containers[state] = (containers[state] ?? 0) + 1;
  }
  for (const s of status?.servers ?? []) {
    if (s.container_id && !actual.containers.some((c) => c.id === s.container_id)) {
      const state = s.phase === "Running" ? "running" : "created";
      containers[state] = (containers[state] ?? 0) + 1;
    }
  }
  const blocked: Record<string, number> = {};
  for (const s of status?.servers ?? []) {
    const notServing = s.phase === "Blocked" || s.phase === "Failed" || s.phase === "Unhealthy";
    if ((notServing || s.reason === "ImagePullBackOff") && s.reason) {
      blocked[s.reason] = (blocked[s.reason] ?? 0) + 1;
    }
  }
  return {
    phase: status?.phase ?? "Progressing",
    containers,
    desired: status?.servers.length ?? 0,
    blocked,
    invalidFiles: [...new Set(errors.map((e) => e.file))],
  };
}
