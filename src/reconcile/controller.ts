import { SummaryTotals } from "./summary-totals.js";
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { listUserDirs } from "../catalog/data-tree.js";
import type { Config } from "../config.js";
import { type GatewayHealthServer, gatewayHealthPath, healthVerdict } from "../contracts/gateway-health.js";
import type { ContainerRuntime, EventFilter, RuntimeEvent } from "../docker/runtime.js";
import { LABELS, isOwnedBy, ownerFilters } from "../labels.js";
import type { AuditWriter } from "../observability/audit.js";
import type { Logger } from "../observability/logger.js";
import {
  BLOCKED_REASONS,
  CONTAINER_STATES,
  type Metrics,
  setGaugeSnapshot,
} from "../observability/metrics.js";
import { backoffDelay } from "../util/backoff.js";
import type { Clock } from "../util/clock.js";
import { isValidUserId } from "../util/ids.js";
import type { NetworkAllocator } from "./allocator.js";
import { type DataChange, type DataWatcher, watchDataDir } from "./data-watcher.js";
import { Debouncer } from "./debouncer.js";
import type { GlobalInputsStore, UserInputsStore } from "./desired-inputs.js";
import type { GatewayHealthReader } from "./gateway-health.js";
import type { Observer } from "./observer.js";
import type { PruneGuard, PruneGuardState } from "./prune-guard.js";
import type { ReconcileContext, Reconciler } from "./reconciler.js";
import type { UserSummary } from "./status-projection.js";
import type { IdleStore } from "./idle-store.js";
import type { WakeInbox } from "./wake-inbox.js";
import { WorkQueue } from "./work-queue.js";
import { MAX_STALE_USERS_FOR_KEPT_LISTING, chooseResyncListing } from "./resync-listing.js";
import type { Placer } from "../swarm/placer.js";

// `update`: a Swarm service changed (the Swarm backend reports service events as container events).
const RELEVANT_CONTAINER_EVENTS = new Set([
  "die",
  "stop",
  "destroy",
  "oom",
  "kill",
  "pause",
  "rename",
  "update",
]);
/**
 * Changes that need no reconcile at once (we made them, or a resync will see to them) but make the user's kept
 * slice stale: the next resync lists that user before it trusts the slice.
 */
const STALE_ONLY_CONTAINER_EVENTS = new Set(["create", "start", "restart", "unpause"]);
/** Network and volume events say nothing of whose object changed: the kept listing is not trusted after one. */
const LISTING_NETWORK_EVENTS = ["create", "destroy", "connect", "disconnect"];
const LISTING_VOLUME_EVENTS = ["create", "destroy"];

export interface ControllerDeps {
  config: Config;
  runtime: ContainerRuntime;
  observer: Observer;
  reconciler: Reconciler;
  global: GlobalInputsStore;
  users: UserInputsStore;
  allocator: NetworkAllocator;
  pruneGuard: PruneGuard;
  metrics: Metrics;
  logger: Logger;
  audit: AuditWriter;
  clock: Clock;
  /** Watch the data dir and the gateway's health file (off in unit tests, which call the notify methods). */
  watch?: boolean;
  /**
   * Inputs are kept until a change is reported (the watcher, or a caller of notifyDataChange): a resync then
   * re-reads every file only every MCP_PORTAL_REREAD_SECONDS. Off: every resync re-reads everything.
   */
  inputsCached?: boolean;
  /** The gateway's health file; a change there re-evaluates the users whose servers' health changed. */
  health?: GatewayHealthReader;
  /** Scale to zero: idle.json and the gateway's wake requests (README, "Idle servers"). */
  idle?: { store: IdleStore; inbox: WakeInbox };
  /** Swarm: where users are placed; rebuilt from every full listing. */
  placer?: Placer;
}

/**
 * Sources (file watcher, engine events, the gateway's health file, the periodic resync) name users to look at;
 * one work queue runs the reconciler per user. `process` owns what each reconcile is wrapped in: its id and
 * logger, its metrics, and what its result means for the queue (requeue after, or back off).
 */
