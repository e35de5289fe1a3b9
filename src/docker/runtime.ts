import type { ContainerSpec } from "../desired/types.js";

/**
 * The narrow surface the controller needs from a container engine. Only src/docker/ implements it against
 * dockerode; a Swarm backend would implement the same interface.
 */
export type ContainerState = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";

export interface ActualContainer {
  id: string;
  name: string;
  image: string;
  state: ContainerState;
  labels: Readonly<Record<string, string>>;
  networkIds: string[];
  /** Unix seconds. */
  created: number;
}

export interface ActualNetwork {
  id: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  subnets: string[];
}

export interface ActualVolume {
  name: string;
  labels: Readonly<Record<string, string>>;
}

export interface NetworkSpec {
  name: string;
  bridgeName: string;
  subnet: string;
  gateway: string;
  labels: Record<string, string>;
}

export interface VolumeSpec {
  name: string;
  labels: Record<string, string>;
}

export interface RuntimeEvent {
  type: "container" | "network" | "volume";
  action: string;
  id: string;
  labels: Readonly<Record<string, string>>;
}

export interface EventFilter {
  /** `key=value` labels the object must carry (the engine does not label network events: omit for those). */
  labels?: readonly string[];
  types: readonly RuntimeEvent["type"][];
  actions?: readonly string[];
}

export interface ObjectRef {
  id: string;
  labels: Readonly<Record<string, string>>;
}

export interface ContainerRuntime {
  ping(): Promise<void>;
  /** Every container (running or not) carrying all of the `key=value` labels. */
  listContainers(labelFilters: readonly string[]): Promise<ActualContainer[]>;
  /** Networks carrying the labels; with no filters, every network (to avoid overlapping anyone's subnet). */
  listNetworks(labelFilters?: readonly string[]): Promise<ActualNetwork[]>;
  listVolumes(labelFilters: readonly string[]): Promise<ActualVolume[]>;
  findContainerByName(name: string): Promise<ObjectRef | undefined>;
  findNetworkByName(name: string): Promise<ObjectRef | undefined>;
  imageExists(ref: string): Promise<boolean>;
  pullImage(ref: string): Promise<void>;
  createNetwork(spec: NetworkSpec): Promise<string>;
  removeNetwork(id: string): Promise<void>;
  createVolume(spec: VolumeSpec): Promise<void>;
  createContainer(spec: ContainerSpec, name: string): Promise<string>;
  startContainer(id: string): Promise<void>;
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  removeContainer(id: string): Promise<void>;
  renameContainer(id: string, name: string): Promise<void>;
  /** Engine events matching the filter; ends (or throws) when the connection drops or `signal` aborts. */
  events(filter: EventFilter, signal: AbortSignal): AsyncIterable<RuntimeEvent>;
}

export type RuntimeErrorCode = "NotFound" | "Conflict" | "NotModified" | "Timeout" | "Unavailable" | "Failed";

/** Engine errors classified by HTTP status (never by message text), so callers can branch on `code`. */
export class RuntimeError extends Error {
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    readonly statusCode?: number,
  ) {
    super(message);
    this.name = "RuntimeError";
  }
}

export function isRuntimeError(error: unknown, code?: RuntimeErrorCode): error is RuntimeError {
  return error instanceof RuntimeError && (code === undefined || error.code === code);
}
