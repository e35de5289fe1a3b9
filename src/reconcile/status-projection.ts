import { serverUrl } from "../auth/oidc-settings.js";
import type { GatewayAccessFile } from "../contracts/gateway-access.js";
import { type GatewayHealthServer, gatewayHealthKey } from "../contracts/gateway-health.js";
import { EGRESS_PROXY_KEY } from "../desired/egress-desired.js";
import { describeEffectiveEgress } from "../desired/egress-rules.js";
import type {
  Condition,
  ReconcileRecord,
  ServerStatus,
  UserPhase,
  UserStatus,
} from "../contracts/status-file.js";
import type { PortRange } from "../desired/port-blocks.js";
import type { ContainerSpec, DesiredUser } from "../desired/types.js";
import { LABELS } from "../labels.js";
import { ownValue } from "../util/own-property.js";
import type { Problem } from "../validate/problem.js";
import type { ExecutionResult } from "./executor.js";
import type { IdleDecision } from "./idle.js";
import type { ActualUser, StartWait } from "./plan.js";

/*
 * Status projection, pure: from what was desired, observed and done to the status.json a user gets, the
 * conditions and phases, and the summary the controller's gauges add up. Everything that decides what a status
 * says lives here, so the loop and `plan` cannot disagree about it.
 */

/** Why the user as a whole cannot make progress. */
export interface Stalled {
  reason: string;
  message: string;
}

export interface ProjectionInput {
  userId: string;
  previous: UserStatus | undefined;
  generation: string;
  suspended: boolean;
  observed: ActualUser;
  desired: DesiredUser | undefined;
  executed: ExecutionResult | undefined;
  /** Stopped containers whose start the crash-loop backoff holds back. */
  waits: readonly StartWait[];
  /** The gateway's MCP probes, when the gateway serves the users' ports. */
  health: ReadonlyMap<string, GatewayHealthServer> | undefined;
  /** What the gateway enforces for this user (tool policy, rate limits), when it was computed. */
  access?: GatewayAccessFile | undefined;
  /** MCP_PORTAL_PUBLIC_URL when the gateway serves the users' ports: servers then get their `url`. */
  publicUrl?: string | undefined;
  /** What the backend cannot express of a spec (Swarm), reported as warnings rather than blocks. */
  specWarnings?: ((spec: ContainerSpec) => string[]) | undefined;
  /** Why no idle timeout is applied here (Swarm, or no gateway): servers that set one get a warning saying so. */
  idleNotApplied?: string | undefined;
  portBlock: PortRange | undefined;
  errors: Problem[];
  stalled: Stalled | undefined;
  mutations: number;
  durationMs: number;
  now: Date;
  /** Scale to zero: the servers idle after this reconcile, and refused wakes. */
  idle?: IdleDecision;
}

const HISTORY = 5;

export function projectStatus(input: ProjectionInput): UserStatus {
  const servers = serverStatuses(input);
  if (input.health) applyGatewayHealth(input.userId, servers, input.health);
  const network = input.executed?.network ?? networkOf(input.observed, input.desired);
  const summaryParts = [`${input.mutations} mutation(s)`];
  if (input.stalled) summaryParts.push(input.stalled.reason);
  if (input.errors.length > 0) summaryParts.push(`${input.errors.length} problem(s)`);
  const failedSteps = input.executed !== undefined && input.executed.retryable.length > 0;
  return nextStatus(
    input.previous,
    {
      userId: input.userId,
      generation: input.generation,
      suspended: input.suspended,
      network,
      portBlock: input.portBlock ?? null,
      servers,
      resources: input.desired
        ? { used: input.desired.usage, limits: input.desired.limits }
        : (input.previous?.resources ?? null),
      errors: input.errors,
      ...(input.stalled ? { stalled: input.stalled } : {}),
      record: {
        time: input.now.toISOString(),
        result: input.stalled ? "blocked" : failedSteps ? "error" : "success",
        mutations: input.mutations,
        duration_ms: input.durationMs,
        summary: summaryParts.join(", "),
      },
    },
    input.now,
  );
}

