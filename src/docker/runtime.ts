import type { ContainerSpec } from "../desired/types.js";

/*
 * The narrow surface the controller needs from a container engine. Only src/docker/ implements it: against
 * dockerode (DockerodeRuntime) and in memory (MemoryRuntime, for tests and simulations). A backend is a set of
 * workloads (one per enabled server), networks and volumes, found by label, plus an event stream that says which
 * ones changed. The engine backend's workload is a container; a Swarm backend's is a service whose tasks give its
 * state. What differs between backends is declared in `capabilities`, never guessed from the class.
 */

/** Docker's container states (the `State` field of a container list entry); a contract shared with metrics. */
export const CONTAINER_STATES = [
  "created",
  "running",
  "paused",
  "restarting",
  "removing",
  "exited",
  "dead",
] as const;
export type ContainerState = (typeof CONTAINER_STATES)[number];

/** Every call the controller makes, named for the `operation` label of the docker_* metrics. */
export const RUNTIME_OPERATIONS = [
  "ping",
  "container_list",
  "container_inspect",
  "container_create",
  "container_start",
  "container_stop",
  "container_remove",
  "container_rename",
  "container_logs",
  "container_update",
  "node_list",
  "network_list",
  "network_create",
  "network_remove",
  "volume_list",
  "volume_create",
  "image_inspect",
  "image_pull",
  "events",
] as const;
export type RuntimeOperation = (typeof RUNTIME_OPERATIONS)[number];

/** What a backend can do beyond the common surface; the planner asks, it never checks the class. */
export interface RuntimeCapabilities {
  /**
   * A changed spec can be applied to the running workload in place (a Swarm service update). Without it a
   * replace is create-under-a-temporary-name, stop, remove, rename, start.
   */
  inPlaceUpdate: boolean;
  /**
   * Every change to an object the plan reads (a container created, started, stopped or removed; a network or
   * volume created or removed) is reported by an event: a resync may then answer from the listing kept up to date
   * by events instead of listing again (an engine). Without it (Swarm: task changes on other nodes send no event)
   * every resync lists.
   */
  completeEvents: boolean;
}

export interface ActualContainer {
  id: string;
  name: string;
  image: string;
  state: ContainerState;
  labels: Readonly<Record<string, string>>;
  networkIds: string[];
  /** Unix seconds. */
  created: number;
  /** Backends with in-place updates: the workload's version, which an update must name (optimistic locking). */
  version?: number;
  /** Swarm: the node the workload is constrained to (its placement); absent on the engine backend. */
  placement?: string;
  /** Swarm: the hostname of the node its current task runs on. */
  node?: string;
  /** Swarm: the task history says it keeps failing (restarts owned by Swarm), with the last task's error. */
  crashLoop?: { failures: number; lastError: string };
}

/** A node of the cluster (Swarm); the engine backend has none. */
export interface ActualNode {
  id: string;
  hostname: string;
  /** The node's address as the cluster knows it (Status.Addr). */
  addr: string;
  /** `ready` and `active` together: the scheduler may place tasks there. */
  state: "ready" | "down" | "unknown" | "disconnected";
  availability: "active" | "pause" | "drain";
  role: "manager" | "worker";
}

/**
 * Where a workload runs, outside the spec and its hash: on Swarm, the node (a placement constraint); on the
 * engine, the fixed addresses of a restricted-egress workload (README, "Network egress").
 */
export interface Placement {
  nodeId?: string;
  addressing?: Addressing;
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
  /** No route out of it (Docker's `internal`): a user's egress network. */
  internal?: boolean;
  subnet: string;
  gateway: string;
  labels: Record<string, string>;
}

/**
 * Where a container sits, known only once its networks exist (the executor derives it from their subnets; never
 * part of the spec hash): fixed addresses by network name, DNS servers, and extra environment.
 */
export interface Addressing {
  addresses: Record<string, string>;
  dns?: string[];
  env?: Record<string, string>;
}

export interface LogReadOptions {
  /** RFC 3339 timestamp with up to nine fractional digits (a line's `timestamp`); absent: from the start. */
  since?: string;
  maxBytes: number;
}

export interface LogLine {
  /** The engine's timestamp of the line, RFC 3339 with nanoseconds. */
  timestamp: string;
  text: string;
}

export interface LogRead {
  lines: LogLine[];
  /** The read stopped at maxBytes: more lines follow the last one. */
  truncated: boolean;
}

export interface VolumeSpec {
  name: string;
  labels: Record<string, string>;
}

export interface RuntimeEvent {
  type: "container" | "network" | "volume" | "node";
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
  readonly capabilities: RuntimeCapabilities;
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
  /**
   * Creates the volume, or, as the engine does for a name that exists, returns the existing one unchanged: the
   * caller must compare the labels it gets back before mounting the volume.
   */
  createVolume(spec: VolumeSpec): Promise<ActualVolume>;
  /** Creates the container on `spec.network`, then joins `spec.extraNetworks` (one call, several requests). */
  createContainer(spec: ContainerSpec, name: string, placement?: Placement): Promise<string>;
  /**
   * Applies a new spec (and placement) to the existing workload, keeping its id and name; `version` is the one
   * its listing gave (a concurrent change makes the call fail, and the next reconcile looks again). Only where
   * `capabilities.inPlaceUpdate`; the engine backend throws.
   */
  updateContainer(id: string, version: number, spec: ContainerSpec, placement?: Placement): Promise<void>;
  /** The cluster's nodes (Swarm); the engine backend has none and answers []. */
  listNodes(): Promise<ActualNode[]>;
  /**
   * Complete lines a container wrote to stdout, with the engine's timestamps (RFC 3339, nanoseconds), from
   * `since` (inclusive, the engine's resolution) on, reading at most `maxBytes` of the log (`truncated` then).
   * The engine backend only (the egress proxies' denial lines); Swarm throws.
   */
  readLogs(id: string, options: LogReadOptions): Promise<LogRead>;
  startContainer(id: string): Promise<void>;
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  removeContainer(id: string): Promise<void>;
  renameContainer(id: string, name: string): Promise<void>;
  /**
   * Engine events matching the filter; ends (or throws) when the connection drops or `signal` aborts.
   * `onSubscribed` is called once the engine has the subscription: every change after that call is reported.
   */
  events(filter: EventFilter, signal: AbortSignal, onSubscribed?: () => void): AsyncIterable<RuntimeEvent>;
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
