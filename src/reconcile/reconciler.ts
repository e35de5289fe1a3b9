import { realpath } from "node:fs/promises";
import type { MergedCatalog } from "../catalog/merge.js";
import type { Config } from "../config.js";
import { type GatewayHealthServer, gatewayHealthKey, healthVerdict } from "../contracts/gateway-health.js";
import type { UserStatus } from "../contracts/status-file.js";
import { blockStartOf } from "../desired/port-blocks.js";
import { gatewayAccess } from "../desired/gateway-access.js";
import type { GatewayAccessFile } from "../contracts/gateway-access.js";
import type { GatewayAccessWriter } from "./gateway-access-writer.js";
import type { ContainerSpec, DesiredUser } from "../desired/types.js";
import { type DesiredUserInput, computeDesiredUser } from "../desired/user-desired.js";
import { LABELS, type PortBlockLabel, parsePortBlockLabel } from "../labels.js";
import type { AuditWriter } from "../observability/audit.js";
import type { Logger } from "../observability/logger.js";
import { canonicalHash, canonicalJson } from "../util/canonical-json.js";
import type { Clock } from "../util/clock.js";
import type { Problem } from "../validate/problem.js";
import type { NetworkAllocator } from "./allocator.js";
import { type Decision, decideUser } from "./decide.js";
import { type PreparedSource, prepareDesiredSource } from "./desired-source.js";
import type { GlobalInputsStore, GlobalSnapshot, UserInputsStore, UserSnapshot } from "./desired-inputs.js";
import type { ExecutionResult, Executor } from "./executor.js";
import type { GatewayHealthReader } from "./gateway-health.js";
import { IDLE_STOP_GRACE_MS } from "../contracts/gateway-traffic.js";
import type { IdleDecision, IdleInputs } from "./idle.js";
import type { IdleStore } from "./idle-store.js";
import type { Observer, UserObservation } from "./observer.js";
import { type ActualUser, type PlanStep, describeStep, isPruneStep, prunedContainerIds } from "./plan.js";
import type { PruneGuard } from "./prune-guard.js";
import type { StartBackoff } from "./start-backoff.js";
import type { StatusStore } from "./status.js";
import {
  DELETED_SUMMARY,
  type Stalled,
  type UserSummary,
  projectStatus,
  summarize,
} from "./status-projection.js";
import type { SecretKeys } from "./user-secrets.js";
import type { Placer } from "../swarm/placer.js";

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
  observer: Observer;
  global: GlobalInputsStore;
  users: UserInputsStore;
  catalogs: CatalogCache;
  secrets: SecretKeys | undefined;
  allocator: NetworkAllocator;
  executor: Executor;
  starts: StartBackoff;
  statuses: StatusStore;
  pruneGuard: PruneGuard;
  audit: AuditWriter;
  clock: Clock;
  onStatus?: (previous: UserStatus | undefined, next: UserStatus) => void;
  /** The gateway's MCP probes; set when the gateway serves users' ports. */
  health?: GatewayHealthReader;
  /** Where each user's tool policy and rate limits go for the gateway; set when the gateway serves users' ports. */
  access?: GatewayAccessWriter;
  /** Resolve the data dir's symlinks once until `invalidateRoot` (a watcher reports swaps); off: every reconcile. */
  cacheRoot?: boolean;
  /** Scale to zero (README, "Idle servers"); absent: no server idles. */
  idle?: IdleDeps;
  /** Without `idle`: why not (status warns each server that sets an idle timeout). */
  idleNotApplied?: string;
  /** The backend updates workloads in place (its capabilities.inPlaceUpdate). */
  inPlaceUpdate?: boolean;
  /** Swarm: where each user's workloads run. */
  placer?: Placer;
  /** Swarm: what a spec asks for that the backend cannot express (status warnings). */
  specWarnings?: (spec: ContainerSpec) => string[];
}

