import type { ContainerSpec } from "../desired/types.js";
import { overlaps, parseIpv4Cidr } from "../desired/subnets.js";
import { LABELS } from "../labels.js";
import type { Clock } from "../util/clock.js";
import { compareTimestamps } from "./log-lines.js";
import { systemClock } from "../util/clock.js";
import {
  type ActualContainer,
  type ActualNetwork,
  type ActualNode,
  type ActualVolume,
  type ContainerRuntime,
  type ContainerState,
  type EventFilter,
  type LogLine,
  type LogRead,
  type LogReadOptions,
  type NetworkSpec,
  type ObjectRef,
  type Placement,
  type RuntimeCapabilities,
  RuntimeError,
  type RuntimeEvent,
  type RuntimeOperation,
  type VolumeSpec,
} from "./runtime.js";

/**
 * A container as the in-memory engine keeps it: what a listing shows plus its mounts (what an inspect shows of
 * them). Not the whole spec: the engine's memory is not the controller's, and a simulation of 100,000 containers
 * should measure the controller.
 */
export interface MemoryContainer extends ActualContainer {
  mounts: ContainerSpec["mounts"];
  /** Times the engine started it (for tests of restart behaviour). */
  starts: number;
}

/** A failure to inject: thrown by the next matching call(s) instead of doing the operation. */
export interface InjectedFailure {
  operation: RuntimeOperation;
  error: RuntimeError;
  /** Only calls whose first argument (id, name, image or spec name) this predicate accepts. */
  when?: (target: string) => boolean;
  /** How many calls fail (default 1; Infinity until cleared). */
  times?: number;
}

export interface MemoryRuntimeOptions {
  clock?: Clock;
  /** Images present from the start (refs as the specs name them, e.g. "mcp/x:1"). Default: every image exists. */
  images?: readonly string[];
  /** Images a pull can fetch when `images` is given. Default: none. */
  pullable?: readonly string[];
  /** Milliseconds every call waits before answering (0: answer in the same turn of the event loop). */
  latencyMs?: number;
  /**
   * Behave as a Swarm would where the planner sees a difference: specs are updated in place (same id and name,
   * a new version), and a workload's placement is kept. Default: an engine (replace by create-and-swap).
   */
  inPlaceUpdate?: boolean;
  /** Whether events report every change (see RuntimeCapabilities.completeEvents). Default: as an engine, unless
   * `inPlaceUpdate` makes it a Swarm. */
  completeEvents?: boolean;
  /** The cluster's nodes (Swarm); default none. */
  nodes?: readonly ActualNode[];
}

const USER_LABEL = LABELS.userId;

let sequence = 0;
function newId(): string {
  sequence++;
  return (Date.now().toString(16) + sequence.toString(16).padStart(12, "0")).padStart(64, "0");
}

/** `key=value` (or bare `key`) label filters, split once per call. */
type LabelFilter = [key: string, value: string | undefined];

function parseFilters(filters: readonly string[] | undefined): LabelFilter[] {
  return (filters ?? []).map((f) => {
    const eq = f.indexOf("=");
    return eq < 0 ? [f, undefined] : [f.slice(0, eq), f.slice(eq + 1)];
  });
}

function matches(labels: Readonly<Record<string, string>>, filters: readonly LabelFilter[]): boolean {
  for (const [key, value] of filters) {
    if (value === undefined ? !(key in labels) : labels[key] !== value) return false;
  }
  return true;
}

/**
 * Objects by the value of one label (the user label), as an engine's filtered list would find them without
 * looking at every object: a per-user listing stays cheap in a simulation of 100,000 containers.
 */
class LabelIndex<T extends { labels: Readonly<Record<string, string>> }> {
  private readonly byValue = new Map<string, Set<T>>();

  constructor(private readonly key: string) {}

  add(item: T): void {
    const value = item.labels[this.key];
    if (value === undefined) return;
    let set = this.byValue.get(value);
    if (!set) this.byValue.set(value, (set = new Set()));
    set.add(item);
  }

  remove(item: T): void {
    const value = item.labels[this.key];
    if (value === undefined) return;
    const set = this.byValue.get(value);
    set?.delete(item);
    if (set?.size === 0) this.byValue.delete(value);
  }

