import type { BlockedOutcome, DesiredUser, DesiredVolume, RunOutcome } from "../desired/types.js";
import type { ActualContainer, ActualNetwork, ActualVolume } from "../docker/runtime.js";
import { LABELS } from "../labels.js";

/** What one user owns on the engine right now, found by label. */
export interface ActualUser {
  containers: ActualContainer[];
  networks: ActualNetwork[];
  volumes: ActualVolume[];
}

export type PlanStep =
  | { kind: "createNetwork"; name: string; bridgeName: string; cause: string }
  | { kind: "createVolume"; volume: DesiredVolume; cause: string }
  | { kind: "createContainer"; serverId: string; outcome: RunOutcome; cause: string }
  | { kind: "replaceContainer"; serverId: string; outcome: RunOutcome; old: ActualContainer; cause: string }
  | { kind: "renameContainer"; serverId: string; container: ActualContainer; name: string; cause: string }
  | { kind: "startContainer"; serverId: string; container: ActualContainer; cause: string }
  | {
      kind: "removeContainer";
      serverId: string;
      container: ActualContainer;
      cause: string;
      /** True when the container goes because it is no longer desired (counts against mass-prune safety). */
      prune: boolean;
    }
  | { kind: "removeNetwork"; network: ActualNetwork; cause: string };

export interface Plan {
  userId: string;
  steps: PlanStep[];
}

const RUNNING_ENOUGH = new Set(["running", "restarting", "paused"]);

/**
 * Pure diff of one user's desired state against what the engine has. `desired` undefined means the user is
 * gone (its directory was removed): containers and network go, data volumes stay.
 */
export function planUser(userId: string, desired: DesiredUser | undefined, actual: ActualUser): Plan {
  const steps: PlanStep[] = [];
  const byServer = new Map<string, ActualContainer[]>();
  for (const container of actual.containers) {
    const serverId = container.labels[LABELS.serverId];
    if (serverId === undefined) continue;
    const list = byServer.get(serverId) ?? [];
    list.push(container);
    byServer.set(serverId, list);
  }

  if (!desired) {
    for (const [serverId, containers] of sortedEntries(byServer)) {
      for (const container of containers) {
        steps.push({
          kind: "removeContainer",
          serverId,
          container,
          cause: "user no longer exists",
          prune: true,
        });
      }
    }
    for (const network of actual.networks) {
      steps.push({ kind: "removeNetwork", network, cause: "user no longer exists" });
    }
    return { userId, steps };
  }

  const removals: PlanStep[] = [];
  const replaces: PlanStep[] = [];
  const creates: PlanStep[] = [];
  const fixes: PlanStep[] = [];
  const userNetwork = actual.networks.find((n) => n.name === desired.network.name);
  const networkSteps: PlanStep[] = userNetwork
    ? []
    : [
        {
          kind: "createNetwork",
          name: desired.network.name,
          bridgeName: desired.network.bridgeName,
          cause: "network missing",
        },
      ];
  const existingVolumes = new Set(actual.volumes.map((v) => v.name));
  const volumeSteps: PlanStep[] = desired.volumes
    .filter((v) => !existingVolumes.has(v.name))
    .map((volume) => ({ kind: "createVolume", volume, cause: "volume missing" }));

  const desiredIds = new Set(desired.servers.map((s) => s.serverId));
  for (const outcome of desired.servers) {
    const containers = byServer.get(outcome.serverId) ?? [];
    if (outcome.kind === "blocked") {
      planBlocked(outcome, containers, removals);
      continue;
    }
    if (containers.length === 0) {
      creates.push({
        kind: "createContainer",
        serverId: outcome.serverId,
        outcome,
        cause: "container missing",
      });
      continue;
    }
    const keeper = pickKeeper(containers, outcome.specHash);
    for (const extra of containers) {
      if (extra !== keeper)
        removals.push({
          kind: "removeContainer",
          serverId: outcome.serverId,
          container: extra,
          cause: "duplicate container for this server",
          prune: false,
        });
    }
    const why = replaceCause(keeper, outcome, userNetwork);
    if (why) {
      replaces.push({
        kind: "replaceContainer",
        serverId: outcome.serverId,
        outcome,
        old: keeper,
        cause: why,
      });
      continue;
    }
    if (keeper.name !== outcome.spec.name) {
      fixes.push({
        kind: "renameContainer",
        serverId: outcome.serverId,
        container: keeper,
        name: outcome.spec.name,
        cause: "finish an interrupted replace",
      });
    }
    if (!RUNNING_ENOUGH.has(keeper.state)) {
      fixes.push({
        kind: "startContainer",
        serverId: outcome.serverId,
        container: keeper,
        cause: `container ${keeper.state}`,
      });
    }
  }
  for (const [serverId, containers] of sortedEntries(byServer)) {
    if (desiredIds.has(serverId)) continue;
    for (const container of containers) {
      removals.push({
        kind: "removeContainer",
        serverId,
        container,
        cause: "server no longer enabled",
        prune: true,
      });
    }
  }
  // Removals first so freed ports and limits are available to what follows; the network and volumes before
  // any container that needs them.
  steps.push(...removals, ...networkSteps, ...volumeSteps, ...replaces, ...creates, ...fixes);
  return { userId, steps };
}

function planBlocked(
  outcome: BlockedOutcome,
  containers: readonly ActualContainer[],
  removals: PlanStep[],
): void {
  if (outcome.keepExisting) return;
  for (const container of containers) {
    removals.push({
      kind: "removeContainer",
      serverId: outcome.serverId,
      container,
      cause: `${outcome.reason}: ${outcome.message}`,
      prune: true,
    });
  }
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

function replaceCause(
  container: ActualContainer,
  outcome: RunOutcome,
  network: ActualNetwork | undefined,
): string | undefined {
  if (container.state === "dead" || container.state === "removing") return `container ${container.state}`;
  if (network && container.networkIds.length > 0 && !container.networkIds.includes(network.id)) {
    return "container is not attached to the user's network";
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

export function isEmptyPlan(plan: Plan): boolean {
  return plan.steps.length === 0;
}

export function describeStep(step: PlanStep): string {
  switch (step.kind) {
    case "createNetwork":
      return `create network ${step.name} (${step.cause})`;
    case "createVolume":
      return `create volume ${step.volume.name} (${step.cause})`;
    case "createContainer":
      return `create ${step.serverId} as ${step.outcome.spec.name} (${step.cause})`;
    case "replaceContainer":
      return `replace ${step.serverId} ${step.old.name} (${step.cause})`;
    case "renameContainer":
      return `rename ${step.serverId} ${step.container.name} -> ${step.name} (${step.cause})`;
    case "startContainer":
      return `start ${step.serverId} ${step.container.name} (${step.cause})`;
    case "removeContainer":
      return `remove ${step.serverId} ${step.container.name} (${step.cause})`;
    case "removeNetwork":
      return `remove network ${step.network.name} (${step.cause})`;
  }
}