/** What one reconcile observed, before it becomes a status (the conditions need the previous status too). */
export interface Observation {
  userId: string;
  generation: string;
  suspended: boolean;
  network: UserStatus["network"];
  portBlock: UserStatus["port_block"];
  servers: ServerStatus[];
  resources: UserStatus["resources"];
  errors: Problem[];
  stalled?: Stalled;
  record: ReconcileRecord;
}

/**
 * A server counts against readiness while it is not Running, or Running but not (yet) MCP-Ready. An Idle server
 * serves: the first request wakes it.
 */
export function isServing(server: ServerStatus): boolean {
  return (
    server.phase === "Idle" ||
    (server.phase === "Running" && (server.health === undefined || server.health === "Ready"))
  );
}

/** A server that needs someone's attention: it will not run (or serve) until something changes. */
export function isDegraded(server: ServerStatus): boolean {
  return (
    server.phase === "Blocked" ||
    server.phase === "Failed" ||
    server.phase === "Unhealthy" ||
    server.reason === "ImagePullBackOff"
  );
}

/** The next status from the previous one, keeping condition transition times unless a status flips. */
export function nextStatus(previous: UserStatus | undefined, o: Observation, now: Date): UserStatus {
  const notServing = o.servers.filter((s) => !isServing(s));
  const ready = !o.stalled && o.errors.length === 0 && notServing.length === 0;
  const degraded = o.servers.find(isDegraded);
  const conditions: Condition[] = [
    condition(previous, "Ready", ready, now, {
      reason: ready
        ? "AllServersRunning"
        : (o.stalled?.reason ?? (o.errors.length > 0 ? "InvalidDesiredState" : "ServersNotRunning")),
      message: ready
        ? `${o.servers.length} server(s) running`
        : (o.stalled?.message ??
          (o.errors.length > 0
            ? `${o.errors.length} problem(s) in the desired state; the last good state is kept`
            : notServing
                .map(
                  (s) =>
                    `${s.id}: ${s.phase}${s.reason ? ` (${s.reason})` : s.health ? ` (${s.health})` : ""}`,
                )
                .join(", "))),
    }),
    condition(previous, "Degraded", degraded !== undefined, now, {
      reason: degraded?.reason ?? "AsExpected",
      message: degraded ? `${degraded.id}: ${degraded.message ?? degraded.phase}` : "",
    }),
    condition(previous, "Stalled", o.stalled !== undefined || o.errors.length > 0, now, {
      reason: o.stalled?.reason ?? (o.errors.length > 0 ? "InvalidDesiredState" : "AsExpected"),
      message:
        o.stalled?.message ??
        (o.errors.length > 0 ? o.errors.map((e) => `${e.file}: ${e.path}: ${e.message}`).join("; ") : ""),
    }),
  ];
  const phase: UserPhase = o.suspended
    ? "Suspended"
    : o.stalled
      ? "Stalled"
      : ready
        ? "Ready"
        : degraded || o.errors.length > 0
          ? "Degraded"
          : "Progressing";
  const history = [...(previous?.last_reconciles ?? [])];
  const last = history[history.length - 1];
  if (
    !last ||
    o.record.mutations > 0 ||
    last.result !== o.record.result ||
    last.summary !== o.record.summary
  ) {
    history.push(o.record);
  }
  return {
    api_version: "mcp-portal/v1",
    user_id: o.userId,
    phase,
    observed_generation: o.generation,
    network: o.network,
    port_block: o.portBlock,
    servers: o.servers,
    resources: o.resources,
    conditions,
    errors: o.errors,
    last_reconciles: history.slice(-HISTORY),
  };
}

function condition(
  previous: UserStatus | undefined,
  type: Condition["type"],
  isTrue: boolean,
  now: Date,
  detail: { reason: string; message: string },
): Condition {
  const status = isTrue ? "True" : "False";
  const before = previous?.conditions.find((c) => c.type === type);
  return {
    type,
    status,
    reason: detail.reason,
    message: detail.message,
    last_transition_time:
      before && before.status === status ? before.last_transition_time : now.toISOString(),
  };
}

/**
 * Running is not Ready: with the gateway on, a server counts once its MCP probe (initialize, initialized, ping)
 * passed through the gateway, for this very container.
 */
