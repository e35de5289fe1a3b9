import net from "node:net";
import type { ActualContainer, ActualNode, ContainerRuntime, EventFilter } from "../docker/runtime.js";
import { LABELS, ownerFilters } from "../labels.js";
import type { Logger } from "../observability/logger.js";
import { isValidServerId, isValidUserId } from "../util/ids.js";
import { relayPreamble } from "./relay.js";

/*
 * The entry gateway of a Swarm installation (README, "Several hosts"): the one stable address clients use
 * (MCP_PORTAL_PUBLIC_URL). It listens on every user's server port and forwards each connection, as bytes, to the
 * relay port of the node gateway on the node the user is placed on; that node gateway authenticates and serves
 * it. Where a user runs comes from the manager (services, their placement, the nodes' addresses), listed every
 * few seconds and on every service or node event, so a moved user is followed within one listing.
 */

export interface EntryRoute {
  /** `<user>/<server>`. */
  key: string;
  nodeId: string;
  /** The node's address as the cluster knows it. */
  address: string;
}

/** Pure: each served host port and the node that serves it (by the workload's placement, else its task's node). */
export function entryRoutes(
  workloads: readonly ActualContainer[],
  nodes: readonly ActualNode[],
): Map<number, EntryRoute> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const byHostname = new Map(nodes.map((n) => [n.hostname, n]));
  const routes = new Map<number, EntryRoute>();
  for (const w of workloads) {
    const userId = w.labels[LABELS.userId] ?? "";
    const serverId = w.labels[LABELS.serverId] ?? "";
    const hostPort = Number(w.labels[LABELS.hostPort]);
    if (!isValidUserId(userId) || !isValidServerId(serverId)) continue;
    if (!Number.isInteger(hostPort) || hostPort < 1 || hostPort > 65_535) continue;
    const node =
      (w.placement !== undefined ? byId.get(w.placement) : undefined) ??
      (w.node !== undefined ? byHostname.get(w.node) : undefined);
    if (!node?.addr) continue;
    routes.set(hostPort, { key: `${userId}/${serverId}`, nodeId: node.id, address: node.addr });
  }
  return routes;
}

export interface EntryGatewayOptions {
  /** The Swarm manager (SwarmRuntime). */
  runtime: ContainerRuntime;
  installation: string;
  /** Where clients connect (the public URL's host). */
  listenHost: string;
  /** The node gateways' relay port (the same on every node). */
  relayPort: number;
  pollMs: number;
  logger: Logger;
}

interface Listener {
  server: net.Server;
  route: EntryRoute;
  sockets: Set<net.Socket>;
}

export class EntryGateway {
  private readonly listeners = new Map<number, Listener>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private events: Promise<void> | undefined;
  private listing: Promise<void> | undefined;
  private stopped = false;
  private synced = false;

  constructor(private readonly options: EntryGatewayOptions) {}

  get firstSyncDone(): boolean {
    return this.synced;
  }

  /** The routes served now, by host port (tests, metrics). */
  routes(): Map<number, EntryRoute> {
    return new Map([...this.listeners].map(([port, l]) => [port, l.route]));
  }

  async start(): Promise<void> {
    await this.refresh();
    this.events = this.follow();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.timer);
    await this.listing;
    await this.events;
    await Promise.all([...this.listeners.keys()].map((port) => this.close(port)));
  }

  /** Lists the manager and applies the routes (serialized). */
  refresh(): Promise<void> {
    this.listing ??= this.listOnce().finally(() => (this.listing = undefined));
    return this.listing;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.refresh().finally(() => this.schedule()), this.options.pollMs);
  }

  private async listOnce(): Promise<void> {
    const { runtime, installation, logger } = this.options;
    try {
      const [workloads, nodes] = await Promise.all([
        runtime.listContainers(ownerFilters(installation)),
        runtime.listNodes(),
      ]);
      if (this.stopped) return;
      await this.apply(entryRoutes(workloads, nodes));
      this.synced = true;
    } catch (error) {
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, "entry: listing failed");
    }
  }

  private async apply(routes: Map<number, EntryRoute>): Promise<void> {
    for (const port of [...this.listeners.keys()]) if (!routes.has(port)) await this.close(port);
    for (const [port, route] of routes) {
      const existing = this.listeners.get(port);
      if (existing) {
        if (existing.route.nodeId !== route.nodeId || existing.route.address !== route.address) {
          this.options.logger.info({ server: route.key, node_id: route.nodeId, port }, "entry: server moved");
          // The old task is gone with its sessions: close the connections to its node, so that clients (and
          // their keep-alive pools) connect again, to the new node.
          for (const s of existing.sockets) s.destroy();
        }
        existing.route = route;
        continue;
      }
      await this.open(port, route);
    }
  }

  private async open(port: number, route: EntryRoute): Promise<void> {
    const listener: Listener = { server: net.createServer(), route, sockets: new Set() };
    listener.server.on("connection", (client) => this.forward(listener, client, port));
    try {
      await new Promise<void>((resolve, reject) => {
        listener.server.once("error", reject);
        listener.server.listen(port, this.options.listenHost, () => {
          listener.server.off("error", reject);
          resolve();
        });
      });
      this.listeners.set(port, listener);
    } catch (error) {
      // Taken by someone else: the next listing tries again.
      this.options.logger.warn(
        { port, err: error instanceof Error ? error.message : String(error) },
        "entry: cannot listen",
      );
    }
  }

  private async close(port: number): Promise<void> {
    const listener = this.listeners.get(port);
    if (!listener) return;
    this.listeners.delete(port);
    for (const s of listener.sockets) s.destroy();
    await new Promise<void>((resolve) => listener.server.close(() => resolve()));
  }

  private forward(listener: Listener, client: net.Socket, port: number): void {
    const { route } = listener;
    listener.sockets.add(client);
    client.once("close", () => listener.sockets.delete(client));
    client.pause();
    const upstream = net.connect(this.options.relayPort, route.address, () => {
      upstream.write(relayPreamble(port));
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on("error", (error) => {
      this.options.logger.warn(
        { server: route.key, node: route.address, err: error.message },
        "entry: relay failed",
      );
      client.destroy();
    });
    client.on("error", () => upstream.destroy());
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  }

  private async follow(): Promise<void> {
    const filter: EventFilter = { types: ["container", "node"] };
    while (!this.stopped) {
      try {
        for await (const _event of this.options.runtime.events(filter, this.abort.signal))
          void this.refresh();
      } catch {
        // The periodic listing covers what was missed.
      }
      if (this.stopped) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}