/** What the reconciler needs for idle servers: their marks, the gateway's wake requests and last requests. */
export interface IdleDeps {
  store: IdleStore;
  wakes: {
    pendingFor(userId: string): ReadonlySet<string>;
    consume(userId: string, serverIds: Iterable<string>): Promise<void>;
  };
  /** `<user>/<server>` -> the last client request (ms). */
  traffic: { read(): Promise<ReadonlyMap<string, number>> };
  /** Between idle.json and an idle stop (default IDLE_STOP_GRACE_MS; tests shorten it). */
  stopGraceMs?: number;
}

export interface ReconcileContext {
  signal: AbortSignal;
  /** A child logger carrying the reconcile id and the user (made on first use: read it only to log). */
  readonly log: Logger;
}

/** What a reconcile tells the controller; the controller decides about requeues and backoff from it. */
export interface ReconcileResult {
  summary: UserSummary;
  status?: UserStatus;
  /** Look again after this long even if nothing happens (backoffs, grace periods). */
  requeueAfterMs?: number;
  /** Steps failed in a way that calls for the queue's backoff (engine trouble). */
  failure?: Error;
  mutations: number;
  steps: number;
  /** Removals waiting for the prune guard (their outcome depends on the guard, not only on the inputs). */
  heldPrunes: number;
  /** Nothing it depends on changed since the last reconcile, which changed nothing: no work was done. */
  unchanged: boolean;
}

/**
 * Everything a user's reconcile outcome depends on, for the no-op shortcut, part by part (a settled fleet's
 * resync compares these for every user: no string is built for it, and the long parts are the same strings).
 */
interface UnchangedKey {
  /** The data dir as resolved (a swapped checkout is a new tree). */
  root: string;
  global: string;
  user: string;
  /** The user's port block. */
  block: string;
  /** The gateway's verdict on each of the user's servers (empty without a gateway). */
  health: string;
  /** Scale to zero: the user's idle marks and pending wake requests (empty without it). */
  idle: string;
  /** What the user's objects look like (Observer fingerprint). */
  observed: string;
}

function sameKey(a: UnchangedKey, b: UnchangedKey): boolean {
  return (
    a.observed === b.observed &&
    a.user === b.user &&
    a.global === b.global &&
    a.block === b.block &&
    a.health === b.health &&
    a.idle === b.idle &&
    a.root === b.root
  );
}

/** A user snapshot's part of the key, made once per snapshot (snapshots are kept until their files change). */
const userKeys = new WeakMap<UserSnapshot, string>();
function userInputsKey(user: UserSnapshot): string {
  let key = userKeys.get(user);
  if (key === undefined) {
    key =
      user.kind === "absent"
        ? "absent"
        : `${user.inputs?.hash ?? "-"}:${user.problems.length}:${user.awaitingUntil ?? ""}:${canonicalJson(user.problems)}`;
    userKeys.set(user, key);
  }
  return key;
}

/** A user's last outcome, reused while its key stays the same; see `unchangedKey`. */
interface Settled {
  key: UnchangedKey;
  /** Swarm: the node the user was placed on then (a node drained since moves the user). */
  placement: string | undefined;
  result: ReconcileResult;
}

/**
 * The reconcile shell of one user, level-triggered: read the inputs (cached until the watcher says they
 * changed), take the observed slice, decide (pure), execute, project and write the status. Safe to run at any
 * time, any number of times. When nothing it depends on changed since a reconcile that changed nothing, it
 * returns that reconcile's result at once: a resync of an unchanged fleet costs a lookup per user.
 */
export class Reconciler {
  private readonly desiredCache = new Map<string, { key: string; desired: DesiredUser }>();
  private readonly settled = new Map<string, Settled>();
  /** Per user: container id -> when this controller first saw it running (the idle clock starts there). */
  private readonly runningSince = new Map<string, Map<string, number>>();
  private root: Promise<string> | undefined;
  /** The resolved root while `root` holds it, for the synchronous check of `isUnchanged`. */
  private rootValue: string | undefined;

  constructor(private readonly deps: ReconcilerDeps) {}