export class Controller {
  private readonly queue: WorkQueue;
  private readonly debouncer: Debouncer;
  private readonly summaries = new Map<string, UserSummary>();
  private readonly eventsAbort = new AbortController();
  private watcher: DataWatcher | undefined;
  private healthWatcher: FSWatcher | undefined;
  private knownHealth = new Map<string, string>();
  private resyncTimer: unknown;
  private eventsLoop: Promise<void> | undefined;
  private knownUsers = new Set<string>();
  private managedTotal = 0;
  /** Sums of the users' last summaries behind the gauges, kept per change (see SummaryTotals). */
  private readonly totals = new SummaryTotals();
  private gaugesScheduled = false;
  /** Ids of our user networks (from listings and statuses): only their removal is worth a resync. */
  private readonly ownNetworkIds = new Set<string>();
  private firstSync = false;
  private stopping = false;
  private resyncPending = false;
  /** A full listing was asked for (a stream came back, a network of ours went): the next resync lists. */
  private fullListingRequested = false;
  /** When the last full listing started (the controller's clock); undefined before the first. */
  private lastFullListingAt: number | undefined;
  private lastReread = 0;
  private settling: Promise<boolean> | undefined;
  /** Reconcile ids: a random prefix per process, then a counter (unique in the logs, no crypto per reconcile). */
  private readonly idPrefix = randomBytes(3).toString("hex");
  private reconciles = 0;
  /** Flushes that are still listing users/ before they enqueue (idle() must wait for them too). */
  private readonly flushing = new Set<Promise<void>>();
  /** Users whose removals wait for the prune guard, as their last reconcile said. */
  private readonly holdingPrunes = new Set<string>();

  constructor(private readonly deps: ControllerDeps) {
    const { metrics, config } = deps;
    this.queue = new WorkQueue({
      concurrency: config.concurrency,
      process: (userId, signal) => this.process(userId, signal),
      clock: deps.clock,
      hooks: {
        onAdd: () => metrics.workqueueAddsTotal.inc(),
        onDepthChange: (depth) => metrics.workqueueDepth.set(depth),
        onStart: (_key, waitedMs) => metrics.workqueueQueueDurationSeconds.observe(waitedMs / 1000),
        onRetry: (userId, delayMs, error) => {
          metrics.workqueueRetriesTotal.inc();
          deps.logger.warn(
            {
              user_id: userId,
              retry_in_ms: delayMs,
              err: error instanceof Error ? error.message : String(error),
            },
            "reconcile failed, backing off",
          );
        },
        onIdle: () => void this.settlePrunes(),
      },
    });
    this.debouncer = new Debouncer(
      (keys) => this.flushChanges(keys),
      config.debounceMs,
      config.debounceMs * 10,
      deps.clock,
    );
  }

