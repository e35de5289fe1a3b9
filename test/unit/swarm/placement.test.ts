import { describe, expect, it } from "vitest";
import type { ActualNode } from "../../../src/docker/runtime.js";
import { chooseNode, currentPlacement, isUsable } from "../../../src/swarm/placement.js";
import { Placer } from "../../../src/swarm/placer.js";
import { LABELS } from "../../../src/labels.js";

const node = (id: string, extra: Partial<ActualNode> = {}): ActualNode => ({
  id,
  hostname: id,
  addr: "",
  state: "ready",
  availability: "active",
  role: "worker",
  ...extra,
});

describe("chooseNode", () => {
  it("keeps a user where it is while that node is usable, whatever the load", () => {
    const load = new Map([["a", 50]]);
    expect(chooseNode({ userId: "u", current: "a", nodes: [node("a"), node("b")], load })).toBe("a");
  });

  it("moves a user off a drained, paused or down node to the least loaded usable one", () => {
    const nodes = [node("a", { availability: "drain" }), node("b"), node("c")];
    const load = new Map([
      ["b", 4],
      ["c", 1],
    ]);
    expect(chooseNode({ userId: "u", current: "a", nodes, load })).toBe("c");
    expect(
      chooseNode({ userId: "u", current: "b", nodes: [node("b", { state: "down" }), node("c")], load }),
    ).toBe("c");
    expect(isUsable(node("x", { availability: "pause" }))).toBe(false);
  });

  it("keeps the current pin when no node is usable, and has none for a new user then", () => {
    const nodes = [node("a", { state: "down" })];
    expect(chooseNode({ userId: "u", current: "a", nodes, load: new Map() })).toBe("a");
    expect(chooseNode({ userId: "u", current: undefined, nodes, load: new Map() })).toBeUndefined();
  });

  it("spreads users of equal load over the nodes (ties broken per user, not always the first node)", () => {
    const nodes = [node("a"), node("b"), node("c")];
    const picks = new Set<string | undefined>();
    for (let i = 0; i < 30; i++)
      picks.add(chooseNode({ userId: `user${i}`, current: undefined, nodes, load: new Map() }));
    expect(picks.size).toBe(3);
  });
});

describe("currentPlacement and the Placer", () => {
  it("names the node most workloads are pinned to", () => {
    expect(currentPlacement([{ placement: "b" }, { placement: "a" }, { placement: "b" }, {}])).toBe("b");
    expect(currentPlacement([{}, {}])).toBeUndefined();
  });

  it("spreads a cold start by the load of the users placed before, and lists users on unusable nodes", () => {
    const placer = new Placer();
    placer.setNodes([node("a"), node("b")]);
    const empty = { containers: [], networks: [], volumes: [] };
    const first = placer.nodeFor("u1", empty);
    const second = placer.nodeFor("u2", empty);
    expect(new Set([first, second])).toEqual(new Set(["a", "b"]));
    placer.setNodes([node("a", { availability: "drain" }), node("b")]);
    expect(placer.usersOnUnusableNodes()).toEqual([first === "a" ? "u1" : "u2"]);
    // From a listing: the constraint on the services is the truth.
    placer.rebuild(
      new Map([
        [
          "u3",
          {
            containers: [
              {
                id: "s",
                name: "s",
                image: "i",
                state: "running" as const,
                labels: { [LABELS.serverId]: "x" },
                networkIds: [],
                created: 0,
                placement: "b",
              },
            ],
            networks: [],
            volumes: [],
          },
        ],
      ]),
    );
    expect(placer.usersOnUnusableNodes()).toEqual([]);
  });
});