  /** The objects a list with these filters has to look at: the index's set when a filter names its label. */
  candidates(filters: readonly LabelFilter[], all: Iterable<T>): Iterable<T> {
    const filter = filters.find(([key, value]) => key === this.key && value !== undefined);
    return filter ? (this.byValue.get(filter[1]!) ?? []) : all;
  }
}

interface Subscriber {
  filter: EventFilter;
  push: (event: RuntimeEvent | Error) => void;
}

/**
 * A Docker Engine in memory, behaving as the real one does where the controller relies on it: unique names
 * (409 on a clash), idempotent volume creates that return the existing volume, subnets that may not overlap,
 * 304 for starting a running or stopping a stopped container, events with the engine's labelling (container
 * events carry the container's labels, network events carry none). Failures, latency and an engine outage can be
 * injected, and "someone else" can change things behind the controller's back (kill, stop, remove, foreign
 * objects). For unit tests and `bench:simulate`; it never touches a real engine.
 */
export class MemoryRuntime implements ContainerRuntime {
  readonly capabilities: RuntimeCapabilities;
  readonly nodes: ActualNode[];
  readonly containers = new Map<string, MemoryContainer>();
  readonly networks = new Map<string, ActualNetwork>();
  readonly volumes = new Map<string, ActualVolume>();
  readonly images: Set<string> | undefined;
  readonly calls = new Map<RuntimeOperation, number>();
  /** Indexes the engine keeps too: a name names one container, one network. */
  private readonly containerNames = new Map<string, MemoryContainer>();
  private readonly networkNames = new Map<string, ActualNetwork>();
  private readonly subnetIndex = new Map<string, ReturnType<typeof parseIpv4Cidr>>();
  private readonly containersByUser = new LabelIndex<MemoryContainer>(USER_LABEL);
  private readonly networksByUser = new LabelIndex<ActualNetwork>(USER_LABEL);
  private readonly volumesByUser = new LabelIndex<ActualVolume>(USER_LABEL);
  private readonly pullable: Set<string>;
  private readonly failures: InjectedFailure[] = [];
  private readonly subscribers = new Set<Subscriber>();
  private readonly clock: Clock;
  /** What the executor placed each container with (by name), and which networks are internal: for tests. */
  private readonly placements = new Map<string, Placement | undefined>();
  private readonly internalNetworks = new Set<string>();
  /** Lines containers "wrote" (by id), appended by tests with writeLog; gone with the container, as on the engine. */
  private readonly logs = new Map<string, LogLine[]>();
  private latencyMs: number;
  private down = false;

  constructor(options: MemoryRuntimeOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.images = options.images ? new Set(options.images) : undefined;
    this.pullable = new Set(options.pullable ?? []);
    this.latencyMs = options.latencyMs ?? 0;
    const inPlaceUpdate = options.inPlaceUpdate ?? false;
    this.capabilities = { inPlaceUpdate, completeEvents: options.completeEvents ?? !inPlaceUpdate };
    this.nodes = (options.nodes ?? []).map((n) => ({ ...n }));
  }

