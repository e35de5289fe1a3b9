import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { EGRESS_DENIAL_KINDS } from "../contracts/egress-policy.js";
import { BLOCK_REASONS } from "../desired/types.js";
import { CONTAINER_STATES, type ContainerState, type RuntimeOperation } from "../docker/runtime.js";
import { DRIFT_KINDS, type DriftKind } from "../reconcile/plan.js";
import { FULL_LISTING_CAUSES } from "../reconcile/resync-listing.js";

/*
 * The controller's Prometheus metrics (the names are a contract: README, "Metrics, logs, audit").
 * One Registry per process, created by the wiring and passed in; nothing here touches prom-client's global registry.
 * Every label takes values from a small, fixed set: never container ids, user ids or error text.
 */

export const RECONCILE_RESULTS = ["success", "error", "blocked"] as const;
export type ReconcileResult = (typeof RECONCILE_RESULTS)[number];

/** Values for the `operation` label of the docker_* metrics: every call of the runtime adapter. */
export type DockerOperation = RuntimeOperation;

/** Docker's container states, the `state` label of mcp_portal_managed_containers. */
export { CONTAINER_STATES };
export type { ContainerState };

/** What a drift correction repaired (the planner marks the steps that repair drift). */
export { DRIFT_KINDS };
export type { DriftKind };

/** A user's phase as the status writer sees it: Ready, not Ready (reconciling, failing or stalled), or suspended. */
export const USER_PHASES = ["Ready", "NotReady", "Suspended"] as const;
export type UserPhase = (typeof USER_PHASES)[number];

/** Why a desired server is not running. Bounded: the status carries the detail, the metric only the reason. */
export const BLOCKED_REASONS = [
  ...BLOCK_REASONS,
  "CreateFailed",
  "StartFailed",
  "Unhealthy",
  "VolumeConflict",
] as const;

/** Docker API calls take from a few ms (list, inspect) to a minute (pull, stop with grace period). */
export const DOCKER_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** One user's reconcile: tens of ms when nothing changed, up to minutes when it pulls images. */
export const RECONCILE_DURATION_BUCKETS = [
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];
/** Time a key waits in the work queue before a worker takes it. */
export const QUEUE_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

const GAUGES_NAMED_LIKE_COUNTERS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

export interface MetricsOptions {
  /** Value of the `version` label of mcp_portal_build_info. */
  version?: string;
  /** Register prom-client's default process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

export interface Metrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<"result">;
  readonly reconcileDurationSeconds: Histogram;
  readonly workqueueDepth: Gauge;
  readonly workqueueAddsTotal: Counter;
  readonly workqueueRetriesTotal: Counter;
  readonly workqueueQueueDurationSeconds: Histogram;
  readonly dockerOperationsTotal: Counter<"operation" | "result">;
  readonly dockerOperationDurationSeconds: Histogram<"operation">;
  readonly managedContainers: Gauge<"state">;
  readonly desiredServers: Gauge;
  readonly idleServers: Gauge;
  readonly driftCorrectionsTotal: Counter<"kind">;
  readonly invalidFiles: Gauge;
  readonly portPoolAllocated: Gauge;
  readonly portPoolCapacity: Gauge;
  readonly subnetPoolAllocated: Gauge;
  readonly subnetPoolCapacity: Gauge;
  readonly lastResyncTimestampSeconds: Gauge;
  readonly buildInfo: Gauge<"version">;
  readonly users: Gauge<"phase">;
  readonly blockedServers: Gauge<"reason">;
  readonly dockerUp: Gauge;
  readonly dockerEventsReconnectsTotal: Counter;
  readonly auditWriteErrorsTotal: Counter;
  /** Connections and DNS questions users' egress proxies refused, by kind (README, "Network egress"). */
  readonly egressDeniedTotal: Counter;
  readonly pruneBlocked: Gauge;
  readonly resyncUnchangedUsers: Gauge;
  readonly resyncsTotal: Counter<"listing">;
}

