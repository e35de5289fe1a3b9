import type { BlockedOutcome, DesiredUser, DesiredVolume, RunOutcome } from "../desired/types.js";
import { replacementName } from "../desired/names.js";
import { EGRESS_PROXY_KEY, EGRESS_PROXY_ROLE } from "../desired/egress-desired.js";
import type { ActualContainer, ActualNetwork, ActualVolume } from "../docker/runtime.js";
import { LABELS } from "../labels.js";
import type { PlanIdle } from "./idle.js";

/** What a drift correction repaired: values of mcp_portal_drift_corrections_total{kind}. */
export const DRIFT_KINDS = [
  "missing_container",
  "stopped_container",
  "spec_changed",
  "orphan_container",
  "missing_network",
  "orphan_network",
  "misplaced_container",
] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

/** What one user owns on the engine right now, found by label. */
export interface ActualUser {
  containers: ActualContainer[];
  networks: ActualNetwork[];
  volumes: ActualVolume[];
}

/**
 * The container a step acts on: one that exists on the engine, or the one an earlier step of the same plan
 * creates for `createdFor` (its id is known only once that step ran).
 */
export type ContainerRef =
  { id: string; name: string; createdFor?: undefined } | { createdFor: string; name: string; id?: undefined };

/**
 * One engine call each (pullImage: an image check, and a pull only when the image is absent). A replace is
 * spelled out as the calls it takes, so `plan` shows exactly what `run` will send.
 */
export type PlanStep =
  | {
      kind: "createNetwork";
      name: string;
      bridgeName: string;
      cause: string;
      drift?: DriftKind;
      /** `egress`: the user's internal egress network (no route out); absent: the user's own network. */
      role?: "egress";
    }
  | { kind: "removeNetwork"; network: ActualNetwork; cause: string; prune: boolean; drift?: DriftKind }
  | { kind: "createVolume"; volume: DesiredVolume; cause: string }
  | { kind: "pullImage"; serverId: string; image: string; cause: string }
  | {
      kind: "createContainer";
      serverId: string;
      outcome: RunOutcome;
      /** The final name, or a temporary one when the new container replaces one holding the final name. */
      name: string;
      cause: string;
      drift?: DriftKind;
      /** Set when the container replaces another: which, and the spec fields that differ. */
      replacing?: { id: string; name: string; changedFields: string[] };
      /** Subnets of the networks the container joins, as listed (a network made in this plan is not there yet). */
      subnets?: Record<string, string>;
      /** The node the workload must run on (Swarm placement), when the backend places. */
      placement?: string;
    }
  | { kind: "startContainer"; serverId: string; container: ContainerRef; cause: string; drift?: DriftKind }
  | {
      kind: "stopContainer";
      serverId: string;
      container: ContainerRef;
      cause: string;
      /** Part of removing a container that is no longer desired (see removeContainer). */
      prune: boolean;
      /** A stop for idleness (README, "Idle servers"): the container is kept, the first request wakes it. */
      idle?: true;
    }
  | {
      kind: "removeContainer";
      serverId: string;
      container: ContainerRef;
      cause: string;
      /** True when the container goes because it is no longer desired (counts against mass-prune safety). */
      prune: boolean;
      drift?: DriftKind;
    }
  | { kind: "renameContainer"; serverId: string; container: ContainerRef; to: string; cause: string }
  | {
      /**
       * Backends with in-place updates (Swarm): the workload takes the new spec and placement, keeping its id and
       * name; the orchestrator replaces its task. `version` is the one the listing gave.
       */
      kind: "updateContainer";
      serverId: string;
      container: { id: string; name: string; version: number };
      outcome: RunOutcome;
      /** The node the user's workloads must run on (Swarm placement), when the backend places. */
      placement?: string;
      cause: string;
      drift?: DriftKind;
      changedFields: string[];
    };

export interface Plan {
  userId: string;
  steps: PlanStep[];
}

/** Per-container facts the planner needs that the listing does not hold. */
export interface PlanContext {
  /** Milliseconds before a stopped container may be started again (CrashLoopBackOff); 0 or absent: now. */
  startWaitMs?: (containerId: string) => number;
  /** Servers that had a container at the last reconcile (a missing one was removed behind our back). */
  hadContainer?: ReadonlySet<string>;
  /** Scale to zero: idle servers stay stopped, idle timeouts stop servers, requests wake them (reconcile/idle.ts). */
  idle?: PlanIdle;
  /**
   * The backend updates a workload in place (capabilities.inPlaceUpdate): a changed spec or placement is one
   * updateContainer step instead of the create/stop/remove/rename/start replace.
   */
  inPlaceUpdate?: boolean;
  /**
   * The node this user's workloads must run on (Swarm), chosen outside the spec: a workload elsewhere is moved
   * by an in-place update. Absent: the backend does not place (engine).
   */
  placement?: string;
}