  /** The data dir may point elsewhere now (a swapped checkout): resolve it again. */
  invalidateRoot(): void {
    this.root = undefined;
    this.rootValue = undefined;
  }

  private resolveRoot(): Promise<string> {
    if (!this.deps.cacheRoot) return realpath(this.deps.config.dataDir);
    if (!this.root) {
      const resolving = realpath(this.deps.config.dataDir).then(
        (root) => {
          if (this.root === resolving) this.rootValue = root;
          return root;
        },
        (error: unknown) => {
          if (this.root === resolving) this.root = undefined;
          throw error;
        },
      );
      this.root = resolving;
    }
    return this.root;
  }

  /**
   * True when, from what is already in memory (no I/O), nothing the user's outcome depends on changed since a
   * reconcile that changed nothing: a resync then need not queue the user at all. False whenever anything needed
   * for the answer is not at hand (inputs not cached, a stale or missing listing, no settled outcome).
   */
  isUnchanged(userId: string): boolean {
    const settled = this.settled.get(userId);
    const root = this.rootValue;
    if (!settled || root === undefined) return false;
    const global = this.deps.global.peek(root);
    const user = this.deps.users.peek(userId, root);
    const observation = this.deps.observer.peek(userId);
    if (!global || !user || !observation) return false;
    let health: ReadonlyMap<string, GatewayHealthServer> | undefined;
    if (this.deps.health) {
      health = this.deps.health.peek();
      if (!health) return false;
    }
    if (this.deps.placer && this.deps.placer.peekNodeFor(userId, observation.observed) !== settled.placement)
      return false;
    return sameKey(this.unchangedKey(userId, root, global, user, observation, health), settled.key);
  }

  async reconcile(userId: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const started = this.deps.clock.now();
    // Resolve the data dir once: with a symlink-swapped checkout (git-sync), every file of this reconcile
    // comes from the same revision.
    const root = await this.resolveRoot();
    const [global, user, observation, health] = await Promise.all([
      this.deps.global.get(root),
      this.deps.users.get(userId, root),
      this.deps.observer.user(userId),
      this.deps.health ? this.deps.health.read() : Promise.resolve(undefined),
    ]);
    const placement = this.deps.placer?.nodeFor(userId, observation.observed);
    const key = this.unchangedKey(userId, root, global, user, observation, health);
    const settled = this.settled.get(userId);
    if (settled && sameKey(settled.key, key) && settled.placement === placement)
      return { ...settled.result, unchanged: true };

    const result = await this.converge(userId, ctx, {
      root,
      global,
      user,
      observation,
      health,
      started,
      placement,
    });
    // Only an outcome that nothing but its inputs can change may be reused: no waits or retries due, no failures,
    // no removals waiting for the prune guard.
    if (
      result.requeueAfterMs === undefined &&
      !result.failure &&
      result.mutations === 0 &&
      result.heldPrunes === 0 &&
      result.summary.phase !== "Deleted"
    )
      this.settled.set(userId, {
        key: this.unchangedKey(userId, root, global, user, await this.deps.observer.user(userId), health),
        placement,
        result,
      });
    else this.settled.delete(userId);
    return result;
  }

  private unchangedKey(
    userId: string,
    root: string,
    global: GlobalSnapshot,
    user: UserSnapshot,
    observation: UserObservation,
    health: ReadonlyMap<string, GatewayHealthServer> | undefined,
  ): UnchangedKey {
    let healthKey = "";
    if (health) {
      for (const c of observation.observed.containers) {
        const serverId = c.labels[LABELS.serverId];
        if (serverId !== undefined)
          healthKey += `${serverId}=${healthVerdict(health.get(gatewayHealthKey(userId, serverId)))};`;
      }
    }
    const block = this.deps.allocator.blockOf(userId);
    const idle = this.deps.idle;
    const idleKey = idle
      ? `${idle.store.keyOf(userId)}|${[...idle.wakes.pendingFor(userId)].sort().join(",")}`
      : "";
    return {
      root,
      global: global.key,
      user: userInputsKey(user),
      block: block ? `${block.start}-${block.end}` : "-",
      health: healthKey,
      idle: idleKey,
      observed: observation.fingerprint,
    };
  }