export function createMetrics(registry: Registry = new Registry(), options: MetricsOptions = {}): Metrics {
  const registers = [registry];

  const metrics: Metrics = {
    registry,
    reconcileTotal: new Counter({
      name: "mcp_portal_reconcile_total",
      help: "Reconciles of one user's desired state, by result (success, error, or blocked by policy/limits/invalid input).",
      labelNames: ["result"],
      registers,
    }),
    reconcileDurationSeconds: new Histogram({
      name: "mcp_portal_reconcile_duration_seconds",
      help: "Wall-clock duration of one user's reconcile, from dequeue to status written.",
      buckets: RECONCILE_DURATION_BUCKETS,
      registers,
    }),
    workqueueDepth: new Gauge({
      name: "mcp_portal_workqueue_depth",
      help: "Users waiting in the work queue (excluding those being reconciled and those waiting for a backoff).",
      registers,
    }),
    workqueueAddsTotal: new Counter({
      name: "mcp_portal_workqueue_adds_total",
      help: "Keys added to the work queue (file changes, Docker events, resyncs, retries).",
      registers,
    }),
    workqueueRetriesTotal: new Counter({
      name: "mcp_portal_workqueue_retries_total",
      help: "Keys re-queued with backoff after a failed reconcile.",
      registers,
    }),
    workqueueQueueDurationSeconds: new Histogram({
      name: "mcp_portal_workqueue_queue_duration_seconds",
      help: "Time a key waited in the work queue before a worker picked it up.",
      buckets: QUEUE_DURATION_BUCKETS,
      registers,
    }),
    dockerOperationsTotal: new Counter({
      name: "mcp_portal_docker_operations_total",
      help: "Docker Engine API calls made by the controller, by operation and result.",
      labelNames: ["operation", "result"],
      registers,
    }),
    dockerOperationDurationSeconds: new Histogram({
      name: "mcp_portal_docker_operation_duration_seconds",
      help: "Duration of Docker Engine API calls, by operation (successful and failed calls).",
      labelNames: ["operation"],
      buckets: DOCKER_DURATION_BUCKETS,
      registers,
    }),
    managedContainers: new Gauge({
      name: "mcp_portal_managed_containers",
      help: "Containers carrying this installation's labels, by Docker state, as of the last list.",
      labelNames: ["state"],
      registers,
    }),
    desiredServers: new Gauge({
      name: "mcp_portal_desired_servers",
      help: "Servers enabled across all users' valid desired state (containers that should be running).",
      registers,
    }),
    idleServers: new Gauge({
      name: "mcp_portal_idle_servers",
      help: "Servers stopped for idleness (container kept; the first request through the gateway wakes them).",
      registers,
    }),
    driftCorrectionsTotal: new Counter({
      name: "mcp_portal_drift_corrections_total",
      help: "Changes made outside the controller that it repaired, by kind of drift.",
      labelNames: ["kind"],
      registers,
    }),
    invalidFiles: new Gauge({
      name: "mcp_portal_invalid_files",
      help: "Desired-state files that currently fail to read, parse or validate (see status and logs for which).",
      registers,
    }),
    portPoolAllocated: new Gauge({
      name: "mcp_portal_port_pool_allocated",
      help: "Host ports of the port range a new user cannot get: its blocks (of MCP_PORTAL_PORTS_PER_USER ports) that users' blocks cover, times the block size.",
      registers,
    }),
    portPoolCapacity: new Gauge({
      name: "mcp_portal_port_pool_capacity",
      help: "Host ports in the port range's blocks for users (whole blocks without an MCP_PORTAL_PORT_EXCLUDE port, times the block size).",
      registers,
    }),
    subnetPoolAllocated: new Gauge({
      name: "mcp_portal_subnet_pool_allocated",
      help: "Subnets of the user subnet pool a new user cannot get: held by users' networks or overlapping other networks.",
      registers,
    }),
    subnetPoolCapacity: new Gauge({
      name: "mcp_portal_subnet_pool_capacity",
      help: "Subnets of MCP_PORTAL_USER_NETWORK_SUBNET_SIZE in the user subnet pool (MCP_PORTAL_USER_NETWORK_SUBNET_BASE).",
      registers,
    }),
    lastResyncTimestampSeconds: new Gauge({
      name: "mcp_portal_last_resync_timestamp_seconds",
      help: "Unix time of the last completed periodic resync (full list of desired and actual state).",
      registers,
    }),
    buildInfo: new Gauge({
      name: "mcp_portal_build_info",
      help: "Always 1; the version label names the running controller build.",
      labelNames: ["version"],
      registers,
    }),
    users: new Gauge({
      name: "mcp_portal_users",
      help: "Users with a desired-state directory, by phase (Ready, NotReady, Suspended).",
      labelNames: ["phase"],
      registers,
    }),
    blockedServers: new Gauge({
      name: "mcp_portal_blocked_servers",
      help: "Desired servers the controller will not run until their input changes, by reason.",
      labelNames: ["reason"],
      registers,
    }),
    dockerUp: new Gauge({
      name: "mcp_portal_docker_up",
      help: "1 if the last call to the Docker Engine succeeded, 0 if the engine is unreachable.",
      registers,
    }),
    dockerEventsReconnectsTotal: new Counter({
      name: "mcp_portal_docker_events_reconnects_total",
      help: "Times the Docker events stream ended or failed and was reopened.",
      registers,
    }),
    auditWriteErrorsTotal: new Counter({
      name: "mcp_portal_audit_write_errors_total",
      help: "Audit events that could not be written to the audit log.",
      registers,
    }),
    egressDeniedTotal: new Counter({
      name: "mcp_portal_egress_denied_total",
      help: "Connections (kind=connect) and DNS questions (kind=dns) users' egress proxies refused, as their denial lines count them.",
      labelNames: ["kind"],
      registers,
    }),
    resyncUnchangedUsers: new Gauge({
      name: "mcp_portal_resync_unchanged_users",
      help: "Users the last resync found unchanged since a reconcile that changed nothing (looked at, not reconciled).",
      registers,
    }),
    resyncsTotal: new Counter({
      name: "mcp_portal_resyncs_total",
      help: "Resyncs by what they read the engine from: `kept` (the listing events keep current) or why they listed everything.",
      labelNames: ["listing"],
      registers,
    }),
    pruneBlocked: new Gauge({
      name: "mcp_portal_prune_blocked",
      help: "1 while the mass-prune latch is tripped (no container is removed until the tree is fixed or an operator releases it).",
      registers,
    }),
  };

  // Publish every bounded label value from the start, so rate() and alerts see a 0 before the first event.
  for (const result of RECONCILE_RESULTS) metrics.reconcileTotal.inc({ result }, 0);
  for (const state of CONTAINER_STATES) metrics.managedContainers.set({ state }, 0);
  for (const kind of DRIFT_KINDS) metrics.driftCorrectionsTotal.inc({ kind }, 0);
  for (const phase of USER_PHASES) metrics.users.set({ phase }, 0);
  for (const reason of BLOCKED_REASONS) metrics.blockedServers.set({ reason }, 0);
  for (const kind of EGRESS_DENIAL_KINDS) metrics.egressDeniedTotal.inc({ kind }, 0);
  for (const listing of ["kept", ...FULL_LISTING_CAUSES]) metrics.resyncsTotal.inc({ listing }, 0);
  metrics.buildInfo.set({ version: options.version ?? "unknown" }, 1);

  if (options.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: "" });
    // These three are gauges named like counters, which `promtool check metrics` rejects; the same numbers stay
    // available per type as nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) registry.removeSingleMetric(name);
  }
  return metrics;
}

/**
 * Sets a labelled gauge from a full snapshot (e.g. containers by state): every known label value absent from
 * `counts` goes to 0, so a value that disappeared never lingers. Pass only bounded label values.
 */
export function setGaugeSnapshot<L extends string>(
  gauge: Gauge<L>,
  label: L,
  known: readonly string[],
  counts: Readonly<Partial<Record<string, number>>>,
): void {
  for (const key of new Set([...known, ...Object.keys(counts)])) {
    gauge.set({ [label]: key } as Partial<Record<L, string>>, counts[key] ?? 0);
  }
}