/** A stopped container the planner holds back because it keeps exiting soon after each start. */
export interface StartWait {
  serverId: string;
  container: ActualContainer;
  waitMs: number;
}

export interface UserPlan extends Plan {
  /** Starts held back by the crash-loop backoff, with how long to wait. */
  waits: StartWait[];
}

const RUNNING_ENOUGH = new Set(["running", "restarting", "paused"]);
const STOPPABLE = new Set(["running", "restarting", "paused"]);

/**
 * Pure diff of one user's desired state against what the engine has. `desired` undefined means the user is
 * gone (its directory was removed): containers and network go, data volumes stay.
 */
export function planUser(
  userId: string,
  desired: DesiredUser | undefined,
  actual: ActualUser,
  context: PlanContext = {},
): UserPlan {
  const steps: PlanStep[] = [];
  const byServer = new Map<string, ActualContainer[]>();
  for (const container of actual.containers) {
    const serverId = workloadKey(container);
    if (serverId === undefined) continue;
    const list = byServer.get(serverId) ?? [];
    list.push(container);
    byServer.set(serverId, list);
  }

  if (!desired) {
    for (const [serverId, containers] of sortedEntries(byServer)) {
      // The egress proxy is not a server: its removal is outside the mass-prune guard's count.
      for (const container of containers)
        removeSteps(steps, serverId, container, "user no longer exists", serverId !== EGRESS_PROXY_KEY);
    }
    for (const network of actual.networks) {
      steps.push({ kind: "removeNetwork", network, cause: "user no longer exists", prune: true });
    }
    return { userId, steps, waits: [] };
  }

  const removals: PlanStep[] = [];
  const replaces: PlanStep[] = [];
  const creates: PlanStep[] = [];
  const fixes: PlanStep[] = [];
  /** Stops for idleness go last: a wake in the same plan (a client waits for it) must not wait behind them. */
  const idleStops: PlanStep[] = [];
  const waits: StartWait[] = [];
  const userNetwork = actual.networks.find((n) => n.name === desired.network.name);
  const networkSteps: PlanStep[] = userNetwork
    ? []
    : [
        {
          kind: "createNetwork",
          name: desired.network.name,
          bridgeName: desired.network.bridgeName,
          cause: "network missing",
          ...(actual.containers.length > 0 ? { drift: "missing_network" as const } : {}),
        },
      ];
  const egressNetwork = desired.egress
    ? actual.networks.find((n) => n.name === desired.egress?.network.name)
    : undefined;
  if (desired.egress && !egressNetwork) {
    networkSteps.push({
      kind: "createNetwork",
      name: desired.egress.network.name,
      bridgeName: desired.egress.network.bridgeName,
      cause: "egress network missing",
      role: "egress",
    });
  }
  const subnets: Record<string, string> = {};
  for (const n of actual.networks) if (n.subnets[0] !== undefined) subnets[n.name] = n.subnets[0];
  const existingVolumes = new Set(actual.volumes.map((v) => v.name));
  const volumeSteps: PlanStep[] = desired.volumes
    .filter((v) => !existingVolumes.has(v.name))
    .map((volume) => ({ kind: "createVolume", volume, cause: "volume missing" }));

  // The egress proxy is planned as one more workload: created, replaced, restarted and drift-healed the same way.
  const workloads = desired.egress ? [...desired.servers, desired.egress.proxy] : desired.servers;
  const desiredIds = new Set(workloads.map((s) => s.serverId));
  for (const outcome of workloads) {
    const containers = byServer.get(outcome.serverId) ?? [];
    if (outcome.kind === "blocked") {
      planBlocked(outcome, containers, removals);
      continue;
    }
    const idle = context.idle?.idle.has(outcome.serverId) === true;
    if (containers.length === 0) {
      const missing = context.hadContainer?.has(outcome.serverId) === true;
      // An idle server's container is re-created stopped: the first request wakes it, as before.
      createSteps(
        creates,
        outcome,
        outcome.spec.name,
        idle ? "container missing (idle: created stopped)" : "container missing",
        missing ? "missing_container" : undefined,
        !idle,
        undefined,
        subnets,
        context.placement,
      );
      continue;
    }
    const keeper = pickKeeper(containers, outcome.specHash);
    for (const extra of containers) {
      if (extra !== keeper)
        removeSteps(
          removals,
          outcome.serverId,
          extra,
          "duplicate container for this server",
          false,
          "orphan_container",
        );
    }
    const why = replaceCause(keeper, outcome, actual.networks);
    if (why && needsAddresses(outcome)) {
      // A fixed address cannot be held by two containers: the old one goes first, then the new one is made.
      const cause = `replace: ${why}`;
      removeSteps(replaces, outcome.serverId, keeper, cause, false);
      createSteps(
        replaces,
        outcome,
        outcome.spec.name,
        cause,
        why.startsWith("spec changed") ? "spec_changed" : undefined,
        true,
        {
          id: keeper.id,
          name: keeper.name,
          changedFields: changedFields(keeper.labels[LABELS.specFields], outcome.specFields),
        },
        subnets,
        context.placement,
      );
      continue;
    }
    if (context.inPlaceUpdate && keeper.version !== undefined) {
      const misplaced = context.placement !== undefined && keeper.placement !== context.placement;
      if (why || misplaced) {
        const causes = [why, misplaced ? `placed on ${context.placement}` : undefined].filter(Boolean);
        replaces.push({
          kind: "pullImage",
          serverId: outcome.serverId,
          image: outcome.spec.image,
          cause: "update",
        });
        replaces.push({
          kind: "updateContainer",
          serverId: outcome.serverId,
          container: { id: keeper.id, name: keeper.name, version: keeper.version },
          outcome,
          ...(context.placement !== undefined ? { placement: context.placement } : {}),
          cause: `update: ${causes.join("; ")}`,
          changedFields: changedFields(keeper.labels[LABELS.specFields], outcome.specFields),
          ...(why?.startsWith("spec changed")
            ? { drift: "spec_changed" as const }
            : misplaced && keeper.placement !== undefined
              ? { drift: "misplaced_container" as const }
              : {}),
        });
        continue;
      }
    }
    if (why) {
      const cause = `replace: ${why}`;
      createSteps(
        replaces,
        outcome,
        replacementName(outcome.spec.name, outcome.specHash),
        cause,
        undefined,
        false,
        {
          id: keeper.id,
          name: keeper.name,
          changedFields: changedFields(keeper.labels[LABELS.specFields], outcome.specFields),
        },
        subnets,
      );
      removeSteps(replaces, outcome.serverId, keeper, cause, false);
      const created = {
        createdFor: outcome.serverId,
        name: replacementName(outcome.spec.name, outcome.specHash),
      };
      replaces.push({
        kind: "renameContainer",
        serverId: outcome.serverId,
        container: created,
        to: outcome.spec.name,
        cause: "take over the final name",
      });
      // An idle server's new container stays stopped, as the old one was.
      if (!idle)
        replaces.push({
          kind: "startContainer",
          serverId: outcome.serverId,
          container: { createdFor: outcome.serverId, name: outcome.spec.name },
          cause,
          ...(why.startsWith("spec changed") ? { drift: "spec_changed" as const } : {}),
        });
      continue;
    }
    if (keeper.name !== outcome.spec.name) {
      fixes.push({
        kind: "renameContainer",
        serverId: outcome.serverId,
        container: { id: keeper.id, name: keeper.name },
        to: outcome.spec.name,
        cause: "finish an interrupted replace",
      });
    }
    const idleStop = context.idle?.stop.get(outcome.serverId);
    if (idleStop && keeper.state === "running") {
      idleStops.push({
        kind: "stopContainer",
        serverId: outcome.serverId,
        container: { id: keeper.id, name: keeper.name },
        cause: `idle: no request for ${Math.round(idleStop.idleForMs / 1000)} s (timeout ${idleStop.timeoutSeconds} s)`,
        prune: false,
        idle: true,
      });
      continue;
    }
    if (!RUNNING_ENOUGH.has(keeper.state)) {
      if (idle) continue;
      const woken = context.idle?.wake.has(outcome.serverId) === true;
      const waitMs = context.startWaitMs?.(keeper.id) ?? 0;
      if (waitMs > 0) {
        waits.push({ serverId: outcome.serverId, container: keeper, waitMs });
        continue;
      }
      fixes.push({
        kind: "startContainer",
        serverId: outcome.serverId,
        container: { id: keeper.id, name: outcome.spec.name },
        ...(woken
          ? { cause: "woken by a request" }
          : { cause: `container ${keeper.state}`, drift: "stopped_container" as const }),
      });
    }
  }
  for (const [serverId, containers] of sortedEntries(byServer)) {
    if (desiredIds.has(serverId)) continue;
    for (const container of containers) {
      // The proxy is our infrastructure, not a server: its removal is outside the mass-prune guard's count.
      if (serverId === EGRESS_PROXY_KEY)
        removeSteps(removals, serverId, container, "no server of the user has restricted egress", false);
      else removeSteps(removals, serverId, container, "server no longer enabled", true);
    }
  }
  // Networks of this user other than its own (a leftover of an earlier naming, or an egress network no server
  // needs any more), once nothing uses them.
  const orphanNetworks: PlanStep[] = actual.networks
    .filter((n) => n.name !== desired.network.name && n.name !== desired.egress?.network.name)
    .map((network) => ({
      kind: "removeNetwork",
      network,
      cause: "network not desired",
      prune: false,
      drift: "orphan_network",
    }));
  // Removals first so freed ports and limits are available to what follows; the network and volumes before
  // any container that needs them; networks nobody needs last, after their containers are gone.
  steps.push(
    ...removals,
    ...networkSteps,
    ...volumeSteps,
    ...replaces,
    ...creates,
    ...fixes,
    ...orphanNetworks,
    ...idleStops,
  );
  return { userId, steps, waits };
}

