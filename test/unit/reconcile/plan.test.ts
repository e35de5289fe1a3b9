import { describe, expect, it } from "vitest";
import type { DesiredUser, RunOutcome } from "../../../src/desired/types.js";
import { computeDesiredUser } from "../../../src/desired/user-desired.js";
import type {
  ActualContainer,
  ActualNetwork,
  ActualVolume,
  ContainerState,
} from "../../../src/docker/runtime.js";
import { LABELS } from "../../../src/labels.js";
import {
  type ActualUser,
  type PlanStep,
  changedFields,
  describeStep,
  isEmptyPlan,
  planUser,
} from "../../../src/reconcile/plan.js";
import { type InputOptions, desiredInput, server } from "../desired/fixtures.js";

const NETWORK_ID = "net-1";

function desiredOf(options: InputOptions = {}): DesiredUser {
  return computeDesiredUser(desiredInput(options));
}

function runOf(desired: DesiredUser, serverId: string): RunOutcome {
  const outcome = desired.servers.find((s) => s.serverId === serverId);
  if (outcome?.kind !== "run") throw new Error(`${serverId} is not run`);
  return outcome;
}

let nextId = 0;
/** The container the apply step would have created for `outcome`. */
function containerFor(
  outcome: RunOutcome,
  overrides: Partial<Omit<ActualContainer, "labels">> & { labels?: Record<string, string> } = {},
): ActualContainer {
  nextId += 1;
  return {
    id: `c${nextId}`,
    name: outcome.spec.name,
    image: outcome.spec.image,
    state: "running",
    networkIds: [NETWORK_ID],
    created: 1_700_000_000 + nextId,
    ...overrides,
    labels: { ...outcome.spec.labels, ...overrides.labels },
  };
}

function networkFor(desired: DesiredUser, id = NETWORK_ID): ActualNetwork {
  return { id, name: desired.network.name, labels: {}, subnets: ["172.20.0.0/24"] };
}

function volumesFor(desired: DesiredUser): ActualVolume[] {
  return desired.volumes.map((v) => ({ name: v.name, labels: v.labels }));
}

/** What the engine holds right after a successful apply of `desired`. */
function converged(desired: DesiredUser): ActualUser {
  return {
    containers: desired.servers.filter((s): s is RunOutcome => s.kind === "run").map((o) => containerFor(o)),
    networks: [networkFor(desired)],
    volumes: volumesFor(desired),
  };
}

/** Host ports by server id, read from the container labels as the reconciler does. */
function portsOf(actual: ActualUser): Map<string, number> {
  return new Map(
    actual.containers.map((c) => [c.labels[LABELS.serverId] ?? "", Number(c.labels[LABELS.hostPort])]),
  );
}

function summary(steps: readonly PlanStep[]): string[] {
  return steps.map((s) => {
    switch (s.kind) {
      case "createNetwork":
        return `createNetwork:${s.name}`;
      case "createVolume":
        return `createVolume:${s.volume.area}/${s.volume.subpath}`;
      case "removeNetwork":
        return `removeNetwork:${s.network.name}`;
      default:
        return `${s.kind}:${s.serverId}`;
    }
  });
}

const two = [server("a"), server("b")];