  private async converge(
    userId: string,
    ctx: ReconcileContext,
    input: {
      root: string;
      global: GlobalSnapshot;
      user: UserSnapshot;
      observation: UserObservation;
      health: ReadonlyMap<string, GatewayHealthServer> | undefined;
      started: number;
      placement: string | undefined;
    },
  ): Promise<ReconcileResult> {
    const { deps } = this;
    const { root, global, user, health, started, placement } = input;
    const previous = await deps.statuses.previous(userId);
    const errors: Problem[] = user.kind === "present" ? [...global.problems, ...user.problems] : [];
    const prepared = await this.prepare(userId, root, global, user);
    // What the gateway enforces is written before any container of the user is created or replaced, so no
    // container is ever served without it. It is not part of any container's spec: a change replaces nothing.
    const access =
      prepared.source.kind === "desired"
        ? gatewayAccess(userId, prepared.source.input.enabled, prepared.source.input.policy)
        : undefined;
    if (access && deps.access) await deps.access.write(access);

    let observation = input.observation;
    const traffic = deps.idle ? await deps.idle.traffic.read() : undefined;
    let idleInputs = this.idleInputs(userId, observation.observed, traffic);
    let decision = this.decide(userId, prepared, observation.observed, previous, placement, idleInputs);
    if (observation.fromCache && hasWork(decision)) {
      // The kept listing may be older than this user's last change: look again before acting.
      observation = await deps.observer.user(userId, { fresh: true });
      idleInputs = this.idleInputs(userId, observation.observed, traffic);
      decision = this.decide(userId, prepared, observation.observed, previous, placement, idleInputs);
    }
    const observed = observation.observed;

    if (decision.kind === "hold") {
      return this.finish(userId, ctx, {
        previous,
        generation: decision.generation,
        suspended: false,
        observed,
        desired: undefined,
        executed: undefined,
        waits: [],
        health,
        access,
        errors,
        stalled: decision.stalled,
        started,
        requeueAfterMs:
          user.kind === "present" && user.awaitingUntil ? user.awaitingUntil - deps.clock.now() : undefined,
      });
    }

    // Prunes are proposed, and run only once the guard approved them (see PruneGuard).
    const plan = decision.plan;
    const pruneIds = prunedContainerIds(plan.steps);
    deps.pruneGuard.propose(userId, pruneIds);
    const pruneApproved = deps.pruneGuard.isApproved(pruneIds);
    let steps: PlanStep[] = pruneApproved ? plan.steps : plan.steps.filter((s) => !isPruneStep(s));
    const pruneHeld = plan.steps.length - steps.length;
    const idleDecision = decision.kind === "converge" ? decision.idle : undefined;
    if (idleDecision && !(await this.recordIdle(userId, idleDecision, ctx))) {
      // idle.json must say "idle" before a server is stopped for it, or a restart would take it for a crash.
      steps = steps.filter((s) => !(s.kind === "stopContainer" && s.idle));
    }
    if (idleDecision && traffic && steps.some((s) => s.kind === "stopContainer" && s.idle)) {
      const calledOff = await this.idleStopsCalledOff(userId, idleDecision, traffic, ctx);
      if (calledOff.size > 0)
        steps = steps.filter((s) => !(s.kind === "stopContainer" && s.idle && calledOff.has(s.serverId)));
    }

    let executed: ExecutionResult | undefined;
    if (steps.length > 0) {
      ctx.log.info({ steps: steps.map(describeStep) }, `applying ${steps.length} step(s)`);
      executed = await deps.executor.execute(steps, {
        userId,
        log: ctx.log,
        signal: ctx.signal,
        portBlock: decision.kind === "converge" ? decision.portBlock : undefined,
      });
      deps.observer.markStale(userId);
      // A container started now starts its idle clock now (not when a later listing first shows it running).
      const since = this.runningSince.get(userId);
      if (since)
        for (const server of executed.servers.values())
          if (server.phase === "Running" && server.containerId)
            since.set(server.containerId, deps.clock.now());
    }
    if (
      deps.idle &&
      idleInputs &&
      (decision.kind === "deleted" || (decision.kind === "converge" && !decision.suspended))
    )
      await deps.idle.wakes.consume(userId, [...idleInputs.wakes]);
    if (pruneIds.length > 0 && pruneApproved && executed && executed.retryable.length === 0) {
      deps.pruneGuard.done(pruneIds);
      deps.pruneGuard.propose(userId, []);
    }
    const failure =
      executed && executed.retryable.length > 0
        ? new AggregateError(
            executed.retryable,
            `${executed.retryable.length} step(s) failed for user ${userId}`,
          )
        : undefined;

    if (decision.kind === "deleted") {
      if (pruneHeld === 0 && !failure && !executed?.userError) {
        if (steps.length > 0) ctx.log.info({ steps: steps.length }, "user directory removed: cleaned up");
        await this.forgetUser(userId);
        return {
          summary: DELETED_SUMMARY,
          mutations: executed?.mutations ?? 0,
          steps: steps.length,
          heldPrunes: 0,
          unchanged: false,
        };
      }
      const guard = deps.pruneGuard.state;
      return this.finish(userId, ctx, {
        previous,
        generation: "deleted",
        suspended: false,
        observed,
        desired: undefined,
        executed,
        waits: [],
        health,
        errors: [],
        stalled: guard.tripped
          ? { reason: "MassPruneBlocked", message: guard.reason ?? "mass prune blocked" }
          : undefined,
        started,
        failure,
        requeueAfterMs: guard.tripped ? 60_000 : undefined,
        heldPrunes: pruneHeld,
        stepCount: steps.length,
      });
    }

    const guard = deps.pruneGuard.state;
    let stalled: Stalled | undefined = executed?.userError;
    if (!stalled && pruneHeld > 0 && guard.tripped)
      stalled = { reason: "MassPruneBlocked", message: guard.reason ?? "mass prune blocked" };
    const waitMs = plan.waits.length > 0 ? Math.min(...plan.waits.map((w) => w.waitMs)) : undefined;
    const requeues = [
      executed?.requeueAfterMs,
      waitMs,
      stalled?.reason === "MassPruneBlocked" ? 60_000 : undefined,
      // The next idle timeout due (a request meanwhile only moves it later: looked at again then).
      idleDecision?.nextCheckMs,
    ];
    const requeueAfterMs = requeues.reduce<number | undefined>(
      (min, ms) => (ms === undefined || ms === Infinity ? min : min === undefined ? ms : Math.min(min, ms)),
      undefined,
    );
    return this.finish(userId, ctx, {
      previous,
      generation: decision.generation,
      suspended: decision.suspended,
      observed,
      desired: decision.desired,
      executed,
      waits: plan.waits,
      health,
      access,
      errors,
      stalled,
      started,
      failure,
      requeueAfterMs,
      heldPrunes: pruneHeld,
      stepCount: steps.length,
      ...(idleDecision ? { idle: idleDecision } : {}),
    });
  }

