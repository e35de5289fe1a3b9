import type { PortRange } from "../desired/port-blocks.js";
import type { DesiredUser } from "../desired/types.js";
import { type DesiredUserInput, computeDesiredUser } from "../desired/user-desired.js";
import { volumeKey } from "../desired/names.js";
import { LABELS } from "../labels.js";
import { type IdleDecision, type IdleInputs, decideIdle, idleBeforeDecision } from "./idle.js";
import { type ActualUser, type PlanContext, type PlanStep, type UserPlan, planUser } from "./plan.js";
import type { Stalled } from "./status-projection.js";

/*
 * The decision for one user, pure: from the desired inputs, what the engine has, and the facts of the fleet
 * (port block, start backoff) to a plan. The loop and the `plan` command both call it and nothing else, so what
 * `plan` prints is what `run` does. Everything here is data in, data out: no engine, no files, no clock.
 */

/** Where the user's desired state stands, as the shell found it. */
export type DesiredSource =
  /** The user's directory is gone: everything it owned goes (data volumes stay). */
  | { kind: "deleted" }
  /** Nothing may change: the inputs are unusable and there is no last good state, or the intent is unknown. */
  | { kind: "hold"; generation: string; stalled: Stalled }
  | {
      kind: "desired";
      generation: string;
      suspended: boolean;
      /** Everything computeDesiredUser needs except what the decision derives (port block, current ports). */
      input: Omit<DesiredUserInput, "portBlock" | "currentPorts">;
      /** The user's port block; undefined when the pool has none left. */
      portBlock: PortRange | undefined;
      /** Without a block: what the status says (the pool, how to grow it); see NetworkAllocator. */
      portPoolExhausted?: string;
    };

export interface DecisionInput {
  userId: string;
  source: DesiredSource;
  observed: ActualUser;
  context?: PlanContext;
  /** computeDesiredUser, or a memoised version of it (same input, same output). */
  computeDesired?: (input: DesiredUserInput) => DesiredUser;
  /** Scale to zero (README, "Idle servers"); absent: no server idles, marks or not. */
  idle?: IdleInputs;
}

export type Decision =
  | { kind: "deleted"; plan: UserPlan }
  | { kind: "hold"; generation: string; stalled: Stalled }
  | {
      kind: "converge";
      generation: string;
      suspended: boolean;
      desired: DesiredUser;
      portBlock: PortRange;
      /** What a run does now. */
      plan: UserPlan;
      /** What a run would do but holds back (a suspended user's steps). */
      held: PlanStep[];
      /** Idle servers, idle stops, wakes and refusals (when idle inputs were given). */
      idle?: IdleDecision;
    };

export function decideUser(input: DecisionInput): Decision {
  const { source, userId, observed } = input;
  const context = input.context ?? {};
  switch (source.kind) {
    case "deleted":
      return { kind: "deleted", plan: planUser(userId, undefined, observed, context) };
    case "hold":
      return { kind: "hold", generation: source.generation, stalled: source.stalled };
    case "desired": {
      if (!source.portBlock) {
        return {
          kind: "hold",
          generation: source.generation,
          stalled: {
            reason: "PortPoolExhausted",
            message: source.portPoolExhausted ?? "no free port block left in the port range",
          },
        };
      }
      const compute = input.computeDesired ?? computeDesiredUser;
      const idleBefore = input.idle ? idleBeforeDecision(observed, input.idle.marks) : undefined;
      const desired = compute({
        ...source.input,
        portBlock: source.portBlock,
        currentPorts: currentPorts(observed),
        existingVolumes: existingVolumes(observed),
        ...(idleBefore && idleBefore.size > 0 ? { idleServers: idleBefore } : {}),
      });
      // A suspended user's servers are left exactly as they are: nothing idles or wakes either.
      const idle =
        input.idle && idleBefore && !source.suspended
          ? decideIdle(desired, observed, input.idle, idleBefore)
          : undefined;
      const plan = planUser(userId, desired, observed, idle ? { ...context, idle } : context);
      if (source.suspended) {
        return {
          kind: "converge",
          generation: source.generation,
          suspended: true,
          desired,
          portBlock: source.portBlock,
          plan: { userId, steps: [], waits: [] },
          held: plan.steps,
        };
      }
      return {
        kind: "converge",
        generation: source.generation,
        suspended: false,
        desired,
        portBlock: source.portBlock,
        plan,
        held: [],
        ...(idle ? { idle } : {}),
      };
    }
  }
}

/** Host ports the user's containers hold, by server id (from their labels; the first container wins). */
export function currentPorts(observed: ActualUser): Map<string, number> {
  const ports = new Map<string, number>();
  for (const c of observed.containers) {
    const serverId = c.labels[LABELS.serverId];
    const port = Number(c.labels[LABELS.hostPort]);
    if (serverId !== undefined && Number.isInteger(port) && !ports.has(serverId)) ports.set(serverId, port);
  }
  return ports;
}

/**
 * The user's volumes by what they hold (area and path labels) -> name. When two hold the same, the one not named
 * by today's scheme (an older volume, with the data) wins, then the first by name.
 */
export function existingVolumes(observed: ActualUser): Map<string, string> {
  const found = new Map<string, string[]>();
  for (const v of observed.volumes) {
    const area = v.labels[LABELS.volumeArea];
    const path = v.labels[LABELS.volumePath];
    if (area === undefined || path === undefined) continue;
    const key = volumeKey(area, path);
    found.set(key, [...(found.get(key) ?? []), v.name]);
  }
  const out = new Map<string, string>();
  for (const [key, names] of found) {
    const current = /-[0-9a-f]{32}$/;
    const sorted = [...names].sort(
      (a, b) => Number(current.test(a)) - Number(current.test(b)) || (a < b ? -1 : 1),
    );
    out.set(key, sorted[0]!);
  }
  return out;
}
