import { mkdir } from "node:fs/promises";
import path from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { listUserDirs } from "../catalog/data-tree.js";
import type { Config } from "../config.js";
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
import { isValidUserId } from "../util/ids.js";
import type { NetworkAllocator } from "./allocator.js";
import { backoffDelay } from "./backoff.js";
import type { Clock } from "./clock.js";
import { type DataChange, type DataWatcher, watchDataDir } from "./data-watcher.js";
import { type GatewayHealthReader, gatewayHealthPath } from "./gateway-health.js";
import { Debouncer } from "./debouncer.js";
import type { GlobalInputsStore } from "./desired-inputs.js";
import type { ActualUser } from "./plan.js";
import type { Reconciler, UserSummary } from "./reconciler.js";
import { sliceByUser } from "./user-slices.js";
import { WorkQueue } from "./work-queue.js";

const RELEVANT_CONTAINER_EVENTS = new Set(["die", "stop", "destroy", "oom", "kill", "pause", "rename"]);

export interface ControllerDeps {
  config: Config;
  runtime: ContainerRuntime;
  reconciler: Reconciler;
  global: GlobalInputsStore;
  allocator: NetworkAllocator;
  metrics: Metrics;
  logger: Logger;
  audit: AuditWriter;
  clock: Clock;
  /** Watch the data dir (off in some tests and the `plan` command). */
  watch?: boolean;
  /** The gateway's health file; a change there re-evaluates the users whose servers' health changed. */
  health?: GatewayHealthReader;
}

/**
 * Sources (file watcher, engine events, periodic resync) feed user keys into one work queue; the queue runs
 * the reconciler per user. Everything here only decides *which* user to look at.
 */