  get firstSyncDone(): boolean {
    return this.firstSync;
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  get managedContainers(): number {
    // The last listing may predate a cold start's creates: never let the prune guard see fewer than exist.
    return Math.max(this.managedTotal, this.totals.containerCount);
  }

  /** List, then watch: a full sync first, then events and the file watcher, then the periodic resync. */
  async start(): Promise<void> {
    const { config, logger } = this.deps;
    await this.deps.pruneGuard.load();
    const idle = this.deps.idle;
    if (idle) {
      await idle.store.load();
      if (idle.store.loadProblem)
        logger.error(
          { problem: idle.store.loadProblem },
          "idle.json is unusable: stopped servers with an idle timeout are taken as idle until the first sync is done",
        );
    }
    if (this.deps.watch !== false) {
      this.watcher = await watchDataDir({
        dataDir: config.dataDir,
        ignoredDirs: [config.stateDir],
        onChange: (change) => this.notifyDataChange(change),
        onError: (error) => {
          // Lost file events would leave cached inputs stale: read everything again, and keep doing so.
          logger.warn({ err: String(error) }, "file watcher error: re-reading every file");
          this.deps.global.invalidate();
          this.deps.users.invalidateAll();
          this.deps.reconciler.invalidateRoot();
          this.requestResync();
        },
      });
    }
    if (this.deps.health && this.deps.watch !== false) await this.watchHealth();
    this.eventsLoop = this.watchEngine(this.eventsAbort.signal);
    // Wake requests left while the controller was away are acted on by the first sync.
    await idle?.inbox.start();
    await this.resync();
    await this.idle();
    if (idle?.store.loadProblem) {
      idle.store.settleLoadProblem();
      await idle.store
        .flush()
        .catch((error: unknown) => logger.error({ err: String(error) }, "cannot write idle.json"));
    }
    this.updateGauges();
    this.firstSync = true;
    logger.info({ users: this.knownUsers.size, managed_containers: this.managedTotal }, "initial sync done");
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.debouncer.cancel();
    if (this.resyncTimer !== undefined) this.deps.clock.clearTimeout(this.resyncTimer);
    this.eventsAbort.abort();
    await this.deps.idle?.inbox.stop();
    await this.watcher?.close();
    await this.healthWatcher?.close();
    await this.queue.shutdown();
    await this.eventsLoop;
  }

  /**
   * Waits until every queued reconcile has run and the prune guard has settled what they proposed (approved
   * prunes run as more reconciles, so this loops until nothing is left).
   */
  async idle(): Promise<void> {
    for (;;) {
      while (this.flushing.size > 0) await Promise.all([...this.flushing]);
      await this.queue.idle();
      if (this.stopping || !(await this.settlePrunes())) return;
    }
  }

  enqueue(userId: string): void {
    this.queue.add(userId);
  }

  /**
   * Level-triggered safety net: every user is looked at. What the engine holds comes from one listing per
   * resource kind, or from the listing kept up to date by events when nothing says it may be off (see
   * `chooseResyncListing`; a stale user is then listed on its own by its reconcile). `fullListing` lists
   * whatever the kept listing looks like.
   */
  async resync(options: { fullListing?: boolean } = {}): Promise<void> {
    if (options.fullListing) this.fullListingRequested = true;
    const { config, allocator, metrics, clock } = this.deps;
    const rereadMs = config.rereadSeconds * 1000;
    if (!this.deps.inputsCached || clock.now() - this.lastReread >= rereadMs) {
      // The watcher reports changes; every so often everything is read again anyway, in case one was lost.
      this.deps.global.invalidate();
      this.deps.users.invalidateAll();
      this.deps.reconciler.invalidateRoot();
      this.lastReread = clock.now();
    }
    const { observer } = this.deps;
    const choice = chooseResyncListing({
      now: clock.now(),
      lastFullListingAt: this.lastFullListingAt,
      relistMs: config.relistSeconds * 1000,
      completeEvents: this.deps.runtime.capabilities.completeEvents,
      requested: this.fullListingRequested,
      invalidated: observer.listingInvalidated,
      staleUsers: observer.staleUsers,
      maxStaleUsers: MAX_STALE_USERS_FOR_KEPT_LISTING,
    });
    if (choice.kind === "full") {
      const startedAt = clock.now();
      this.fullListingRequested = false;
      let fleet;
      try {
        fleet = await observer.listAll();
      } catch (error) {
        // Not listed after all: the next resync tries again rather than trusting what is kept.
        this.fullListingRequested = true;
        throw error;
      }
      this.lastFullListingAt = startedAt;
      allocator.rebuild(
        fleet.allNetworks,
        (n) => (isOwnedBy(n.labels, config.installation) ? n.labels[LABELS.userId] : undefined),
        fleet.listing.containers,
      );
      this.deps.placer?.rebuild(fleet.slices);
      this.managedTotal = fleet.managedContainers;
      this.ownNetworkIds.clear();
      for (const n of fleet.listing.networks) this.ownNetworkIds.add(n.id);
    } else {
      // The allocator, the placer and our network ids were kept current by every reconcile since the listing.
      this.managedTotal = observer.managedContainers();
    }
    metrics.resyncsTotal.inc({ listing: choice.kind === "full" ? choice.cause : "kept" });
    const dirs = await listUserDirs(config.dataDir);
    const users = new Set(dirs.names);
    for (const userId of observer.users()) users.add(userId);
    this.knownUsers = users;
    // A user whose inputs, objects and health are as they were after a reconcile that changed nothing is looked
    // at here, from memory, and not queued: a settled fleet's resync costs a key comparison per user.
    let unchanged = 0;
    for (const userId of users) {
      if (this.deps.reconciler.isUnchanged(userId)) unchanged++;
      else this.queue.add(userId);
    }
    metrics.resyncUnchangedUsers.set(unchanged);
    // (Deleting the entry just visited is safe while iterating a Map.)
    for (const [userId, summary] of this.summaries) {
      if (users.has(userId)) continue;
      this.summaries.delete(userId);
      this.totals.replace(summary, undefined);
    }
    metrics.lastResyncTimestampSeconds.set(clock.now() / 1000);
    this.updateGauges();
  }

  /** A file of the desired state changed (the watcher calls this; tests may too). */
  notifyDataChange(change: DataChange): void {
    void this.deps.audit.write({
      event_type: "DESIRED_STATE_CHANGE",
      user_id: change.scope === "user" ? change.userId : null,
      action: change.event,
      resource: change.file,
      result: "success",
    });
    if (change.scope === "global") {
      this.deps.global.invalidate();
      // A swapped checkout (git-sync) is a new tree: every user's files are new.
      if (change.event === "swap") {
        this.deps.reconciler.invalidateRoot();
        this.deps.users.invalidateAll();
      }
      this.debouncer.add("*");
    } else {
      this.deps.users.invalidate(change.userId);
      this.debouncer.add(change.userId);
    }
  }

  /**
   * The gateway's health file changed: re-evaluate the users whose servers' verdict (container, state, message)
   * changed, from the kept listing. Probe times and failure counters alone change nothing.
   */
  async notifyHealthChanged(): Promise<void> {
    const reader = this.deps.health;
    if (!reader) return;
    const next = verdicts(await reader.read());
    for (const userId of changedUsers(this.knownHealth, next))
      if (isValidUserId(userId)) this.queue.add(userId);
    this.knownHealth = next;
  }

  private async process(userId: string, signal: AbortSignal): Promise<{ requeueAfterMs?: number }> {
    const { metrics, logger, clock } = this.deps;
    const reconcileId = `${this.idPrefix}${(++this.reconciles).toString(16)}`;
    // Most reconciles of a settled fleet find nothing changed and never log: the child logger is made on first use.
    let child: Logger | undefined;
    const ctx: ReconcileContext = {
      signal,
      get log(): Logger {
        return (child ??= logger.child({ user_id: userId, reconcile_id: reconcileId }));
      },
    };
    const started = clock.now();
    const end = metrics.reconcileDurationSeconds.startTimer();
    let result;
    try {
      result = await this.deps.reconciler.reconcile(userId, ctx);
    } catch (error) {
      metrics.reconcileTotal.inc({ result: "error" });
      ctx.log.warn(
        { err: error instanceof Error ? error.message : String(error), duration_ms: clock.now() - started },
        "reconcile failed",
      );
      throw error;
    } finally {
      end();
    }
    metrics.reconcileTotal.inc({
      result: result.failure ? "error" : result.summary.phase === "Stalled" ? "blocked" : "success",
    });
    // The sums over the users' last summaries: they count containers created since the last listing, too.
    this.totals.replace(
      this.summaries.get(userId),
      result.summary.phase === "Deleted" ? undefined : result.summary,
    );
    if (result.heldPrunes > 0) this.holdingPrunes.add(userId);
    else this.holdingPrunes.delete(userId);
    if (result.summary.phase === "Deleted") {
      this.summaries.delete(userId);
      this.knownUsers.delete(userId);
    } else {
      this.summaries.set(userId, result.summary);
      this.knownUsers.add(userId);
      const networkId = result.status?.network?.id;
      if (networkId) this.ownNetworkIds.add(networkId);
    }
    this.scheduleGauges();
    // A failure backs off in the queue (its retry re-reads everything); the status already says what failed.
    if (result.failure) throw result.failure;
    return result.requeueAfterMs !== undefined ? { requeueAfterMs: result.requeueAfterMs } : {};
  }

  /** Lets the prune guard look at all proposals at once; true when it approved some (their users run again). */
  private settlePrunes(): Promise<boolean> {
    if (this.settling) return this.settling;
    const run = async (): Promise<boolean> => {
      const guard = this.deps.pruneGuard;
      const outcome = await guard.settle(this.managedContainers);
      this.deps.metrics.pruneBlocked.set(guard.state.tripped ? 1 : 0);
      if (outcome.tripped) {
        this.deps.logger.error(
          { reason: guard.state.reason },
          "mass-prune guard tripped: no container is removed",
        );
        void this.deps.audit.write({
          event_type: "ACTION_BLOCKED",
          user_id: null,
          action: "prune_containers",
          resource: "installation",
          result: "blocked",
          severity: "critical",
          details: { reason: guard.state.reason },
        });
        // Their statuses say why nothing is removed.
        for (const userId of this.holdingPrunes) this.queue.add(userId);
      }
      for (const userId of outcome.approvedUsers) this.queue.add(userId);
      // Users blocked by a latch that is now released run again to carry out their removals.
      if (outcome.released) for (const userId of this.knownUsers) this.queue.add(userId);
      return outcome.approvedUsers.length > 0 || outcome.released || outcome.tripped;
    };
    this.settling = run()
      .catch((error: unknown) => {
        this.deps.logger.error({ err: String(error) }, "prune guard settle failed");
        return false;
      })
      .finally(() => (this.settling = undefined));
    return this.settling;
  }

  pruneGuard(): PruneGuardState {
    return this.deps.pruneGuard.state;
  }

  /** An operator releases the mass-prune latch (the admin API); the pending removals run. */
  async releasePruneGuard(by: string): Promise<void> {
    const { approvedUsers } = await this.deps.pruneGuard.release(by);
    this.deps.metrics.pruneBlocked.set(0);
    for (const userId of approvedUsers) this.queue.add(userId);
    for (const userId of this.knownUsers) this.queue.add(userId);
  }

  private flushChanges(keys: string[]): void {
    if (this.stopping) return;
    if (keys.includes("*")) {
      const flush = listUserDirs(this.deps.config.dataDir)
        .then((dirs) => {
          for (const userId of new Set([...this.knownUsers, ...dirs.names, ...keys.filter((k) => k !== "*")]))
            this.queue.add(userId);
        })
        .catch((error: unknown) => this.deps.logger.warn({ err: String(error) }, "cannot list users/"))
        .finally(() => this.flushing.delete(flush));
      this.flushing.add(flush);
      return;
    }
    for (const userId of keys) this.queue.add(userId);
  }

  private scheduleResync(): void {
    if (this.stopping) return;
    const base = this.deps.config.resyncSeconds * 1000;
    const jitter = base * 0.1 * (Math.random() * 2 - 1);
    this.resyncTimer = this.deps.clock.setTimeout(() => {
      this.resync()
        .catch((error: unknown) => this.deps.logger.warn({ err: String(error) }, "resync failed"))
        .finally(() => this.scheduleResync());
    }, base + jitter);
  }

  /** Engine events name users to look at; on every reconnect, a full resync covers what was missed. */
  private async watchEngine(signal: AbortSignal): Promise<void> {
    const { config } = this.deps;
    const containers = this.followEvents(
      "container",
      {
        labels: ownerFilters(config.installation),
        types: ["container"],
        actions: [...RELEVANT_CONTAINER_EVENTS, ...STALE_ONLY_CONTAINER_EVENTS],
      },
      (event) => {
        const userId = event.labels[LABELS.userId];
        if (!userId || !isValidUserId(userId)) return;
        this.deps.observer.markStale(userId);
        if (STALE_ONLY_CONTAINER_EVENTS.has(event.action)) return;
        this.queue.add(userId);
        // The engine sends `die` (and `kill`, `oom`) before its listing shows the container exited, and on a busy
        // host it can lag by seconds: look again after 1 s and 5 s, or a killed container would wait for the
        // next resync. (Separate timers: the queue's addAfter keeps only the earliest deadline per key.)
        if (event.action !== "destroy" && event.action !== "rename") {
          for (const ms of [1000, 5000])
            this.deps.clock.setTimeout(() => {
              this.deps.observer.markStale(userId);
              this.queue.add(userId);
            }, ms);
        }
      },
      signal,
    );
    // Networks and volumes share one stream (one engine connection fewer). The engine filters actions across
    // types, so the union is asked for and each event checked against its own type's list.
    const networksAndVolumes = this.followEvents(
      "network+volume",
      {
        types: ["network", "volume"],
        actions: [...new Set([...LISTING_NETWORK_EVENTS, ...LISTING_VOLUME_EVENTS])],
      },
      (event) => {
        const actions = event.type === "network" ? LISTING_NETWORK_EVENTS : LISTING_VOLUME_EVENTS;
        if (!actions.includes(event.action)) return;
        this.deps.observer.invalidateListing();
        // The engine puts no labels on network events, so a removed user network is recognised by its id.
        if (event.type === "network" && event.action === "destroy" && this.ownNetworkIds.has(event.id))
          this.requestResync();
      },
      signal,
    );
    await Promise.all([containers, networksAndVolumes]);
  }

  private async watchHealth(): Promise<void> {
    const file = gatewayHealthPath(this.deps.config.stateDir);
    await mkdir(path.dirname(file), { recursive: true });
    this.knownHealth = verdicts(await this.deps.health!.read());
    this.healthWatcher = watch(path.dirname(file), { ignoreInitial: true, depth: 0 });
    this.healthWatcher.on("all", (_event, changed) => {
      if (path.resolve(changed) === file) void this.notifyHealthChanged();
    });
  }

  /** A resync soon, with a full listing. */
  private requestResync(): void {
    this.fullListingRequested = true;
    if (this.stopping || this.resyncPending) return;
    this.resyncPending = true;
    this.deps.clock.setTimeout(() => {
      this.resyncPending = false;
      this.resync().catch((error: unknown) => this.deps.logger.warn({ err: String(error) }, "resync failed"));
    }, this.deps.config.debounceMs);
  }

  private async followEvents(
    name: string,
    filter: EventFilter,
    onEvent: (event: RuntimeEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const { runtime, logger, metrics } = this.deps;
    let failures = 0;
    // Until a full listing starts after the subscription, a change made before it may be missing from both.
    const subscribed = () => this.deps.observer.invalidateListing();
    while (!signal.aborted) {
      try {
        for await (const event of runtime.events(filter, signal, subscribed)) {
          failures = 0;
          onEvent(event);
        }
      } catch (error) {
        if (signal.aborted) break;
        logger.warn(
          { stream: name, err: error instanceof Error ? error.message : String(error) },
          "docker event stream failed",
        );
      }
      if (signal.aborted) break;
      // Until the stream is back and a full listing made, changes may go unreported: the kept listing is not
      // trusted (a resync before the reconnect lists too).
      this.deps.observer.invalidateListing();
      failures++;
      metrics.dockerEventsReconnectsTotal.inc();
      const delay = backoffDelay(failures, { baseMs: 500, maxMs: 30_000 });
      // One listener per wait, removed when the wait ends: reconnects must not pile listeners onto the signal.
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          this.deps.clock.clearTimeout(handle);
          resolve();
        };
        const handle = this.deps.clock.setTimeout(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        }, delay);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (signal.aborted) break;
      // Events were lost while disconnected: list again (the events stream is a hint, the list is the truth).
      this.requestResync();
    }
  }