  /**
   * Between writing idle.json and stopping: waits IDLE_STOP_GRACE_MS and reads the gateway's traffic again. A
   * server with a request since the decision was used (it reached the server before the gateway saw idle.json)
   * is taken out of idle.json and not stopped; requests the gateway held meanwhile then go on to it. Returns
   * those servers.
   */
  private async idleStopsCalledOff(
    userId: string,
    decision: IdleDecision,
    before: ReadonlyMap<string, number>,
    ctx: ReconcileContext,
  ): Promise<Set<string>> {
    const idle = this.deps.idle!;
    const calledOff = new Set<string>();
    await new Promise<void>((resolve) => {
      const handle = this.deps.clock.setTimeout(() => {
        ctx.signal.removeEventListener("abort", onAbort);
        resolve();
      }, idle.stopGraceMs ?? IDLE_STOP_GRACE_MS);
      const onAbort = () => {
        this.deps.clock.clearTimeout(handle);
        resolve();
      };
      ctx.signal.addEventListener("abort", onAbort, { once: true });
    });
    const after = await idle.traffic.read();
    for (const serverId of decision.stop.keys()) {
      const key = `${userId}/${serverId}`;
      if ((after.get(key) ?? 0) <= (before.get(key) ?? 0)) continue;
      calledOff.add(serverId);
      decision.stop.delete(serverId);
      idle.store.clear(userId, serverId);
    }
    if (calledOff.size === 0) return calledOff;
    ctx.log.info({ servers: [...calledOff] }, "idle stop called off: a request arrived");
    try {
      await idle.store.flush();
    } catch (error) {
      ctx.log.error(
        { err: error instanceof Error ? error.message : String(error) },
        "cannot write idle.json",
      );
    }
    return calledOff;
  }