function createSteps(
  steps: PlanStep[],
  outcome: RunOutcome,
  name: string,
  cause: string,
  drift: DriftKind | undefined,
  start = true,
  replacing?: { id: string; name: string; changedFields: string[] },
  subnets?: Record<string, string>,
  placement?: string,
): void {
  steps.push({ kind: "pullImage", serverId: outcome.serverId, image: outcome.spec.image, cause });
  steps.push({
    kind: "createContainer",
    serverId: outcome.serverId,
    outcome,
    name,
    cause,
    ...(drift ? { drift } : {}),
    ...(replacing ? { replacing } : {}),
    ...(subnets && needsAddresses(outcome) ? { subnets: subnetsFor(outcome, subnets) } : {}),
    ...(placement !== undefined ? { placement } : {}),
  });
  if (start)
    steps.push({
      kind: "startContainer",
      serverId: outcome.serverId,
      container: { createdFor: outcome.serverId, name },
      cause: "new container",
    });
}

/** A graceful stop (when it runs), then the removal. */
function removeSteps(
  steps: PlanStep[],
  serverId: string,
  container: ActualContainer,
  cause: string,
  prune: boolean,
  drift?: DriftKind,
): void {
  const ref = { id: container.id, name: container.name };
  if (STOPPABLE.has(container.state))
    steps.push({ kind: "stopContainer", serverId, container: ref, cause, prune });
  steps.push({
    kind: "removeContainer",
    serverId,
    container: ref,
    cause,
    prune,
    ...(drift ? { drift } : {}),
  });
}