  /** Gauges are set once per burst of reconciles, not once per reconcile (their sums are kept per change). */
  private scheduleGauges(): void {
    if (this.gaugesScheduled) return;
    this.gaugesScheduled = true;
    this.deps.clock.setTimeout(() => {
      this.gaugesScheduled = false;
      this.updateGauges();
    }, 50);
  }

  private updateGauges(): void {
    const { metrics, allocator } = this.deps;
    const { totals } = this;
    setGaugeSnapshot(
      metrics.managedContainers,
      "state",
      CONTAINER_STATES,
      Object.fromEntries(totals.containers),
    );
    setGaugeSnapshot(metrics.blockedServers, "reason", BLOCKED_REASONS, Object.fromEntries(totals.blocked));
    setGaugeSnapshot(
      metrics.users,
      "phase",
      ["Ready", "NotReady", "Suspended"],
      Object.fromEntries(totals.phases),
    );
    metrics.desiredServers.set(totals.desired);
    metrics.idleServers.set(totals.idle);
    metrics.invalidFiles.set(totals.invalidFileCount);
    const ports = allocator.portStats();
    metrics.portPoolAllocated.set(ports.allocated);
    metrics.portPoolCapacity.set(ports.capacity);
    const subnets = allocator.subnetStats();
    metrics.subnetPoolAllocated.set(subnets.allocated);
    metrics.subnetPoolCapacity.set(subnets.capacity);
  }
}

/** Each server's health verdict (what the status reports), keyed `<user>/<server>`. */
export function verdicts(health: ReadonlyMap<string, GatewayHealthServer>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, server] of health) out.set(key, healthVerdict(server));
  return out;
}

/** Users with a server whose verdict differs between two readings (added, removed or changed). */
export function changedUsers(
  before: ReadonlyMap<string, string>,
  after: ReadonlyMap<string, string>,
): Set<string> {
  const users = new Set<string>();
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    if (before.get(key) !== after.get(key)) users.add(key.slice(0, key.indexOf("/")));
  }
  return users;
}