  /** The idle clock's inputs for one user's decision; undefined when scale to zero is off. */
  private idleInputs(
    userId: string,
    observed: ActualUser,
    traffic: ReadonlyMap<string, number> | undefined,
  ): IdleInputs | undefined {
    const idle = this.deps.idle;
    if (!idle || !traffic) return undefined;
    const now = this.deps.clock.now();
    const before = this.runningSince.get(userId);
    const since = new Map<string, number>();
    for (const c of observed.containers) if (c.state === "running") since.set(c.id, before?.get(c.id) ?? now);
    this.runningSince.set(userId, since);
    const lastRequest = new Map<string, number>();
    const prefix = `${userId}/`;
    for (const [key, at] of traffic)
      if (key.startsWith(prefix)) lastRequest.set(key.slice(prefix.length), at);
    return {
      now,
      marks: idle.store.marksOf(userId),
      wakes: new Set(idle.wakes.pendingFor(userId)),
      lastRequest,
      runningSince: since,
      ...(idle.store.loadProblem !== undefined ? { adoptStopped: true } : {}),
    };
  }

  /**
   * Writes what the idle decision changes to idle.json (before any engine call) and audits it. False when
   * idle.json could not be written: the idle stops then wait for the next reconcile.
   */
  private async recordIdle(userId: string, decision: IdleDecision, ctx: ReconcileContext): Promise<boolean> {
    const { store } = this.deps.idle!;
    const audit = (
      action: string,
      serverId: string,
      result: "success" | "blocked",
      details: Record<string, unknown>,
    ) =>
      void this.deps.audit.write({
        event_type: result === "blocked" ? "ACTION_BLOCKED" : "CONTAINER_OPERATION",
        user_id: userId,
        action,
        resource: serverId,
        result,
        details,
      });
    for (const [serverId, stop] of decision.stop) {
      store.mark(userId, serverId, stop.containerId);
      audit("idle_stop_server", serverId, "success", {
        container_id: stop.containerId,
        idle_seconds: Math.round(stop.idleForMs / 1000),
        idle_timeout_seconds: stop.timeoutSeconds,
      });
    }
    for (const [serverId, containerId] of decision.adopted) {
      store.mark(userId, serverId, containerId);
      ctx.log.warn(
        { server_id: serverId },
        "idle.json unreadable: a stopped server with an idle timeout is taken as idle",
      );
    }
    for (const serverId of decision.wake) {
      store.clear(userId, serverId);
      audit("wake_server", serverId, "success", { requested_by: "gateway" });
    }
    for (const [serverId, refusal] of decision.refused) {
      store.refuse(userId, serverId, refusal);
      audit("wake_server", serverId, "blocked", { reason: refusal.reason, message: refusal.message });
    }
    for (const [serverId, why] of decision.cleared) {
      store.clear(userId, serverId);
      if (why === "started outside the gateway")
        audit("wake_server", serverId, "success", { requested_by: "engine (started outside the gateway)" });
    }
    if (decision.stop.size + decision.wake.size + decision.refused.size + decision.cleared.size > 0)
      ctx.log.info(
        {
          idle_stops: [...decision.stop.keys()],
          wakes: [...decision.wake],
          refused: [...decision.refused.keys()],
          cleared: Object.fromEntries(decision.cleared),
        },
        "idle servers changed",
      );
    try {
      await store.flush();
      return true;
    } catch (error) {
      ctx.log.error(
        { err: error instanceof Error ? error.message : String(error) },
        "cannot write idle.json",
      );
      return false;
    }
  }

