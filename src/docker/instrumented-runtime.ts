import type { ContainerSpec } from "../desired/types.js";
import type { DockerOperation, Metrics } from "../observability/metrics.js";
import type {
  ActualContainer,
  ActualNetwork,
  ActualNode,
  ActualVolume,
  ContainerRuntime,
  EventFilter,
  LogRead,
  LogReadOptions,
  NetworkSpec,
  ObjectRef,
  RuntimeCapabilities,
  Placement,
  RuntimeEvent,
  VolumeSpec,
} from "./runtime.js";

/** Counts and times every engine call (metrics by operation and result) and sets docker_up from each answer. */
export class InstrumentedRuntime implements ContainerRuntime {
  /** Calls made since start, for benchmarks and tests that assert how cheap a resync is. */
  readonly callCounts = new Map<DockerOperation, number>();

  constructor(
    private readonly inner: ContainerRuntime,
    private readonly metrics: Metrics,
  ) {}

  get capabilities(): RuntimeCapabilities {
    return this.inner.capabilities;
  }

  private async measure<T>(operation: DockerOperation, fn: () => Promise<T>): Promise<T> {
    this.callCounts.set(operation, (this.callCounts.get(operation) ?? 0) + 1);
    const end = this.metrics.dockerOperationDurationSeconds.startTimer({ operation });
    try {
      const result = await fn();
      this.metrics.dockerOperationsTotal.inc({ operation, result: "success" });
      this.setReachable(true);
      return result;
    } catch (error) {
      this.metrics.dockerOperationsTotal.inc({ operation, result: "error" });
      const code = (error as { code?: unknown }).code;
      // A 4xx answer still proves the engine is up; only transport failures mean it is not.
      if (code === "Unavailable" || code === "Timeout") this.setReachable(false);
      else this.setReachable(true);
      throw error;
    } finally {
      end();
    }
  }

  private setReachable(up: boolean): void {
    this.metrics.dockerUp.set(up ? 1 : 0);
  }

  ping(): Promise<void> {
    return this.measure("ping", () => this.inner.ping());
  }
  listContainers(labelFilters: readonly string[]): Promise<ActualContainer[]> {
    return this.measure("container_list", () => this.inner.listContainers(labelFilters));
  }
  listNetworks(labelFilters?: readonly string[]): Promise<ActualNetwork[]> {
    return this.measure("network_list", () => this.inner.listNetworks(labelFilters));
  }
  listVolumes(labelFilters: readonly string[]): Promise<ActualVolume[]> {
    return this.measure("volume_list", () => this.inner.listVolumes(labelFilters));
  }
  findContainerByName(name: string): Promise<ObjectRef | undefined> {
    return this.measure("container_inspect", () => this.inner.findContainerByName(name));
  }
  findNetworkByName(name: string): Promise<ObjectRef | undefined> {
    return this.measure("network_list", () => this.inner.findNetworkByName(name));
  }
  imageExists(ref: string): Promise<boolean> {
    return this.measure("image_inspect", () => this.inner.imageExists(ref));
  }
  pullImage(ref: string): Promise<void> {
    return this.measure("image_pull", () => this.inner.pullImage(ref));
  }
  createNetwork(spec: NetworkSpec): Promise<string> {
    return this.measure("network_create", () => this.inner.createNetwork(spec));
  }
  removeNetwork(id: string): Promise<void> {
    return this.measure("network_remove", () => this.inner.removeNetwork(id));
  }
  createVolume(spec: VolumeSpec): Promise<ActualVolume> {
    return this.measure("volume_create", () => this.inner.createVolume(spec));
  }
  createContainer(spec: ContainerSpec, name: string, placement?: Placement): Promise<string> {
    return this.measure("container_create", () => this.inner.createContainer(spec, name, placement));
  }
  updateContainer(id: string, version: number, spec: ContainerSpec, placement?: Placement): Promise<void> {
    return this.measure("container_update", () => this.inner.updateContainer(id, version, spec, placement));
  }
  listNodes(): Promise<ActualNode[]> {
    return this.measure("node_list", () => this.inner.listNodes());
  }
  readLogs(id: string, options: LogReadOptions): Promise<LogRead> {
    return this.measure("container_logs", () => this.inner.readLogs(id, options));
  }
  startContainer(id: string): Promise<void> {
    return this.measure("container_start", () => this.inner.startContainer(id));
  }
  stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    return this.measure("container_stop", () => this.inner.stopContainer(id, timeoutSeconds));
  }
  removeContainer(id: string): Promise<void> {
    return this.measure("container_remove", () => this.inner.removeContainer(id));
  }
  renameContainer(id: string, name: string): Promise<void> {
    return this.measure("container_rename", () => this.inner.renameContainer(id, name));
  }
  events(filter: EventFilter, signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<RuntimeEvent> {
    this.callCounts.set("events", (this.callCounts.get("events") ?? 0) + 1);
    return this.inner.events(filter, signal, onSubscribed);
  }
}