export class Controller {
  private readonly queue: WorkQueue;
  private readonly debouncer: Debouncer;
  private readonly snapshots = new Map<string, ActualUser>();
  private readonly summaries = new Map<string, UserSummary>();
  private readonly eventsAbort = new AbortController();
  private watcher: DataWatcher | undefined;
  private healthWatcher: FSWatcher | undefined;
  private resyncTimer: unknown;
  private eventsLoop: Promise<void> | undefined;
  private knownUsers = new Set<string>();
  private managedTotal = 0;
  private summedContainers = 0;
  private gaugesScheduled = false;
  /** Ids of our user networks (from listings and statuses): only their removal is worth a resync. */
  private readonly ownNetworkIds = new Set<string>();
  private firstSync = false;
  private stopping = false;
  private resyncPending = false;

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
    return Math.max(this.managedTotal, this.summedContainers);
  }

  /** List, then watch: a full sync first, then events and the file watcher, then the periodic resync. */
  async start(): Promise<void> {
    const { config, logger } = this.deps;
    if (this.deps.watch !== false) {
      this.watcher = await watchDataDir({
        dataDir: config.dataDir,
        ignoredDirs: [config.stateDir],
        onChange: (change) => this.onDataChange(change),
        onError: (error) => logger.warn({ err: String(error) }, "file watcher error"),
      });
    }
    if (this.deps.health && this.deps.watch !== false) await this.watchHealth(this.deps.health);
    this.eventsLoop = this.watchEngine(this.eventsAbort.signal);
    await this.resync();
    await this.queue.idle();
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
    await this.watcher?.close();
    await this.healthWatcher?.close();
    await this.queue.shutdown();
    await this.eventsLoop;
  }

  /** Waits until every queued reconcile has run (tests, benchmarks). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  enqueue(userId: string): void {
    this.queue.add(userId);
  }

  /** Level-triggered safety net: one listing per resource kind, then every user is looked at. */
  async resync(): Promise<void> {
    const { runtime, config, allocator, metrics } = this.deps;
    this.deps.global.invalidate();
    const filters = ownerFilters(config.installation);
    const [containers, networks, volumes] = await Promise.all([
      runtime.listContainers(filters),
      runtime.listNetworks(),
      runtime.listVolumes(filters),
    ]);
    const owned = (labels: Readonly<Record<string, string>>) => isOwnedBy(labels, config.installation);
    allocator.rebuild(networks, (n) => (owned(n.labels) ? n.labels[LABELS.userId] : undefined), containers);
    this.managedTotal = containers.filter((c) => c.labels[LABELS.serverId] !== undefined).length;
    const ownNetworks = networks.filter((n) => owned(n.labels));
    this.ownNetworkIds.clear();
    for (const n of ownNetworks) this.ownNetworkIds.add(n.id);
    const slices = sliceByUser({ containers, networks: ownNetworks, volumes });
    const dirs = await listUserDirs(config.dataDir);
    const users = new Set([...dirs.names, ...slices.keys()]);
    this.knownUsers = users;
    for (const userId of users) {
      this.snapshots.set(userId, slices.get(userId) ?? { containers: [], networks: [], volumes: [] });
      this.queue.add(userId);
    }
    for (const userId of [...this.summaries.keys()]) if (!users.has(userId)) this.summaries.delete(userId);
    this.summedContainers = this.managedTotal;
    metrics.lastResyncTimestampSeconds.set(this.deps.clock.now() / 1000);
    this.updateGauges();
  }

  private async process(userId: string, signal: AbortSignal): Promise<{ requeueAfterMs?: number }> {
    const snapshot = this.snapshots.get(userId);
    this.snapshots.delete(userId);
    const outcome = await this.deps.reconciler.reconcile(userId, {
      signal,
      ...(snapshot ? { snapshot } : {}),
    });
    const count = (summary: UserSummary | undefined) =>
      Object.values(summary?.containers ?? {}).reduce((a, b) => a + b, 0);
    this.summedContainers += count(outcome.summary) - count(this.summaries.get(userId));
    if (outcome.summary.phase === "Deleted") {
      this.summaries.delete(userId);
      this.knownUsers.delete(userId);
    } else {
      this.summaries.set(userId, outcome.summary);
      this.knownUsers.add(userId);
      const networkId = outcome.status?.network?.id;
      if (networkId) this.ownNetworkIds.add(networkId);
    }
    this.scheduleGauges();
    return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : {};
  }

  private onDataChange(change: DataChange): void {
    void this.deps.audit.write({
      event_type: "DESIRED_STATE_CHANGE",
      user_id: change.scope === "user" ? change.userId : null,
      action: change.event,
      resource: change.file,
      result: "success",
    });
    if (change.scope === "global") {
      this.deps.global.invalidate();
      this.debouncer.add("*");
    } else {
      this.debouncer.add(change.userId);
    }
  }

  private flushChanges(keys: string[]): void {
    if (this.stopping) return;
    if (keys.includes("*")) {
      void listUserDirs(this.deps.config.dataDir).then((dirs) => {
        for (const userId of new Set([...this.knownUsers, ...dirs.names, ...keys.filter((k) => k !== "*")]))
          this.queue.add(userId);
      });
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
        actions: [...RELEVANT_CONTAINER_EVENTS],
      },
      (event) => {
        const userId = event.labels[LABELS.userId];
        if (!userId || !isValidUserId(userId)) return;
        this.queue.add(userId);
        // The engine sends `die` (and `kill`, `oom`) before its listing shows the container exited, and on a busy
        // host it can lag by seconds: look again after 1 s and 5 s, or a killed container would wait for the
        // next resync. (Separate timers: the queue's addAfter keeps only the earliest deadline per key.)
        if (event.action !== "destroy" && event.action !== "rename") {
          for (const ms of [1000, 5000]) this.deps.clock.setTimeout(() => this.queue.add(userId), ms);
        }
      },
      signal,
    );
    // The engine puts no labels on network events, so a removed user network is recognised by its id.
    const networks = this.followEvents(
      "network",
      { types: ["network"], actions: ["destroy"] },
      (event) => {
        if (this.ownNetworkIds.has(event.id)) this.requestResync();
      },
      signal,
    );
    await Promise.all([containers, networks]);
  }

  private async watchHealth(reader: GatewayHealthReader): Promise<void> {
    const file = gatewayHealthPath(this.deps.config.stateDir);
    await mkdir(path.dirname(file), { recursive: true });
    let known = new Map(await reader.read());
    this.healthWatcher = watch(path.dirname(file), { ignoreInitial: true, depth: 0 });
    this.healthWatcher.on("all", (_event, changed) => {
      if (path.resolve(changed) !== file) return;
      void reader.read().then((next) => {
        const users = new Set<string>();
        for (const key of new Set([...known.keys(), ...next.keys()])) {
          if (JSON.stringify(known.get(key)) !== JSON.stringify(next.get(key))) users.add(key.split("/")[0]!);
        }
        known = new Map(next);
        for (const userId of users) if (isValidUserId(userId)) this.queue.add(userId);
      });
    });
  }

  private requestResync(): void {
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
    while (!signal.aborted) {
      try {
        for await (const event of runtime.events(filter, signal)) {
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

  /** Gauges sum over all users: recompute once per burst of reconciles, not once per user (O(users²)). */
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
    const containers: Record<string, number> = {};
    const blocked: Record<string, number> = {};
    const phases: Record<string, number> = { Ready: 0, NotReady: 0, Suspended: 0 };
    const invalid = new Set<string>();
    let desired = 0;
    for (const summary of this.summaries.values()) {
      for (const [state, n] of Object.entries(summary.containers))
        containers[state] = (containers[state] ?? 0) + n;
      for (const [reason, n] of Object.entries(summary.blocked)) blocked[reason] = (blocked[reason] ?? 0) + n;
      desired += summary.desired;
      const phase =
        summary.phase === "Ready" ? "Ready" : summary.phase === "Suspended" ? "Suspended" : "NotReady";
      phases[phase] = (phases[phase] ?? 0) + 1;
      for (const f of summary.invalidFiles) invalid.add(f);
    }
    setGaugeSnapshot(metrics.managedContainers, "state", CONTAINER_STATES, containers);
    setGaugeSnapshot(metrics.blockedServers, "reason", BLOCKED_REASONS, blocked);
    setGaugeSnapshot(metrics.users, "phase", ["Ready", "NotReady", "Suspended"], phases);
    metrics.desiredServers.set(desired);
    metrics.invalidFiles.set(invalid.size);
    const ports = allocator.portStats();
    metrics.portPoolAllocated.set(ports.allocated);
    metrics.portPoolCapacity.set(ports.capacity);
  }
}