  private prepare(
    userId: string,
    root: string,
    global: GlobalSnapshot,
    user: UserSnapshot,
  ): Promise<PreparedSource> {
    return prepareDesiredSource({
      config: this.deps.config,
      userId,
      root,
      global,
      user,
      secrets: this.deps.secrets,
      mergedCatalog: async (hash, compute) => (await this.deps.catalogs.get(userId, hash, compute)).catalog,
    });
  }

  private decide(
    userId: string,
    prepared: PreparedSource,
    observed: ActualUser,
    previous: UserStatus | undefined,
    placement: string | undefined,
    idle: IdleInputs | undefined,
  ): Decision {
    let source = prepared.source;
    if (source.kind === "desired") {
      const { allocator } = this.deps;
      const block = allocator.portBlockFor(userId, preferredBlock(observed, this.deps.config));
      source = block
        ? { ...source, portBlock: block }
        : { ...source, portBlock: undefined, portPoolExhausted: allocator.portPoolExhaustedMessage() };
    }
    const hadContainer = new Set((previous?.servers ?? []).filter((s) => s.container_id).map((s) => s.id));
    return decideUser({
      userId,
      source,
      observed,
      context: {
        startWaitMs: (id) => this.deps.starts.waitMs(id),
        hadContainer,
        ...(this.deps.inPlaceUpdate ? { inPlaceUpdate: true } : {}),
        ...(placement !== undefined ? { placement } : {}),
      },
      computeDesired: (input) => this.computeDesired(userId, input, prepared.secretsKey),
      ...(idle ? { idle } : {}),
    });
  }

  /** computeDesiredUser, skipped when nothing it depends on changed since the last call for this user. */
  private computeDesired(userId: string, input: DesiredUserInput, secretsKey: unknown): DesiredUser {
    const key = canonicalJson({
      generation: canonicalHash({
        catalog: input.catalog.inputsHash,
        enabled: input.enabled,
        policy: input.policy,
      }),
      block: input.portBlock,
      ports: [...input.currentPorts].sort(),
      volumes: [...(input.existingVolumes ?? [])].sort(),
      idle: [...(input.idleServers ?? [])].sort(),
      secrets: secretsKey ?? null,
    });
    const cached = this.desiredCache.get(userId);
    if (cached?.key === key) return cached.desired;
    const desired = computeDesiredUser(input);
    this.desiredCache.set(userId, { key, desired });
    return desired;
  }

