import type { ActualContainer, ContainerRuntime } from "../docker/runtime.js";
import { LABELS, ownerFilters } from "../labels.js";
import type { Logger } from "../observability/logger.js";
import { backoffDelay } from "../util/backoff.js";
import type { Clock } from "../util/clock.js";
import { isValidUserId } from "../util/ids.js";
import type { Placer } from "./placer.js";

export interface SwarmWatcherOptions {
  runtime: ContainerRuntime;
  placer: Placer;
  installation: string;
  clock: Clock;
  logger: Logger;
  /** MCP_PORTAL_SWARM_POLL_SECONDS: how often nodes and tasks are listed. */
  pollMs: number;
  /** Users to reconcile: their tasks changed, or their node can no longer run them. */
  onUsers: (userIds: string[]) => void;
}

/**
 * What Swarm does not announce: task state changes (it sends no task events) and, quickly enough, node
 * failures. Every `pollMs` it lists the nodes and the installation's services with their tasks (three calls,
 * whatever the fleet's size), and names the users whose workloads changed (state, node, crash loop) or whose
 * node was drained, paused or went down, so the controller re-places them. A node event polls at once.
 */
export class SwarmWatcher {
  private readonly abort = new AbortController();
  private timer: unknown;
  private polling: Promise<void> | undefined;
  private again = false;
  private eventsLoop: Promise<void> | undefined;
  private known = new Map<string, string>();
  private stopped = false;

  constructor(private readonly options: SwarmWatcherOptions) {}

  /** Lists the nodes once (the placer needs them before the first reconcile), then polls and follows node events. */
  async start(): Promise<void> {
    this.options.placer.setNodes(await this.options.runtime.listNodes());
    this.eventsLoop = this.followNodeEvents();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.options.clock.clearTimeout(this.timer);
    await this.polling;
    await this.eventsLoop;
  }

  /** Polls now (serialized: a request during a poll runs one more after it). */
  poll(): Promise<void> {
    if (this.polling) {
      this.again = true;
      return this.polling;
    }
    this.polling = (async () => {
      do {
        this.again = false;
        await this.pollOnce();
      } while (this.again && !this.stopped);
    })().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.options.clock.setTimeout(() => {
      void this.poll().finally(() => this.schedule());
    }, this.options.pollMs);
  }

  private async pollOnce(): Promise<void> {
    const { runtime, placer, installation, logger } = this.options;
    try {
      const [nodes, workloads] = await Promise.all([
        runtime.listNodes(),
        runtime.listContainers(ownerFilters(installation)),
      ]);
      if (this.stopped) return;
      placer.setNodes(nodes);
      const next = fingerprints(workloads);
      const users = new Set<string>();
      for (const userId of new Set([...this.known.keys(), ...next.keys()]))
        if (this.known.get(userId) !== next.get(userId)) users.add(userId);
      for (const userId of placer.usersOnUnusableNodes()) users.add(userId);
      this.known = next;
      if (users.size > 0) this.options.onUsers([...users]);
    } catch (error) {
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, "swarm poll failed");
    }
  }

  private async followNodeEvents(): Promise<void> {
    const { runtime, logger, clock } = this.options;
    let failures = 0;
    while (!this.stopped) {
      try {
        for await (const event of runtime.events({ types: ["node"] }, this.abort.signal)) {
          failures = 0;
          logger.debug({ action: event.action, node_id: event.id }, "node event");
          void this.poll();
        }
      } catch (error) {
        if (this.stopped) return;
        logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          "node event stream failed",
        );
      }
      if (this.stopped) return;
      failures++;
      await new Promise<void>((resolve) => {
        const handle = clock.setTimeout(resolve, backoffDelay(failures, { baseMs: 500, maxMs: 30_000 }));
        this.abort.signal.addEventListener(
          "abort",
          () => {
            clock.clearTimeout(handle);
            resolve();
          },
          { once: true },
        );
      });
    }
  }
}

/** Per user, what the controller reads of its workloads, as one string (equal strings: nothing to look at). */
export function fingerprints(workloads: readonly ActualContainer[]): Map<string, string> {
  const parts = new Map<string, string[]>();
  for (const w of workloads) {
    const userId = w.labels[LABELS.userId];
    if (!userId || !isValidUserId(userId)) continue;
    const list = parts.get(userId) ?? [];
    list.push(
      `${w.id}|${w.state}|${w.node ?? ""}|${w.placement ?? ""}|${w.version ?? ""}|${w.crashLoop?.failures ?? 0}`,
    );
    parts.set(userId, list);
  }
  return new Map([...parts].map(([userId, list]) => [userId, list.sort().join("\n")]));
}
