import type { ActualNode } from "../docker/runtime.js";
import { sha256Hex } from "../util/canonical-json.js";

/*
 * Where a user's servers run on a Swarm, pure: all of a user's servers together on one node (they share the
 * user's overlay and its volumes), users spread over the nodes by load. The controller decides and pins each
 * service with a placement constraint; Swarm never moves a constrained task by itself, so when the node is
 * drained or fails, the next decision picks another one and the services are updated in place. Placement is not
 * part of a spec or its hash: moving a user changes no spec.
 */

/** The scheduler may put tasks on it: ready and active (not paused, not drained). */
export function isUsable(node: ActualNode): boolean {
  return node.state === "ready" && node.availability === "active";
}

export interface PlacementInput {
  userId: string;
  /** The node the user's workloads are pinned to now, if any. */
  current: string | undefined;
  nodes: readonly ActualNode[];
  /** Workloads pinned to each node (by node id), the user's own excluded. */
  load: ReadonlyMap<string, number>;
}

/**
 * The node for the user: where it is while that node is usable (a move restarts every server of the user), else
 * the usable node with the least load; ties go to the node ranked first for this user by a hash of both ids
 * (rendezvous hashing), so users with equal loads spread instead of piling onto the first node. Undefined when
 * no node is usable: then nothing moves (the current pin stays).
 */
export function chooseNode(input: PlacementInput): string | undefined {
  const usable = input.nodes.filter(isUsable);
  if (input.current !== undefined && usable.some((n) => n.id === input.current)) return input.current;
  if (usable.length === 0) return input.current;
  const rank = (node: ActualNode) => sha256Hex(`${input.userId}\u0000${node.id}`);
  return [...usable].sort(
    (a, b) => (input.load.get(a.id) ?? 0) - (input.load.get(b.id) ?? 0) || (rank(a) < rank(b) ? -1 : 1),
  )[0]!.id;
}

/** The node a user's workloads are pinned to: the one most of them name (ties: the smallest id), if any. */
export function currentPlacement(
  workloads: readonly { placement?: string | undefined }[],
): string | undefined {
  const counts = new Map<string, number>();
  for (const w of workloads)
    if (w.placement !== undefined) counts.set(w.placement, (counts.get(w.placement) ?? 0) + 1);
  let best: string | undefined;
  for (const [node, n] of counts) {
    const bestCount = best === undefined ? -1 : counts.get(best)!;
    if (n > bestCount || (n === bestCount && node < best!)) best = node;
  }
  return best;
}