export function applyGatewayHealth(
  userId: string,
  servers: ServerStatus[],
  health: ReadonlyMap<string, GatewayHealthServer>,
): void {
  for (const server of servers) {
    if (server.phase !== "Running" || !server.container_id) continue;
    const probe = health.get(gatewayHealthKey(userId, server.id));
    if (!probe || probe.container_id !== server.container_id) {
      server.health = "Starting";
      continue;
    }
    server.health = probe.state;
    if (probe.state === "Unhealthy") {
      server.phase = "Unhealthy";
      server.reason = "Unhealthy";
      server.message = probe.message;
    }
  }
}

function networkOf(actual: ActualUser, desired: DesiredUser | undefined): UserStatus["network"] {
  const network = desired ? actual.networks.find((n) => n.name === desired.network.name) : actual.networks[0];
  if (network)
    return {
      name: network.name,
      id: network.id,
      ...(network.subnets[0] ? { subnet: network.subnets[0] } : {}),
    };
  return desired ? { name: desired.network.name } : null;
}

function serverStatuses(input: ProjectionInput): ServerStatus[] {
  const { desired, observed, previous, access, publicUrl, specWarnings } = input;
  if (!desired) {
    // Nothing could be computed: report what runs, as it runs.
    return (previous?.servers ?? []).map((s) => ({ ...s }));
  }
  return desired.servers.map((outcome): ServerStatus => {
    const status = serverStatus(input, outcome);
    const server = access ? ownValue(access.servers, outcome.serverId) : undefined;
    const container = status.container_id
      ? observed.containers.find((c) => c.id === status.container_id)
      : undefined;
    const warnings = outcome.kind === "run" && specWarnings ? specWarnings(outcome.spec) : [];
    if (outcome.kind === "run" && input.idleNotApplied !== undefined && outcome.idleTimeoutSeconds > 0)
      warnings.push(
        `idle_timeout_seconds (${outcome.idleTimeoutSeconds} s) is not applied: ${input.idleNotApplied}`,
      );
    return {
      ...status,
      ...(publicUrl !== undefined && status.host_port !== undefined
        ? { url: serverUrl(publicUrl, status.host_port) }
        : {}),
      ...(server ? { tools: server.tools } : {}),
      ...(server?.rate_limit ? { rate_limit: server.rate_limit } : {}),
      ...(container?.node !== undefined ? { node: container.node } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
    };
  });
}

/** One server's status from its desired outcome and what was observed and done. */
function serverStatus(input: ProjectionInput, outcome: DesiredUser["servers"][number]): ServerStatus {
  const { observed, executed } = input;
  const containers = observed.containers.filter((c) => c.labels[LABELS.serverId] === outcome.serverId);
  const result = executed?.servers.get(outcome.serverId);
  if (outcome.kind === "blocked") {
    const kept = outcome.keepExisting ? containers[0] : undefined;
    return {
      id: outcome.serverId,
      phase: "Blocked",
      reason: outcome.reason,
      message: kept ? `${outcome.message}; the existing container keeps running` : outcome.message,
      ...(kept ? { container_id: kept.id, container_name: kept.name } : {}),
    };
  }
  const base = {
    id: outcome.serverId,
    host_port: outcome.spec.hostPort,
    spec_hash: outcome.specHash,
    image: outcome.spec.image,
    ...(outcome.egress ? { egress: describeEffectiveEgress(outcome.egress) } : {}),
  };
  // An admin-loosened server runs without the user's environment except what policy allows: say which.
  const envNote = outcome.droppedUserEnv?.length
    ? `user environment not passed to this admin-loosened server: ${outcome.droppedUserEnv.join(", ")} (policy.json server_security.${outcome.serverId}.user_env_allow)`
    : undefined;
  // A restricted server whose user's egress proxy could not be made has no way out: say why.
  const proxy = executed?.servers.get(EGRESS_PROXY_KEY);
  const proxyNote =
    outcome.egress?.mode === "allow" && proxy?.reason
      ? `egress proxy ${proxy.phase} (${proxy.reason})${proxy.message ? `: ${proxy.message}` : ""}`
      : undefined;
  const note = [envNote, proxyNote].filter((n) => n !== undefined).join("; ") || undefined;
  const idle = input.idle;
  if (
    idle &&
    (idle.idle.has(outcome.serverId) || idle.stop.has(outcome.serverId)) &&
    result?.phase !== "Failed"
  ) {
    const container = result?.containerId
      ? { id: result.containerId, name: result.containerName ?? "" }
      : containers[0];
    const refused = idle.refused.get(outcome.serverId);
    return {
      ...base,
      phase: "Idle",
      reason: refused ? refused.reason : "IdleTimeout",
      message: refused
        ? `wake refused: ${refused.message}`
        : `stopped after ${outcome.idleTimeoutSeconds} s without requests; the first request wakes it`,
      ...(container ? { container_id: container.id, container_name: container.name } : {}),
    };
  }
  if (result) {
    const message = result.message ?? (result.phase === "Running" ? note : undefined);
    return {
      ...base,
      phase: result.phase,
      ...(result.reason ? { reason: result.reason } : {}),
      ...(message ? { message } : {}),
      ...(result.containerId ? { container_id: result.containerId } : {}),
      ...(result.containerName ? { container_name: result.containerName } : {}),
    };
  }
  const wait = input.waits.find((w) => w.serverId === outcome.serverId);
  if (wait) {
    return {
      ...base,
      phase: "Failed",
      reason: "CrashLoopBackOff",
      message: `container keeps exiting soon after start; next start in ${Math.ceil(wait.waitMs / 1000)} s`,
      container_id: wait.container.id,
      container_name: wait.container.name,
    };
  }
  const current = containers.find((c) => c.labels[LABELS.specHash] === outcome.specHash);
  if (current?.crashLoop && current.state !== "running") {
    // Swarm owns the restarts: its task history says the server keeps failing.
    return {
      ...base,
      phase: "Failed",
      reason: "CrashLoopBackOff",
      message: `${current.crashLoop.failures} failed task(s) recently; Swarm restarts it; last error: ${current.crashLoop.lastError || "none reported"}`,
      container_id: current.id,
      container_name: current.name,
    };
  }
  if (current && (current.state === "running" || current.state === "paused")) {
    return {
      ...base,
      phase: "Running",
      container_id: current.id,
      container_name: current.name,
      ...(note ? { message: note } : {}),
    };
  }
  return {
    ...base,
    phase: "Pending",
    reason: current ? `Container${capitalize(current.state)}` : "ContainerMissing",
    ...(current ? { container_id: current.id, container_name: current.name } : {}),
  };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** What the last reconcile of a user saw, for the controller's gauges. */
export interface UserSummary {
  phase: UserPhase | "Deleted";
  /** Containers by engine state (a container that serves counts as running). */
  containers: Record<string, number>;
  desired: number;
  blocked: Record<string, number>;
  invalidFiles: string[];
  /** Servers stopped for idleness. */
  idle: number;
}

export const DELETED_SUMMARY: UserSummary = {
  phase: "Deleted",
  containers: {},
  desired: 0,
  blocked: {},
  invalidFiles: [],
  idle: 0,
};

export function summarize(
  status: UserStatus | undefined,
  actual: ActualUser,
  errors: Problem[],
): UserSummary {
  const containers: Record<string, number> = {};
  const byId = new Map<string, ServerStatus>();
  for (const s of status?.servers ?? []) if (s.container_id) byId.set(s.container_id, s);
  for (const c of actual.containers) {
    if (!c.labels[LABELS.serverId]) continue;
    const state = byId.get(c.id)?.phase === "Running" ? "running" : c.state;
    containers[state] = (containers[state] ?? 0) + 1;
  }
  for (const s of status?.servers ?? []) {
    if (s.container_id && !actual.containers.some((c) => c.id === s.container_id)) {
      const state = s.phase === "Running" ? "running" : "created";
      containers[state] = (containers[state] ?? 0) + 1;
    }
  }
  const blocked: Record<string, number> = {};
  for (const s of status?.servers ?? []) {
    const notServing = s.phase === "Blocked" || s.phase === "Failed" || s.phase === "Unhealthy";
    if ((notServing || s.reason === "ImagePullBackOff") && s.reason) {
      blocked[s.reason] = (blocked[s.reason] ?? 0) + 1;
    }
  }
  return {
    phase: status?.phase ?? "Progressing",
    containers,
    desired: status?.servers.length ?? 0,
    blocked,
    invalidFiles: [...new Set(errors.map((e) => e.file))],
    idle: (status?.servers ?? []).filter((s) => s.phase === "Idle").length,
  };
}