  /** A node changes (drained, down, back): as Swarm would, a node event follows. */
  setNode(id: string, change: Partial<Pick<ActualNode, "state" | "availability">>): void {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`no node ${id}`);
    Object.assign(node, change);
    this.emit({ type: "node", action: "update", id, labels: {} });
  }

  // ---- test controls ------------------------------------------------------------------------------------

  /** Every later call fails as if the engine's socket were gone; open event streams end with an error. */
  stopEngine(): void {
    this.down = true;
    for (const s of this.subscribers) s.push(new RuntimeError("Unavailable", "events: engine down"));
  }

  startEngine(): void {
    this.down = false;
  }

  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  inject(failure: InjectedFailure): void {
    this.failures.push({ ...failure, times: failure.times ?? 1 });
  }

  clearFailures(): void {
    this.failures.length = 0;
  }

  /** Total calls of the given operations (all when none given). */
  callCount(...operations: RuntimeOperation[]): number {
    let total = 0;
    for (const [op, n] of this.calls) if (operations.length === 0 || operations.includes(op)) total += n;
    return total;
  }

  resetCalls(): void {
    this.calls.clear();
  }

  /** The container's process exits (as `docker kill` or a crash would do): state exited, a die event. */
  killContainer(id: string, action: "die" | "kill" | "oom" = "die"): void {
    const c = this.mustContainer(id);
    if (c.state !== "running") return;
    c.state = "exited";
    this.emit({ type: "container", action, id, labels: c.labels });
    if (action !== "die") this.emit({ type: "container", action: "die", id, labels: c.labels });
  }

  /** `docker rm -f` from outside. */
  removeContainerExternally(id: string): void {
    const c = this.mustContainer(id);
    this.dropContainer(c);
    if (c.state === "running") this.emit({ type: "container", action: "die", id, labels: c.labels });
    this.emit({ type: "container", action: "destroy", id, labels: c.labels });
  }

  /** `docker network rm` from outside (the engine sends no labels with network events). */
  removeNetworkExternally(id: string): void {
    const n = this.networks.get(id);
    if (n) this.dropNetwork(n);
    this.emit({ type: "network", action: "destroy", id, labels: {} });
  }

  /** A container someone else made (any labels): for name conflicts and foreign objects. */
  addForeignContainer(
    name: string,
    labels: Record<string, string> = {},
    state: ContainerState = "running",
  ): string {
    const id = newId();
    this.putContainer({
      id,
      name,
      image: "foreign:latest",
      state,
      labels: { ...labels },
      networkIds: [],
      created: Math.floor(this.clock.now() / 1000),
      mounts: [],
      starts: 0,
    });
    // As the engine does for `docker run`: a create event, then a start event when it runs.
    this.emit({ type: "container", action: "create", id, labels: { ...labels } });
    if (state === "running") this.emit({ type: "container", action: "start", id, labels: { ...labels } });
    return id;
  }

  /** `docker start` from outside: running again, a start event. */
  startContainerExternally(id: string): void {
    const c = this.mustContainer(id);
    if (c.state === "running") return;
    c.state = "running";
    c.starts++;
    this.emit({ type: "container", action: "start", id, labels: c.labels });
  }

  addForeignNetwork(name: string, subnet: string, labels: Record<string, string> = {}): string {
    const id = newId();
    this.putNetwork({ id, name, labels: { ...labels }, subnets: [subnet] });
    this.emit({ type: "network", action: "create", id, labels: {} });
    return id;
  }

  /** `docker volume create` from outside: a create event without labels, as the engine sends. */
  addForeignVolume(name: string, labels: Record<string, string> = {}): void {
    this.putVolume({ name, labels: { ...labels } });
    this.emit({ type: "volume", action: "create", id: name, labels: {} });
  }

  // ---- ContainerRuntime -----------------------------------------------------------------------------------

  async ping(): Promise<void> {
    await this.enter("ping", "");
  }

  async listContainers(labelFilters: readonly string[]): Promise<ActualContainer[]> {
    await this.enter("container_list", "");
    const filters = parseFilters(labelFilters);
    const out: ActualContainer[] = [];
    for (const c of this.containersByUser.candidates(filters, this.containers.values())) {
      if (!matches(c.labels, filters)) continue;
      // Built field by field (no spreads of temporary objects): a simulated 100,000-container listing should cost
      // the engine's side little next to the controller's.
      const listed: ActualContainer = {
        id: c.id,
        name: c.name,
        image: c.image,
        state: c.state,
        labels: c.labels,
        networkIds: c.networkIds.slice(),
        created: c.created,
      };
      if (c.version !== undefined) listed.version = c.version;
      if (c.placement !== undefined) listed.placement = c.placement;
      if (c.node !== undefined) listed.node = c.node;
      out.push(listed);
    }
    return out;
  }

  async listNetworks(labelFilters?: readonly string[]): Promise<ActualNetwork[]> {
    await this.enter("network_list", "");
    const filters = parseFilters(labelFilters);
    const out: ActualNetwork[] = [];
    for (const n of this.networksByUser.candidates(filters, this.networks.values()))
      if (matches(n.labels, filters)) out.push({ ...n, subnets: [...n.subnets] });
    return out;
  }

  async listVolumes(labelFilters: readonly string[]): Promise<ActualVolume[]> {
    await this.enter("volume_list", "");
    const filters = parseFilters(labelFilters);
    const out: ActualVolume[] = [];
    for (const v of this.volumesByUser.candidates(filters, this.volumes.values()))
      if (matches(v.labels, filters)) out.push({ ...v });
    return out;
  }

  async findContainerByName(name: string): Promise<ObjectRef | undefined> {
    await this.enter("container_inspect", name);
    const c = this.byName(name);
    return c ? { id: c.id, labels: c.labels } : undefined;
  }

  async findNetworkByName(name: string): Promise<ObjectRef | undefined> {
    await this.enter("network_list", name);
    const n = this.networkNames.get(name);
    return n ? { id: n.id, labels: n.labels } : undefined;
  }

  async imageExists(ref: string): Promise<boolean> {
    await this.enter("image_inspect", ref);
    return this.images === undefined || this.images.has(ref);
  }

  async pullImage(ref: string): Promise<void> {
    await this.enter("image_pull", ref);
    if (this.images === undefined) return;
    if (!this.pullable.has(ref))
      throw new RuntimeError("NotFound", `pull image: repository ${ref} not found`, 404);
    this.images.add(ref);
  }

  async createNetwork(spec: NetworkSpec): Promise<string> {
    await this.enter("network_create", spec.name);
    if (this.networkNames.has(spec.name))
      throw new RuntimeError(
        "Conflict",
        `create network: network with name ${spec.name} already exists`,
        409,
      );
    const wanted = parseIpv4Cidr(spec.subnet);
    if (!wanted) throw new RuntimeError("Failed", `create network: invalid subnet ${spec.subnet}`, 400);
    for (const other of this.subnetIndex.values()) {
      if (other && overlaps(other, wanted))
        throw new RuntimeError(
          "Failed",
          "create network: Pool overlaps with other one on this address space",
          403,
        );
    }
    const id = newId();
    this.putNetwork({ id, name: spec.name, labels: { ...spec.labels }, subnets: [spec.subnet] });
    if (spec.internal) this.internalNetworks.add(spec.name);
    else this.internalNetworks.delete(spec.name);
    this.emit({ type: "network", action: "create", id, labels: {} });
    return id;
  }

  async removeNetwork(id: string): Promise<void> {
    await this.enter("network_remove", id);
    const n = this.networks.get(id);
    if (!n) throw new RuntimeError("NotFound", `remove network: network ${id} not found`, 404);
    for (const c of this.containers.values()) {
      if (c.networkIds.includes(id))
        throw new RuntimeError(
          "Failed",
          `remove network: error while removing network: network ${n.name} has active endpoints`,
          403,
        );
    }
    this.dropNetwork(n);
    this.emit({ type: "network", action: "destroy", id, labels: {} });
  }

  async createVolume(spec: VolumeSpec): Promise<ActualVolume> {
    await this.enter("volume_create", spec.name);
    const existing = this.volumes.get(spec.name);
    // The engine answers a create of an existing name with the existing volume, labels and all.
    if (existing) return { ...existing };
    const volume = { name: spec.name, labels: { ...spec.labels } };
    this.putVolume(volume);
    this.emit({ type: "volume", action: "create", id: spec.name, labels: {} });
    return { ...volume };
  }

  /** The placement a container (by name) was created with. */
  placementOf(name: string): Placement | undefined {
    return this.placements.get(name);
  }

  isInternalNetwork(name: string): boolean {
    return this.internalNetworks.has(name);
  }

  async createContainer(spec: ContainerSpec, name: string, placement?: Placement): Promise<string> {
    await this.enter("container_create", name);
    if (this.byName(name))
      throw new RuntimeError("Conflict", `create container: the name "/${name}" is already in use`, 409);
    if (this.images !== undefined && !this.images.has(spec.image))
      throw new RuntimeError("NotFound", `create container: no such image: ${spec.image}`, 404);
    const network = this.networkNames.get(spec.network);
    if (!network)
      throw new RuntimeError("NotFound", `create container: network ${spec.network} not found`, 404);
    const extra = (spec.extraNetworks ?? []).map((n) => this.networkNames.get(n.name));
    if (extra.some((n) => n === undefined))
      throw new RuntimeError("NotFound", `connect container: a network of ${name} was not found`, 404);
    this.placements.set(name, placement);
    for (const m of spec.mounts) {
      if (!this.volumes.has(m.volumeName)) this.putVolume({ name: m.volumeName, labels: {} });
    }
    const id = newId();
    this.putContainer({
      id,
      name,
      image: spec.image,
      state: "created",
      // The engine keeps one copy of a container's labels; so does this one (specs are not changed after create).
      labels: spec.labels,
      networkIds: [network.id, ...extra.map((n) => n!.id)],
      created: Math.floor(this.clock.now() / 1000),
      mounts: spec.mounts,
      starts: 0,
      ...(this.capabilities.inPlaceUpdate ? { version: 1 } : {}),
      ...(placement?.nodeId !== undefined
        ? { placement: placement.nodeId, node: this.hostnameOf(placement.nodeId) }
        : {}),
    });
    this.emit({ type: "container", action: "create", id, labels: spec.labels });
    return id;
  }

  async updateContainer(
    id: string,
    version: number,
    spec: ContainerSpec,
    placement?: Placement,
  ): Promise<void> {
    await this.enter("container_update", id);
    if (!this.capabilities.inPlaceUpdate)
      throw new RuntimeError("Failed", "update container: not supported by this engine", 501);
    const c = this.containerOr404(id, "update container");
    // Swarm refuses an update that names an older version of the service ("update out of sequence").
    if (c.version !== version)
      throw new RuntimeError("Failed", "update container: update out of sequence", 500);
    const network = this.networkNames.get(spec.network);
    if (!network)
      throw new RuntimeError("NotFound", `update container: network ${spec.network} not found`, 404);
    this.containersByUser.remove(c);
    c.mounts = spec.mounts;
    c.image = spec.image;
    c.labels = spec.labels;
    c.networkIds = [network.id];
    c.version = version + 1;
    if (placement?.nodeId !== undefined) {
      c.placement = placement.nodeId;
      c.node = this.hostnameOf(placement.nodeId);
    }
    // The orchestrator replaces the task: the workload runs the new spec.
    c.state = "running";
    c.starts++;
    this.containersByUser.add(c);
    this.emit({ type: "container", action: "update", id, labels: c.labels });
  }

  async listNodes(): Promise<ActualNode[]> {
    await this.enter("node_list", "");
    return this.nodes.map((n) => ({ ...n }));
  }

  /** A test's stand-in for a container writing a line to stdout at `timestamp` (RFC 3339, nanoseconds). */
  writeLog(id: string, timestamp: string, text: string): void {
    this.containerOr404(id, "write log");
    const lines = this.logs.get(id) ?? [];
    lines.push({ timestamp, text });
    this.logs.set(id, lines);
  }

  /** As the engine: `since` inclusive, lines with their timestamps; the byte bound counts `<timestamp> <text>\n`. */
  async readLogs(id: string, options: LogReadOptions): Promise<LogRead> {
    await this.enter("container_logs", id);
    this.containerOr404(id, "read logs");
    const since = options.since;
    const lines: LogLine[] = [];
    let bytes = 0;
    for (const line of this.logs.get(id) ?? []) {
      if (since !== undefined && compareTimestamps(line.timestamp, since) < 0) continue;
      bytes += Buffer.byteLength(`${line.timestamp} ${line.text}\n`);
      if (bytes > options.maxBytes) return { lines, truncated: true };
      lines.push({ ...line });
    }
    return { lines, truncated: false };
  }

  async startContainer(id: string): Promise<void> {
    await this.enter("container_start", id);
    const c = this.containerOr404(id, "start container");
    if (c.state === "running") throw new RuntimeError("NotModified", "start container: already started", 304);
    c.state = "running";
    c.starts++;
    this.emit({ type: "container", action: "start", id, labels: c.labels });
  }

  async stopContainer(id: string, _timeoutSeconds: number): Promise<void> {
    await this.enter("container_stop", id);
    const c = this.containerOr404(id, "stop container");
    if (c.state !== "running" && c.state !== "paused" && c.state !== "restarting")
      throw new RuntimeError("NotModified", "stop container: already stopped", 304);
    c.state = "exited";
    this.emit({ type: "container", action: "die", id, labels: c.labels });
    this.emit({ type: "container", action: "stop", id, labels: c.labels });
  }

  async removeContainer(id: string): Promise<void> {
    await this.enter("container_remove", id);
    const c = this.containerOr404(id, "remove container");
    this.dropContainer(c);
    this.logs.delete(id);
    if (c.state === "running") this.emit({ type: "container", action: "die", id, labels: c.labels });
    this.emit({ type: "container", action: "destroy", id, labels: c.labels });
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await this.enter("container_rename", id);
    const c = this.containerOr404(id, "rename container");
    const holder = this.byName(name);
    if (holder && holder.id !== c.id)
      throw new RuntimeError("Conflict", `rename container: the name "/${name}" is already in use`, 409);
    this.containerNames.delete(c.name);
    c.name = name;
    this.containerNames.set(name, c);
    this.emit({ type: "container", action: "rename", id, labels: c.labels });
  }

  events(filter: EventFilter, signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<RuntimeEvent> {
    this.count("events");
    const queue: (RuntimeEvent | Error)[] = [];
    let wake: (() => void) | undefined;
    const subscriber: Subscriber = {
      filter,
      push: (event) => {
        queue.push(event);
        wake?.();
      },
    };
    const subscribers = this.subscribers;
    const down = this.down;
    return {
      async *[Symbol.asyncIterator]() {
        if (down) throw new RuntimeError("Unavailable", "events: engine down");
        subscribers.add(subscriber);
        onSubscribed?.();
        const onAbort = () => wake?.();
        signal.addEventListener("abort", onAbort, { once: true });
        try {
          while (!signal.aborted) {
            const next = queue.shift();
            if (next === undefined) {
              await new Promise<void>((resolve) => (wake = resolve));
              wake = undefined;
              continue;
            }
            if (next instanceof Error) throw next;
            yield next;
          }
        } finally {
          subscribers.delete(subscriber);
          signal.removeEventListener("abort", onAbort);
        }
      },
    };
  }

  // ---- internals ------------------------------------------------------------------------------------------

  private hostnameOf(nodeId: string): string {
    return this.nodes.find((n) => n.id === nodeId)?.hostname ?? nodeId;
  }

  private count(operation: RuntimeOperation): void {
    this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1);
  }

  /** Counts the call, waits the configured latency, then fails when the engine is down or a failure matches. */
  private async enter(operation: RuntimeOperation, target: string): Promise<void> {
    this.count(operation);
    if (this.latencyMs > 0)
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, this.latencyMs));
    if (this.down)
      throw new RuntimeError("Unavailable", `${operation}: Docker Engine unreachable (ECONNREFUSED)`);
    const index = this.failures.findIndex(
      (f) => f.operation === operation && (f.when === undefined || f.when(target)),
    );
    if (index < 0) return;
    const failure = this.failures[index]!;
    failure.times = (failure.times ?? 1) - 1;
    if (failure.times <= 0) this.failures.splice(index, 1);
    throw failure.error;
  }

  private emit(event: RuntimeEvent): void {
    for (const s of this.subscribers) {
      const f = s.filter;
      if (!f.types.includes(event.type)) continue;
      if (f.actions && !f.actions.includes(event.action)) continue;
      if (f.labels && !matches(event.labels, parseFilters(f.labels))) continue;
      s.push(event);
    }
  }

  private byName(name: string): MemoryContainer | undefined {
    return this.containerNames.get(name);
  }

  private putContainer(c: MemoryContainer): void {
    this.containers.set(c.id, c);
    this.containerNames.set(c.name, c);
    this.containersByUser.add(c);
  }

  private dropContainer(c: MemoryContainer): void {
    this.containers.delete(c.id);
    if (this.containerNames.get(c.name) === c) this.containerNames.delete(c.name);
    this.containersByUser.remove(c);
  }

  private putNetwork(n: ActualNetwork): void {
    this.networks.set(n.id, n);
    this.networkNames.set(n.name, n);
    this.networksByUser.add(n);
    this.subnetIndex.set(n.id, n.subnets[0] ? parseIpv4Cidr(n.subnets[0]) : undefined);
  }

  private dropNetwork(n: ActualNetwork): void {
    this.networks.delete(n.id);
    this.networkNames.delete(n.name);
    this.networksByUser.remove(n);
    this.subnetIndex.delete(n.id);
  }

  private putVolume(v: ActualVolume): void {
    this.volumes.set(v.name, v);
    this.volumesByUser.add(v);
  }

  private mustContainer(id: string): MemoryContainer {
    const c = this.containers.get(id);
    if (!c) throw new Error(`no container ${id}`);
    return c;
  }

  private containerOr404(id: string, what: string): MemoryContainer {
    const c = this.containers.get(id) ?? this.byName(id);
    if (!c) throw new RuntimeError("NotFound", `${what}: no such container: ${id}`, 404);
    return c;
  }
}
