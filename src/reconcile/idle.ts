import type { DesiredUser } from "../desired/types.js";
import { runningLimitExceeded } from "../desired/user-desired.js";
import type { ActualContainer } from "../docker/runtime.js";
import { LABELS } from "../labels.js";
import type { ActualUser } from "./plan.js";

/*
 * Scale to zero, pure (README, "Idle servers"): which servers are idle, which running ones have been idle long
 * enough to stop, and which idle ones a request wakes. No clock, no files: `now`, the idle marks (idle.json), the
 * pending wake requests and the gateway's last request times come in as data.
 */

export interface IdleMark {
  containerId: string;
  since: number;
}

export interface IdleInputs {
  now: number;
  /** Servers idle.json says are idle. */
  marks: ReadonlyMap<string, IdleMark>;
  /** Servers with a wake request waiting. */
  wakes: ReadonlySet<string>;
  /** The last client request (ms) through the gateway, per server. */
  lastRequest: ReadonlyMap<string, number>;
  /** When this controller first saw a container running (ms), by container id: the idle clock's start. */
  runningSince: ReadonlyMap<string, number>;
  /**
   * idle.json could not be read: a stopped container of a server with an idle timeout is taken as idle (waking
   * it costs one request) rather than started (which could start every idle server of the host at once).
   */
  adoptStopped?: boolean;
}

export interface IdleStop {
  containerId: string;
  idleForMs: number;
  timeoutSeconds: number;
}

export interface IdleDecision {
  /** Idle servers of this plan: a stopped container is not started, a missing one is created stopped. */
  idle: Set<string>;
  /** Running servers without a request for their idle timeout: stopped now (the container is kept). */
  stop: Map<string, IdleStop>;
  /** Idle servers a request wakes now: started. */
  wake: Set<string>;
  /** Wakes refused because a limit of running servers would be exceeded; the server stays idle. */
  refused: Map<string, { reason: "LimitExceeded"; message: string }>;
  /** Marks dropped without a wake request, and why (started outside the gateway, no idle timeout any more...). */
  cleared: Map<string, string>;
  /** Stopped containers taken as idle because idle.json could not be read (server id -> container id). */
  adopted: Map<string, string>;
  /** When the next running server's idle timeout passes (ms from now), if any does. */
  nextCheckMs: number | undefined;
}

const RUNNING = new Set(["running", "restarting", "paused"]);

function containersOf(observed: ActualUser): Map<string, ActualContainer[]> {
  const out = new Map<string, ActualContainer[]>();
  for (const c of observed.containers) {
    const serverId = c.labels[LABELS.serverId];
    if (serverId === undefined) continue;
    out.set(serverId, [...(out.get(serverId) ?? []), c]);
  }
  return out;
}

/**
 * The marked servers that are still idle before anything else is decided (what the limits see): a marked server
 * whose container runs was started behind the gateway's back (`docker start`) and counts as woken.
 */
export function idleBeforeDecision(observed: ActualUser, marks: ReadonlyMap<string, IdleMark>): Set<string> {
  const byServer = containersOf(observed);
  const idle = new Set<string>();
  for (const serverId of marks.keys()) {
    const containers = byServer.get(serverId) ?? [];
    if (!containers.some((c) => RUNNING.has(c.state))) idle.add(serverId);
  }
  return idle;
}

export function decideIdle(
  desired: DesiredUser,
  observed: ActualUser,
  inputs: IdleInputs,
  idleBefore: ReadonlySet<string>,
): IdleDecision {
  const byServer = containersOf(observed);
  const decision: IdleDecision = {
    idle: new Set(),
    stop: new Map(),
    wake: new Set(),
    refused: new Map(),
    cleared: new Map(),
    adopted: new Map(),
    nextCheckMs: undefined,
  };
  const outcomes = new Map(desired.servers.map((o) => [o.serverId, o]));
  for (const serverId of inputs.marks.keys()) {
    const outcome = outcomes.get(serverId);
    if (!idleBefore.has(serverId)) decision.cleared.set(serverId, "started outside the gateway");
    else if (!outcome) decision.cleared.set(serverId, "no longer enabled");
    else if (outcome.kind === "blocked") {
      // Input that could not be read keeps the container as it is (stopped); a valid "not this" removes it.
      if (outcome.keepExisting) decision.idle.add(serverId);
      else decision.cleared.set(serverId, `blocked: ${outcome.reason}`);
    } else if (outcome.idleTimeoutSeconds === 0) decision.cleared.set(serverId, "no idle timeout any more");
  }
  // Wakes are admitted in the user's priority order (enabled-servers.json), each counted once admitted.
  const usage = { ...desired.usage };
  for (const outcome of desired.servers) {
    if (outcome.kind !== "run") continue;
    const { serverId } = outcome;
    const containers = byServer.get(serverId) ?? [];
    if (idleBefore.has(serverId) && !decision.cleared.has(serverId)) {
      if (!inputs.wakes.has(serverId)) {
        decision.idle.add(serverId);
        continue;
      }
      const exceeded = runningLimitExceeded(usage, desired.limits, outcome.memoryMb, outcome.cpuShares);
      if (exceeded) {
        decision.refused.set(serverId, { reason: "LimitExceeded", message: exceeded.message });
        decision.idle.add(serverId);
        continue;
      }
      usage.containers += 1;
      usage.memory_mb += outcome.memoryMb;
      usage.cpu_shares += outcome.cpuShares;
      decision.wake.add(serverId);
      // Its idle clock starts with this wake: look again when it could have passed.
      decision.nextCheckMs = Math.min(decision.nextCheckMs ?? Infinity, outcome.idleTimeoutSeconds * 1000);
      continue;
    }
    if (outcome.idleTimeoutSeconds === 0) continue;
    if (
      inputs.adoptStopped &&
      !inputs.marks.has(serverId) &&
      containers.length > 0 &&
      !containers.some((c) => RUNNING.has(c.state))
    ) {
      decision.adopted.set(serverId, containers[0]!.id);
      decision.idle.add(serverId);
      continue;
    }
    // Only a settled server idles: one running container, the desired spec (a replace runs first). One being
    // created, started or replaced now is looked at again when its timeout could have passed.
    const container = containers.length === 1 ? containers[0]! : undefined;
    if (
      !container ||
      container.state !== "running" ||
      container.labels[LABELS.specHash] !== outcome.specHash
    ) {
      decision.nextCheckMs = Math.min(decision.nextCheckMs ?? Infinity, outcome.idleTimeoutSeconds * 1000);
      continue;
    }
    const since = inputs.runningSince.get(container.id) ?? inputs.now;
    const lastActive = Math.max(since, inputs.lastRequest.get(serverId) ?? 0);
    const dueIn = lastActive + outcome.idleTimeoutSeconds * 1000 - inputs.now;
    if (dueIn <= 0) {
      decision.stop.set(serverId, {
        containerId: container.id,
        idleForMs: inputs.now - lastActive,
        timeoutSeconds: outcome.idleTimeoutSeconds,
      });
    } else {
      decision.nextCheckMs = Math.min(decision.nextCheckMs ?? Infinity, dueIn);
    }
  }
  return decision;
}

/** What the planner needs of an idle decision. */
export interface PlanIdle {
  idle: ReadonlySet<string>;
  stop: ReadonlyMap<string, IdleStop>;
  wake: ReadonlySet<string>;
}