describe("planUser", () => {
  it("creates network, volumes and containers for a new user, network and volumes first", () => {
    const desired = desiredOf({ servers: two });
    const plan = planUser("alice", desired, { containers: [], networks: [], volumes: [] });
    expect(plan.userId).toBe("alice");
    expect(summary(plan.steps)).toEqual([
      "createNetwork:mcp-net-alice",
      ...desired.volumes.map((v) => `createVolume:${v.area}/${v.subpath}`),
      "createContainer:a",
      "createContainer:b",
    ]);
    expect(plan.steps[0]).toEqual({
      kind: "createNetwork",
      name: desired.network.name,
      bridgeName: desired.network.bridgeName,
      cause: "network missing",
    });
    const create = plan.steps.find((s) => s.kind === "createContainer" && s.serverId === "a");
    expect(create).toMatchObject({ outcome: runOf(desired, "a"), cause: "container missing" });
  });

  it("is empty when everything matches (idempotence)", () => {
    const desired = desiredOf({ servers: two });
    const plan = planUser("alice", desired, converged(desired));
    expect(plan.steps).toEqual([]);
    expect(isEmptyPlan(plan)).toBe(true);
  });

  it("stays empty for paused or restarting containers and after a portal version bump", () => {
    const desired = desiredOf({ servers: two, portalVersion: "1.0.0" });
    const actual = converged(desired);
    actual.containers[0] = { ...actual.containers[0]!, state: "paused" };
    actual.containers[1] = { ...actual.containers[1]!, state: "restarting" };
    expect(planUser("alice", desiredOf({ servers: two, portalVersion: "2.0.0" }), actual).steps).toEqual([]);
  });

  it("creates only what is missing: one container, the network, a volume", () => {
    const desired = desiredOf({ servers: two });
    const actual = converged(desired);
    actual.containers = actual.containers.filter((c) => c.labels[LABELS.serverId] !== "b");
    actual.volumes = actual.volumes.slice(1);
    actual.networks = [];
    const plan = planUser("alice", desired, actual);
    expect(summary(plan.steps)).toEqual([
      "createNetwork:mcp-net-alice",
      `createVolume:${desired.volumes[0]!.area}/${desired.volumes[0]!.subpath}`,
      "createContainer:b",
    ]);
  });

  it("replaces a container whose spec hash differs, naming the changed fields", () => {
    const old = desiredOf({ servers: [server("a", { environment: { LOG_LEVEL: "info" } })] });
    const desired = desiredOf({
      servers: [server("a", { tag: "v2", environment: { LOG_LEVEL: "debug" } })],
    });
    const actual = converged(old);
    const plan = planUser("alice", desired, actual);
    expect(plan.steps).toHaveLength(1);
    const step = plan.steps[0]!;
    expect(step.kind).toBe("replaceContainer");
    if (step.kind !== "replaceContainer") return;
    expect(step.old).toBe(actual.containers[0]);
    expect(step.outcome).toBe(runOf(desired, "a"));
    expect(step.cause).toBe("spec changed: env LOG_LEVEL, image");
  });

  it("names an env var that was removed or added", () => {
    const old = desiredOf({ servers: [server("a", { environment: { OLD: "1" } })] });
    const desired = desiredOf({ servers: [server("a", { environment: { NEW: "1" } })] });
    const step = planUser("alice", desired, converged(old)).steps[0];
    expect(step?.cause).toBe("spec changed: env NEW, env OLD");
  });

  it("still replaces, with a generic cause, when the spec_fields label is missing or garbage", () => {
    const old = desiredOf({ servers: [server("a", { tag: "v1" })] });
    const desired = desiredOf({ servers: [server("a", { tag: "v2" })] });
    for (const fields of ["", "{not json"]) {
      const container = containerFor(runOf(old, "a"), { labels: { [LABELS.specFields]: fields } });
      const plan = planUser("alice", desired, { ...converged(desired), containers: [container] });
      expect(plan.steps.map((s) => [s.kind, s.cause])).toEqual([["replaceContainer", "spec changed"]]);
    }
  });

  it("replaces a dead container and one attached to another network", () => {
    const desired = desiredOf({ servers: two });
    const actual = converged(desired);
    actual.containers[0] = { ...actual.containers[0]!, state: "dead" };
    actual.containers[1] = { ...actual.containers[1]!, networkIds: ["some-other-network"] };
    const plan = planUser("alice", desired, actual);
    expect(plan.steps.map((s) => [s.kind, s.cause])).toEqual([
      ["replaceContainer", "container dead"],
      ["replaceContainer", "container is not attached to the user's network"],
    ]);
  });

  it.each<ContainerState>(["exited", "created"])("starts a %s container", (state) => {
    const desired = desiredOf({ servers: two });
    const actual = converged(desired);
    actual.containers[1] = { ...actual.containers[1]!, state };
    const plan = planUser("alice", desired, actual);
    expect(plan.steps).toHaveLength(1);
    expect(plan.steps[0]).toMatchObject({
      kind: "startContainer",
      serverId: "b",
      container: actual.containers[1],
      cause: `container ${state}`,
    });
  });

  it("renames a container left under its temporary name by an interrupted replace", () => {
    const desired = desiredOf({ servers: [server("a")] });
    const actual = converged(desired);
    const final = actual.containers[0]!.name;
    actual.containers[0] = { ...actual.containers[0]!, name: `${final}-next-12345678` };
    const plan = planUser("alice", desired, actual);
    expect(plan.steps).toEqual([
      {
        kind: "renameContainer",
        serverId: "a",
        container: actual.containers[0],
        name: final,
        cause: "finish an interrupted replace",
      },
    ]);
  });

  it("after a replace interrupted before the old one went: removes the old, then renames the new", () => {
    const old = desiredOf({ servers: [server("a", { tag: "v1" })] });
    const desired = desiredOf({ servers: [server("a", { tag: "v2" })] });
    const oldContainer = containerFor(runOf(old, "a"));
    const next = containerFor(runOf(desired, "a"), {
      name: `${runOf(desired, "a").spec.name}-next-abcdef12`,
      state: "created",
    });
    const plan = planUser("alice", desired, { ...converged(desired), containers: [oldContainer, next] });
    expect(summary(plan.steps)).toEqual(["removeContainer:a", "renameContainer:a", "startContainer:a"]);
    expect(plan.steps[0]).toMatchObject({ container: oldContainer, prune: false });
    expect(plan.steps[1]).toMatchObject({ container: next, name: runOf(desired, "a").spec.name });
  });

  it("keeps the best of duplicate containers and removes the rest", () => {
    const old = desiredOf({ servers: [server("a", { tag: "v1" })] });
    const desired = desiredOf({ servers: [server("a", { tag: "v2" })] });
    const outdated = containerFor(runOf(old, "a"), { created: 3000 });
    const stoppedCurrent = containerFor(runOf(desired, "a"), { state: "exited", created: 1000 });
    const runningCurrent = containerFor(runOf(desired, "a"), { created: 2000 });
    const deadCurrent = containerFor(runOf(desired, "a"), { state: "dead", created: 4000 });
    const plan = planUser("alice", desired, {
      ...converged(desired),
      containers: [outdated, stoppedCurrent, deadCurrent, runningCurrent],
    });
    const removed = plan.steps.filter((s) => s.kind === "removeContainer").map((s) => s.container.id);
    expect(removed.sort()).toEqual([outdated.id, stoppedCurrent.id, deadCurrent.id].sort());
    expect(plan.steps.every((s) => s.kind === "removeContainer")).toBe(true);
    expect(
      plan.steps.every((s) => s.kind === "removeContainer" && !s.prune && /duplicate/.test(s.cause)),
    ).toBe(true);
  });

  it("among equally good duplicates keeps the newest", () => {
    const desired = desiredOf({ servers: [server("a")] });
    const older = containerFor(runOf(desired, "a"), { created: 100 });
    const newer = containerFor(runOf(desired, "a"), { created: 200, name: "mcp-some-other-name" });
    const plan = planUser("alice", desired, { ...converged(desired), containers: [older, newer] });
    expect(summary(plan.steps)).toEqual(["removeContainer:a", "renameContainer:a"]);
    expect(plan.steps[0]).toMatchObject({ container: older });
    expect(plan.steps[1]).toMatchObject({ container: newer });
  });

  it("leaves the containers of a server blocked with keepExisting alone", () => {
    const good = desiredOf({ servers: [server("gh", { required_secrets: ["T"] })], secrets: { T: "v" } });
    const actual = converged(good);
    const unreadable = desiredOf({
      servers: [server("gh", { required_secrets: ["T"] })],
      secrets: { T: "v" },
      undecryptable: ["T"],
    });
    expect(unreadable.servers[0]).toMatchObject({ kind: "blocked", keepExisting: true });
    expect(planUser("alice", unreadable, actual).steps).toEqual([]);
  });

  it("removes, as a prune, the containers of a server blocked without keepExisting", () => {
    const good = desiredOf({ servers: [server("gh", { required_secrets: ["T"] })], secrets: { T: "v" } });
    const actual = converged(good);
    const removed = desiredOf({ servers: [server("gh", { required_secrets: ["T"] })] });
    const plan = planUser("alice", removed, actual);
    expect(plan.steps).toHaveLength(1);
    expect(plan.steps[0]).toMatchObject({
      kind: "removeContainer",
      serverId: "gh",
      container: actual.containers[0],
      prune: true,
    });
    expect(plan.steps[0]!.cause).toMatch(/^MissingSecret: /);
  });

  it("does not create a container for a blocked server", () => {
    const desired = desiredOf({ servers: [server("gh", { required_secrets: ["T"] })] });
    const plan = planUser("alice", desired, { containers: [], networks: [], volumes: [] });
    expect(summary(plan.steps)).toEqual(["createNetwork:mcp-net-alice"]);
  });

  it("removes, as a prune, containers of servers no longer enabled", () => {
    const before = desiredOf({ servers: [server("a"), server("b"), server("c")] });
    const actual = converged(before);
    // b keeps its host port, as the reconciler passes the ports from the container labels
    const after = desiredOf({
      servers: [server("a"), server("b"), server("c")],
      enabled: { servers: [{ id: "b" }] },
      currentPorts: portsOf(actual),
    });
    const plan = planUser("alice", after, actual);
    expect(summary(plan.steps)).toEqual(["removeContainer:a", "removeContainer:c"]);
    for (const step of plan.steps)
      expect(step).toMatchObject({ kind: "removeContainer", prune: true, cause: "server no longer enabled" });
  });

  it("ignores containers that carry no server label", () => {
    const desired = desiredOf({ servers: [server("a")] });
    const actual = converged(desired);
    const { [LABELS.serverId]: _dropped, ...labels } = actual.containers[0]!.labels;
    actual.containers.push({ ...actual.containers[0]!, id: "stray", labels });
    expect(planUser("alice", desired, actual).steps).toEqual([]);
  });

  it("removes containers and network but never volumes when the user is gone", () => {
    const before = desiredOf({ servers: two });
    const actual = converged(before);
    const plan = planUser("alice", undefined, actual);
    expect(summary(plan.steps)).toEqual([
      "removeContainer:a",
      "removeContainer:b",
      "removeNetwork:mcp-net-alice",
    ]);
    for (const step of plan.steps) expect(step.cause).toBe("user no longer exists");
    expect(plan.steps.filter((s) => s.kind === "removeContainer").every((s) => s.prune)).toBe(true);
    expect(JSON.stringify(plan.steps)).not.toContain("Volume");
  });

  it("does nothing for a gone user who owns nothing", () => {
    expect(planUser("ghost", undefined, { containers: [], networks: [], volumes: [] }).steps).toEqual([]);
  });

  it("orders removals before network, volumes, replaces, creates and fixes", () => {
    const old = desiredOf({
      servers: [server("a"), server("b", { tag: "v1" }), server("c"), server("gone")],
    });
    const actual = converged(old);
    actual.networks = [];
    actual.volumes = [];
    actual.containers = actual.containers
      .filter((c) => c.labels[LABELS.serverId] !== "c")
      .map((c) => (c.labels[LABELS.serverId] === "a" ? { ...c, state: "exited" as const } : c));
    const desired = desiredOf({
      servers: [server("a"), server("b", { tag: "v2" }), server("c"), server("gone")],
      enabled: { servers: [{ id: "a" }, { id: "b" }, { id: "c" }] },
    });
    const kindsInOrder = planUser("alice", desired, actual).steps.map((s) => s.kind);
    expect(kindsInOrder).toEqual([
      "removeContainer",
      "createNetwork",
      ...desired.volumes.map(() => "createVolume"),
      "replaceContainer",
      "createContainer",
      "startContainer",
    ]);
  });

  it("removes extra containers before anything is created for a server", () => {
    const desired = desiredOf({ servers: [server("a", { tag: "v2" })] });
    const outdated = desiredOf({ servers: [server("a", { tag: "v1" })] });
    const plan = planUser("alice", desired, {
      ...converged(desired),
      containers: [
        containerFor(runOf(outdated, "a")),
        containerFor(runOf(outdated, "a"), { state: "exited" }),
      ],
    });
    expect(summary(plan.steps)).toEqual(["removeContainer:a", "replaceContainer:a"]);
    const kept = plan.steps[1]!.kind === "replaceContainer" ? plan.steps[1]!.old : undefined;
    expect(kept?.state).toBe("running");
  });

  it("is pure: planning twice gives the same plan and does not touch its inputs", () => {
    const desired = desiredOf({ servers: two });
    const actual = converged(desired);
    actual.containers[0] = { ...actual.containers[0]!, state: "exited" };
    const snapshot = JSON.stringify({ desired, actual });
    const first = planUser("alice", desired, actual);
    const second = planUser("alice", desired, actual);
    expect(second).toEqual(first);
    expect(JSON.stringify({ desired, actual })).toBe(snapshot);
  });
});