function planBlocked(
  outcome: BlockedOutcome,
  containers: readonly ActualContainer[],
  removals: PlanStep[],
): void {
  if (outcome.keepExisting) return;
  for (const container of containers)
    removeSteps(removals, outcome.serverId, container, `${outcome.reason}: ${outcome.message}`, true);
}

function pickKeeper(containers: readonly ActualContainer[], specHash: string): ActualContainer {
  const score = (c: ActualContainer) =>
    (c.labels[LABELS.specHash] === specHash ? 4 : 0) +
    (RUNNING_ENOUGH.has(c.state) ? 2 : 0) +
    (c.state !== "dead" ? 1 : 0);
  return [...containers].sort(
    (a, b) => score(b) - score(a) || b.created - a.created || (a.id < b.id ? -1 : 1),
  )[0]!;
}

/** The workload a container is: its server id, or the egress proxy's key. */
export function workloadKey(container: ActualContainer): string | undefined {
  const serverId = container.labels[LABELS.serverId];
  if (serverId !== undefined) return serverId;
  return container.labels[LABELS.role] === EGRESS_PROXY_ROLE ? EGRESS_PROXY_KEY : undefined;
}

function needsAddresses(outcome: RunOutcome): boolean {
  return outcome.spec.addressOffset !== undefined || (outcome.spec.extraNetworks?.length ?? 0) > 0;
}