  private async finish(
    userId: string,
    ctx: ReconcileContext,
    input: {
      previous: UserStatus | undefined;
      generation: string;
      suspended: boolean;
      observed: ActualUser;
      desired: DesiredUser | undefined;
      executed: ExecutionResult | undefined;
      waits: Parameters<typeof projectStatus>[0]["waits"];
      health: ReadonlyMap<string, GatewayHealthServer> | undefined;
      access?: GatewayAccessFile | undefined;
      errors: Problem[];
      stalled: Stalled | undefined;
      started: number;
      failure?: Error | undefined;
      requeueAfterMs?: number | undefined;
      heldPrunes?: number;
      stepCount?: number;
      idle?: IdleDecision;
    },
  ): Promise<ReconcileResult> {
    const { deps } = this;
    const now = deps.clock.now();
    const mutations = input.executed?.mutations ?? 0;
    const status = projectStatus({
      userId,
      previous: input.previous,
      generation: input.generation,
      suspended: input.suspended,
      observed: input.observed,
      desired: input.desired,
      executed: input.executed,
      waits: input.waits,
      health: input.health,
      access: input.access,
      publicUrl: deps.config.gateway ? deps.config.publicUrl : undefined,
      specWarnings: deps.specWarnings,
      idleNotApplied: deps.idle ? undefined : deps.idleNotApplied,
      portBlock: deps.allocator.blockOf(userId),
      errors: input.errors,
      stalled: input.stalled,
      mutations,
      durationMs: now - input.started,
      now: new Date(now),
      ...(input.idle ? { idle: input.idle } : {}),
    });
    await deps.statuses.write(status);
    if (
      JSON.stringify(input.previous?.servers) !== JSON.stringify(status.servers) ||
      input.previous?.phase !== status.phase
    ) {
      deps.onStatus?.(input.previous, status);
      this.auditNewlyBlocked(userId, input.previous, status);
    }
    if (input.stalled) ctx.log.warn({ reason: input.stalled.reason }, input.stalled.message);
    const done = {
      duration_ms: now - input.started,
      mutations,
      phase: status.phase,
      servers: status.servers.length,
      ...(input.heldPrunes ? { held_prunes: input.heldPrunes } : {}),
    };
    // A no-op reconcile (every resync, for every user) is debug noise; one that changed something is news.
    if (mutations > 0 || input.failure) ctx.log.info(done, "reconciled");
    else ctx.log.debug(done, "reconciled");
    return {
      summary: summarize(status, input.observed, input.errors),
      status,
      mutations,
      steps: input.stepCount ?? 0,
      heldPrunes: input.heldPrunes ?? 0,
      unchanged: false,
      ...(input.failure ? { failure: input.failure } : {}),
      ...(input.requeueAfterMs !== undefined && input.requeueAfterMs > 0
        ? { requeueAfterMs: input.requeueAfterMs }
        : {}),
    };
  }

  private async forgetUser(userId: string): Promise<void> {
    const { deps } = this;
    this.desiredCache.delete(userId);
    this.settled.delete(userId);
    if (deps.statuses.get(userId) || (await deps.statuses.previous(userId)))
      await deps.statuses.remove(userId);
    await deps.catalogs.remove(userId);
    deps.access?.forget(userId);
    deps.allocator.release(userId);
    deps.observer.forget(userId);
    deps.placer?.forget(userId);
    deps.pruneGuard.forgetUser(userId);
    this.runningSince.delete(userId);
    if (deps.idle) {
      deps.idle.store.forgetUser(userId);
      await deps.idle.store.flush().catch(() => undefined);
    }
  }

  /** An audit line when a server becomes blocked (or blocked for another reason), not at every resync. */
  private auditNewlyBlocked(userId: string, previous: UserStatus | undefined, status: UserStatus): void {
    for (const server of status.servers) {
      if (server.phase !== "Blocked") continue;
      const before = previous?.servers.find((s) => s.id === server.id);
      if (before?.phase === "Blocked" && before.reason === server.reason) continue;
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

  /** Drops what is remembered about a user's last outcome (its inputs or objects changed in a way keys miss). */
  forgetOutcome(userId: string): void {
    this.settled.delete(userId);
  }
}

function hasWork(decision: Decision): boolean {
  return decision.kind !== "hold" && (decision.plan.steps.length > 0 || decision.plan.waits.length > 0);
}

/**
 * The block the user's objects say it has: its network's `port_block` label (with the size it was made with),
 * else today's block around the host port of one of its containers.
 */
export function preferredBlock(actual: ActualUser, config: Config): PortBlockLabel | undefined {
  for (const network of actual.networks) {
    const label = parsePortBlockLabel(network.labels[LABELS.portBlock]);
    if (label) return label;
  }
  for (const container of actual.containers) {
    const port = Number(container.labels[LABELS.hostPort]);
    if (!Number.isInteger(port)) continue;
    const start = blockStartOf(config.portRange, config.portsPerUser, port);
    return start === undefined ? undefined : { start, size: config.portsPerUser, legacy: false };
  }
  return undefined;
}