describe("changedFields", () => {
  it("lists fields whose digests differ, env keys as `env NAME`, sorted", () => {
    const recorded = JSON.stringify({ image: "1", env: "x", "env.A": "1", "env.B": "1", labels: "l" });
    expect(
      changedFields(recorded, { image: "2", env: "y", "env.A": "1", "env.C": "1", labels: "m" }),
    ).toEqual(["env B", "env C", "image"]);
  });

  it("returns nothing when there is no usable record", () => {
    expect(changedFields(undefined, { image: "1" })).toEqual([]);
    expect(changedFields("not json", { image: "1" })).toEqual([]);
  });
});

describe("describeStep", () => {
  it("describes every kind of step with its cause", () => {
    const desired = desiredOf({ servers: [server("a")] });
    const outcome = runOf(desired, "a");
    const container = containerFor(outcome);
    const network = networkFor(desired);
    const volume = desired.volumes[0]!;
    const steps: PlanStep[] = [
      { kind: "createNetwork", name: "n", bridgeName: "mcpbr-x", cause: "c1" },
      { kind: "createVolume", volume, cause: "c2" },
      { kind: "createContainer", serverId: "a", outcome, cause: "c3" },
      { kind: "replaceContainer", serverId: "a", outcome, old: container, cause: "c4" },
      { kind: "renameContainer", serverId: "a", container, name: "new", cause: "c5" },
      { kind: "startContainer", serverId: "a", container, cause: "c6" },
      { kind: "removeContainer", serverId: "a", container, cause: "c7", prune: true },
      { kind: "removeNetwork", network, cause: "c8" },
    ];
    expect(steps.map(describeStep)).toEqual([
      "create network n (c1)",
      `create volume ${volume.name} (c2)`,
      `create a as ${outcome.spec.name} (c3)`,
      `replace a ${container.name} (c4)`,
      `rename a ${container.name} -> new (c5)`,
      `start a ${container.name} (c6)`,
      `remove a ${container.name} (c7)`,
      `remove network ${network.name} (c8)`,
    ]);
  });
});
