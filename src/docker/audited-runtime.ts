import type { ContainerSpec } from "../desired/types.js";
import type { AuditEventType, AuditWriter } from "../observability/audit.js";
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
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
import { isRuntimeError } from "./runtime.js";

/** Who a mutation is done for: audit lines and log lines carry it. */
export interface MutationScope {
  /** The user the objects belong to (null for installation-wide work). */
  userId: string | null;
  /** A child logger carrying the reconcile's context (user, reconcile id). */
  log: Logger;
  /** Successful mutations made through this scope, for the reconcile's summary. */
  counter: { mutations: number };
}

/** Why a mutation is done and on what, as the audit line and the log line name it. */
export interface MutationNote {
  /** Container, network, volume or image name (the id is not what an operator recognises). */
  resource: string;
  details: Record<string, unknown>;
}

/**
 * Logs, audits and counts every mutating call (reads pass through): one place for the rule that every engine
 * mutation leaves a log line and an audit line, success or failure. A view bound to a scope and a note is made
 * per step with `bind`; the unbound runtime still audits, with the resource taken from the call's arguments.
 * Metrics per call come from InstrumentedRuntime below this one.
 */
export class AuditedRuntime implements ContainerRuntime {
  constructor(
    private readonly inner: ContainerRuntime,
    private readonly audit: AuditWriter,
    private readonly clock: Clock,
    private readonly fallbackLog: Logger,
    private readonly scope?: MutationScope,
    private readonly note?: MutationNote,
  ) {}

  get capabilities(): RuntimeCapabilities {
    return this.inner.capabilities;
  }

  /** The same runtime, with every mutation attributed to `scope` and described by `note`. */
  bind(scope: MutationScope, note: MutationNote): AuditedRuntime {
    return new AuditedRuntime(this.inner, this.audit, this.clock, this.fallbackLog, scope, note);
  }

  private async record<T>(
    eventType: AuditEventType,
    action: string,
    resource: string,
    fn: () => Promise<T>,
    extra: Record<string, unknown> = {},
  ): Promise<T> {
    const log = this.scope?.log ?? this.fallbackLog;
    const userId = this.scope?.userId ?? null;
    const details = { ...this.note?.details, ...extra };
    const name = this.note?.resource ?? resource;
    const started = this.clock.now();
    try {
      const value = await fn();
      if (this.scope) this.scope.counter.mutations++;
      log.info(
        { action, resource: name, ...details, duration_ms: this.clock.now() - started },
        `${action} ${name}`,
      );
      void this.audit.write({
        event_type: eventType,
        user_id: userId,
        action,
        resource: name,
        result: "success",
        details,
      });
      return value;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (isRuntimeError(error, "NotModified")) {
        // Already as asked (a start of a running container): nothing changed, nothing to audit.
        log.debug({ action, resource: name, ...details }, `${action} ${name}: already done`);
        throw error;
      }
      log.warn({ action, resource: name, ...details, err: message }, `${action} ${name} failed`);
      void this.audit.write({
        event_type: eventType,
        user_id: userId,
        action,
        resource: name,
        result: "failure",
        details: { ...details, error: message },
      });
      throw error;
    }
  }

  // ---- reads ----------------------------------------------------------------------------------------------
  ping(): Promise<void> {
    return this.inner.ping();
  }
  listContainers(labelFilters: readonly string[]): Promise<ActualContainer[]> {
    return this.inner.listContainers(labelFilters);
  }
  listNetworks(labelFilters?: readonly string[]): Promise<ActualNetwork[]> {
    return this.inner.listNetworks(labelFilters);
  }
  listVolumes(labelFilters: readonly string[]): Promise<ActualVolume[]> {
    return this.inner.listVolumes(labelFilters);
  }
  findContainerByName(name: string): Promise<ObjectRef | undefined> {
    return this.inner.findContainerByName(name);
  }
  findNetworkByName(name: string): Promise<ObjectRef | undefined> {
    return this.inner.findNetworkByName(name);
  }
  imageExists(ref: string): Promise<boolean> {
    return this.inner.imageExists(ref);
  }
  events(filter: EventFilter, signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<RuntimeEvent> {
    return this.inner.events(filter, signal, onSubscribed);
  }

  // ---- mutations ------------------------------------------------------------------------------------------
  pullImage(ref: string): Promise<void> {
    return this.record("CONTAINER_OPERATION", "pull_image", ref, () => this.inner.pullImage(ref), {
      image: ref,
    });
  }
  createNetwork(spec: NetworkSpec): Promise<string> {
    return this.record(
      "NETWORK_OPERATION",
      "create_network",
      spec.name,
      () => this.inner.createNetwork(spec),
      {
        subnet: spec.subnet,
      },
    );
  }
  removeNetwork(id: string): Promise<void> {
    return this.record("NETWORK_OPERATION", "remove_network", id, () => this.inner.removeNetwork(id));
  }
  createVolume(spec: VolumeSpec): Promise<ActualVolume> {
    return this.record("VOLUME_OPERATION", "create_volume", spec.name, () => this.inner.createVolume(spec));
  }
  createContainer(spec: ContainerSpec, name: string, placement?: Placement): Promise<string> {
    return this.record(
      "CONTAINER_OPERATION",
      "create_container",
      name,
      () => this.inner.createContainer(spec, name, placement),
      {
        image: spec.image,
        host_port: spec.hostPort,
        ...(placement ? { node_id: placement.nodeId } : {}),
      },
    );
  }
  updateContainer(id: string, version: number, spec: ContainerSpec, placement?: Placement): Promise<void> {
    return this.record(
      "CONTAINER_OPERATION",
      "update_container",
      id,
      () => this.inner.updateContainer(id, version, spec, placement),
      {
        image: spec.image,
        host_port: spec.hostPort,
        ...(placement ? { node_id: placement.nodeId } : {}),
      },
    );
  }
  listNodes(): Promise<ActualNode[]> {
    return this.inner.listNodes();
  }
  readLogs(id: string, options: LogReadOptions): Promise<LogRead> {
    return this.inner.readLogs(id, options);
  }
  startContainer(id: string): Promise<void> {
    return this.record("CONTAINER_OPERATION", "start_container", id, () => this.inner.startContainer(id));
  }
  stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    return this.record("CONTAINER_OPERATION", "stop_container", id, () =>
      this.inner.stopContainer(id, timeoutSeconds),
    );
  }
  removeContainer(id: string): Promise<void> {
    return this.record("CONTAINER_OPERATION", "remove_container", id, () => this.inner.removeContainer(id));
  }
  renameContainer(id: string, name: string): Promise<void> {
    return this.record(
      "CONTAINER_OPERATION",
      "rename_container",
      id,
      () => this.inner.renameContainer(id, name),
      {
        to: name,
      },
    );
  }
}
