import type { ActualContainer, ContainerRuntime, EventFilter } from "../docker/runtime.js";
import { LABELS, ownerFilters } from "../labels.js";
import type { Logger } from "../observability/logger.js";
import { backoffDelay } from "../util/backoff.js";
import type { Clock } from "../util/clock.js";
import { isValidServerId, isValidUserId } from "../util/ids.js";
import type { ServerTarget } from "./endpoint.js";
import { parseHealthLabel } from "./health.js";
import { TRANSPORTS, type Transport } from "./metrics.js";

const STATE_RANK: Record<string, number> = { running: 3, restarting: 2, created: 1 };

/**
 * Pure: the container to serve for each `<user>/<server>` among the installation's containers. A running one
 * wins (the newest, while a replace briefly runs two), else the newest in any other state (so a stopped server
 * keeps its port and reports why). Containers without valid ids, transport or host port are skipped.
 */
export function serverTargets(containers: readonly ActualContainer[]): Map<string, ServerTarget> {
  const chosen = new Map<string, { target: ServerTarget; created: number }>();
  for (const container of containers) {
    const labels = container.labels;
    const userId = labels[LABELS.userId] ?? "";
    const serverId = labels[LABELS.serverId] ?? "";
    const hostPort = Number(labels[LABELS.hostPort]);
    const transport = labels[LABELS.transport] as Transport | undefined;
    if (!isValidUserId(userId) || !isValidServerId(serverId)) continue;
    if (!Number.isInteger(hostPort) || hostPort < 1 || hostPort > 65_535) continue;
    if (transport === undefined || !(TRANSPORTS as readonly string[]).includes(transport)) continue;
    const containerPort = Number(labels[LABELS.containerPort]);
    const key = `${userId}/${serverId}`;
    const target: ServerTarget = {
      key,
      userId,
      serverId,
      hostPort,
      transport,
      containerId: container.id,
      state: container.state,
      policy: parseHealthLabel(labels[LABELS.healthCheck]),
      containerPort: Number.isInteger(containerPort) && containerPort > 0 ? containerPort : undefined,
    };
    const current = chosen.get(key);
    const rank = STATE_RANK[container.state] ?? 0;
    const currentRank = current ? (STATE_RANK[current.target.state] ?? 0) : -1;
    if (!current || rank > currentRank || (rank === currentRank && container.created > current.created)) {
      chosen.set(key, { target, created: container.created });
    }
  }
  return new Map([...chosen].map(([key, { target }]) => [key, target]));
}

export interface DiscoveryOptions {
  runtime: ContainerRuntime;
  installation: string;
  clock: Clock;
  logger: Logger;
  /** Full re-list period, whatever the events say (default 30 s). */
  resyncMs?: number;
  /** Events arriving within this window cause one list (default 100 ms). */
  debounceMs?: number;
  onTargets: (targets: Map<string, ServerTarget>) => void | Promise<void>;
  onEventsReconnect?: () => void;
}

const CONFIRM_LIST_MS = 1000;

const CONTAINER_ACTIONS = [
  "create",
  "start",
  "restart",
  "die",
  "stop",
  "kill",
  "pause",
  "unpause",
  "destroy",
  "rename",
];

/**
 * List, then watch, then re-list: the installation's containers are listed (one call, label filter) at start,
 * once more each time the engine confirms the event subscription (at start and after every reconnect), a little
 * after any container event of the installation, and every `resyncMs`. Events only say "look again".
 */
export class Discovery {
  private readonly abort = new AbortController();
  private watchLoop: Promise<void> | undefined;
  private listTimer: unknown;
  private confirmTimer: unknown;
  private resyncTimer: unknown;
  private listing: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private synced = false;

  constructor(private readonly options: DiscoveryOptions) {}

  /** True once a list has succeeded. */
  get firstSyncDone(): boolean {
    return this.synced;
  }

  async start(): Promise<void> {
    this.watchLoop = this.watch();
    // An engine that confirms the subscription at once has already started a list after it: that one will do.
    await (this.listing ?? this.list());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.options.clock.clearTimeout(this.listTimer);
    this.options.clock.clearTimeout(this.confirmTimer);
    this.options.clock.clearTimeout(this.resyncTimer);
    await this.watchLoop;
    await this.listing;
  }

  /** Lists now (serialized: a list requested during one runs once more after it). */
  list(): Promise<void> {
    if (this.listing) {
      this.again = true;
      return this.listing;
    }
    this.listing = this.listLoop().finally(() => {
      this.listing = undefined;
    });
    return this.listing;
  }

  private async listLoop(): Promise<void> {
    const { runtime, installation, logger, clock } = this.options;
    let failed = false;
    do {
      this.again = false;
      if (this.stopped) return;
      let step = "listing containers";
      try {
        const containers = await runtime.listContainers(ownerFilters(installation));
        if (this.stopped) return;
        logger.debug({ containers: containers.length }, "listed the installation's containers");
        step = "applying the listed containers";
        await this.options.onTargets(serverTargets(containers));
        this.synced = true;
        failed = false;
      } catch (error) {
        // Either way, look again soon (below): every list carries the full set, so the next one repairs it.
        failed = true;
        logger.warn({ err: error instanceof Error ? error.message : String(error) }, `${step} failed`);
      }
    } while (this.again);
    clock.clearTimeout(this.resyncTimer);
    if (!this.stopped) {
      const resyncMs = this.options.resyncMs ?? 30_000;
      // After a failure (engine down), look again soon rather than at the next resync.
      this.resyncTimer = clock.setTimeout(
        () => void this.list(),
        failed ? Math.min(resyncMs, 2000) : resyncMs,
      );
    }
  }

  /**
   * A list shortly after an event, and a second one a second later: the engine may publish an event before its
   * list shows the change (a `die` while the list still says running), and an event lost that way would wait
   * for the next resync.
   */
  private scheduleList(): void {
    if (this.stopped) return;
    const { clock } = this.options;
    clock.clearTimeout(this.listTimer);
    clock.clearTimeout(this.confirmTimer);
    this.listTimer = clock.setTimeout(() => {
      void this.list();
      this.confirmTimer = clock.setTimeout(() => void this.list(), CONFIRM_LIST_MS);
    }, this.options.debounceMs ?? 100);
  }

  private async watch(): Promise<void> {
    const { runtime, installation, logger } = this.options;
    const filter: EventFilter = {
      types: ["container"],
      labels: ownerFilters(installation),
      actions: CONTAINER_ACTIONS,
    };
    let failures = 0;
    while (!this.stopped) {
      const opened = this.options.clock.now();
      try {
        // A list that starts once the engine has the subscription sees whatever changed before it: the start
        // list may have been answered before the subscription existed, and a reconnect missed the stream's gap.
        const subscribed = () => void this.list();
        for await (const event of runtime.events(filter, this.abort.signal, subscribed)) {
          failures = 0;
          logger.debug({ action: event.action, container_id: event.id.slice(0, 12) }, "docker event");
          this.scheduleList();
        }
      } catch (error) {
        if (this.stopped) return;
        logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          "docker events stream failed",
        );
      }
      if (this.stopped) return;
      this.options.onEventsReconnect?.();
      failures = this.options.clock.now() - opened > 10_000 ? 1 : failures + 1;
      // Whatever happened while the stream was down is picked up by the list once it is subscribed again.
      await new Promise<void>((resolve) => {
        const timer = this.options.clock.setTimeout(
          resolve,
          backoffDelay(failures, { baseMs: 200, maxMs: 10_000 }),
        );
        this.abort.signal.addEventListener(
          "abort",
          () => {
            this.options.clock.clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
    }
  }
}