function subnetsFor(outcome: RunOutcome, subnets: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of [outcome.spec.network, ...(outcome.spec.extraNetworks ?? []).map((n) => n.name)]) {
    const subnet = subnets[name];
    if (subnet !== undefined) out[name] = subnet;
  }
  return out;
}

function replaceCause(
  container: ActualContainer,
  outcome: RunOutcome,
  networks: readonly ActualNetwork[],
): string | undefined {
  if (container.state === "dead" || container.state === "removing") return `container ${container.state}`;
  for (const name of [outcome.spec.network, ...(outcome.spec.extraNetworks ?? []).map((n) => n.name)]) {
    const network = networks.find((n) => n.name === name);
    if (network && container.networkIds.length > 0 && !container.networkIds.includes(network.id)) {
      return name === outcome.spec.network
        ? "container is not attached to the user's network"
        : `container is not attached to ${name}`;
    }
  }
  if (container.labels[LABELS.specHash] === outcome.specHash) return undefined;
  const changed = changedFields(container.labels[LABELS.specFields], outcome.specFields);
  return changed.length > 0 ? `spec changed: ${changed.join(", ")}` : "spec changed";
}

/** Names the spec fields whose digests differ from the ones recorded on the running container. */
export function changedFields(
  recorded: string | undefined,
  desired: Readonly<Record<string, string>>,
): string[] {
  if (!recorded) return [];
  let old: Record<string, unknown>;
  try {
    old = JSON.parse(recorded) as Record<string, unknown>;
  } catch {
    return [];
  }
  const keys = new Set([...Object.keys(old), ...Object.keys(desired)]);
  const changed: string[] = [];
  for (const key of [...keys].sort()) {
    if (key === "env" || key === "labels") continue;
    if (old[key] !== desired[key]) changed.push(key.startsWith("env.") ? `env ${key.slice(4)}` : key);
  }
  return changed;
}

function sortedEntries<V>(map: ReadonlyMap<string, V>): [string, V][] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Steps that remove something no longer desired: what the mass-prune guard counts and may hold back. */
export function isPruneStep(step: PlanStep): boolean {
  return (
    (step.kind === "removeContainer" || step.kind === "stopContainer" || step.kind === "removeNetwork") &&
    step.prune
  );
}

/** Containers a plan removes because they are no longer desired (each counted once). */
export function prunedContainerIds(steps: readonly PlanStep[]): string[] {
  const ids: string[] = [];
  for (const s of steps)
    if (s.kind === "removeContainer" && s.prune && s.container.id) ids.push(s.container.id);
  return ids;
}

/** The resource a step acts on: the container, network or volume name (for a create, the name it gets). */
export function stepResource(step: PlanStep): string {
  switch (step.kind) {
    case "createNetwork":
      return step.name;
    case "removeNetwork":
      return step.network.name;
    case "createVolume":
      return step.volume.name;
    case "pullImage":
      return step.image;
    case "createContainer":
      return step.name;
    case "startContainer":
    case "stopContainer":
    case "removeContainer":
    case "renameContainer":
    case "updateContainer":
      return step.container.name;
  }
}

export function describeStep(step: PlanStep): string {
  const server = "serverId" in step ? `${step.serverId}: ` : "";
  switch (step.kind) {
    case "createNetwork":
      return `create network ${step.name} (${step.cause})`;
    case "removeNetwork":
      return `remove network ${step.network.name} (${step.cause})`;
    case "createVolume":
      return `create volume ${step.volume.name} (${step.cause})`;
    case "pullImage":
      return `${server}pull image ${step.image} if absent (${step.cause})`;
    case "createContainer":
      return `${server}create container ${step.name} (${step.cause})`;
    case "startContainer":
      return `${server}start ${step.container.name} (${step.cause})`;
    case "stopContainer":
      return `${server}stop ${step.container.name} (${step.cause})`;
    case "removeContainer":
      return `${server}remove ${step.container.name} (${step.cause})`;
    case "renameContainer":
      return `${server}rename ${step.container.name} -> ${step.to} (${step.cause})`;
    case "updateContainer":
      return `${server}update ${step.container.name} in place (${step.cause})`;
  }
}
