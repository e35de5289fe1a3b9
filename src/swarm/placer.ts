import type { ActualNode } from "../docker/runtime.js";
import { LABELS } from "../labels.js";
import type { ActualUser } from "../reconcile/plan.js";
import { chooseNode, currentPlacement, isUsable } from "./placement.js";

/**
 * The controller's memory of where users are placed (as the allocator is for ports): the nodes as last listed,
 * and each user's node with its number of workloads, so that decisions made one after the other (a cold start
 * reconciles users in parallel) spread by load. Rebuilt from every full listing; the decision itself is the
 * pure `chooseNode`.
 */
export class Placer {
  private nodes: ActualNode[] = [];
  private readonly assigned = new Map<string, { node: string; workloads: number }>();

  setNodes(nodes: readonly ActualNode[]): void {
    this.nodes = [...nodes];
  }

  get knownNodes(): readonly ActualNode[] {
    return this.nodes;
  }

  /** From a full listing: every user's current node, as its workloads' constraints say. */
  rebuild(slices: ReadonlyMap<string, ActualUser>): void {
    this.assigned.clear();
    for (const [userId, observed] of slices) {
      const node = currentPlacement(observed.containers);
      if (node !== undefined) this.assigned.set(userId, { node, workloads: observed.containers.length });
    }
  }

  /** The node for this user's workloads now (undefined: no node known yet), remembered for the next decisions. */
  nodeFor(userId: string, observed: ActualUser): string | undefined {
    const node = this.peekNodeFor(userId, observed);
    const workloads = Math.max(1, observed.containers.filter((c) => c.labels[LABELS.serverId]).length);
    if (node !== undefined) this.assigned.set(userId, { node, workloads });
    return node;
  }

  /** The same decision as `nodeFor`, remembering nothing (a resync's "has anything changed?"). */
  peekNodeFor(userId: string, observed: ActualUser): string | undefined {
    const current = currentPlacement(observed.containers) ?? this.assigned.get(userId)?.node;
    const load = new Map<string, number>();
    for (const [other, a] of this.assigned) {
      if (other !== userId) load.set(a.node, (load.get(a.node) ?? 0) + a.workloads);
    }
    return chooseNode({ userId, current, nodes: this.nodes, load });
  }

  forget(userId: string): void {
    this.assigned.delete(userId);
  }

  /** Users pinned to a node the scheduler may no longer use (drained, paused, down): they must move. */
  usersOnUnusableNodes(): string[] {
    const usable = new Set(this.nodes.filter(isUsable).map((n) => n.id));
    const out: string[] = [];
    for (const [userId, a] of this.assigned) if (!usable.has(a.node)) out.push(userId);
    return out;
  }
}
