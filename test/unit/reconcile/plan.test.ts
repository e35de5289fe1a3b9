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
  isPruneStep,
  planUser,
  prunedContainerIds,
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
      "pullImage:a",
      "createContainer:a",
      "startContainer:a",
      "pullImage:b",
      "createContainer:b",
      "startContainer:b",
    ]);
    expect(plan.steps[0]).toEqual({
      kind: "createNetwork",
      name: desired.network.name,
      bridgeName: desired.network.bridgeName,
      cause: "network missing",
    });
    const create = plan.steps.find((s) => s.kind === "createContainer" && s.serverId === "a");
    expect(create).toMatchObject({
      outcome: runOf(desired, "a"),
      name: runOf(desired, "a").spec.name,
      cause: "container missing",
    });
    expect(plan.steps.find((s) => s.kind === "startContainer" && s.serverId === "a")).toMatchObject({
      container: { createdFor: "a", name: runOf(desired, "a").spec.name },
    });
  });

  it("is empty when everything matches (idempotence)", () => {
    const desired = desiredOf({ servers: two });
    const plan = planUser("alice", desired, converged(desired));
    expect(plan.steps).toEqual([]);
    expect(plan.waits).toEqual([]);
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
      "pullImage:b",
      "createContainer:b",
      "startContainer:b",
    ]);
  });

  it("replaces a container whose spec hash differs, naming the changed fields", () => {
    const old = desiredOf({ servers: [server("a", { environment: { LOG_LEVEL: "info" } })] });
    const desired = desiredOf({
      servers: [server("a", { tag: "v2", environment: { LOG_LEVEL: "debug" } })],
    });
    const actual = converged(old);
    const plan = planUser("alice", desired, actual);
    const old_ = actual.containers[0]!;
    const final = runOf(desired, "a").spec.name;
    const temp = `${final}-next-${runOf(desired, "a").specHash.slice(0, 8)}`;
    const cause = "replace: spec changed: env LOG_LEVEL, image";
    // The replace protocol, one engine call per step: create aside, stop and remove the old, take its name, start.
    expect(plan.steps).toEqual([
      { kind: "pullImage", serverId: "a", image: runOf(desired, "a").spec.image, cause },
      {
        kind: "createContainer",
        serverId: "a",
        outcome: runOf(desired, "a"),
        name: temp,
        cause,
        replacing: { id: old_.id, name: old_.name, changedFields: ["env LOG_LEVEL", "image"] },
      },
      {
        kind: "stopContainer",
        serverId: "a",
        container: { id: old_.id, name: old_.name },
        cause,
        prune: false,
      },
      {
        kind: "removeContainer",
        serverId: "a",
        container: { id: old_.id, name: old_.name },
        cause,
        prune: false,
      },
      {
        kind: "renameContainer",
        serverId: "a",
        container: { createdFor: "a", name: temp },
        to: final,
        cause: "take over the final name",
      },
      {
        kind: "startContainer",
        serverId: "a",
        container: { createdFor: "a", name: final },
        cause,
        drift: "spec_changed",
      },
    ]);
  });

  it("with in-place updates, a changed spec is one updateContainer step naming the version and fields", () => {
    const old = desiredOf({ servers: [server("a", { environment: { LOG_LEVEL: "info" } })] });
    const desired = desiredOf({ servers: [server("a", { tag: "v2", environment: { LOG_LEVEL: "debug" } })] });
    const actual = converged(old);
    actual.containers[0] = { ...actual.containers[0]!, version: 7, placement: "n1" };
    const c = actual.containers[0];
    const plan = planUser("alice", desired, actual, { inPlaceUpdate: true, placement: "n1" });
    expect(plan.steps).toEqual([
      { kind: "pullImage", serverId: "a", image: runOf(desired, "a").spec.image, cause: "update" },
      {
        kind: "updateContainer",
        serverId: "a",
        container: { id: c.id, name: c.name, version: 7 },
        outcome: runOf(desired, "a"),
        placement: "n1",
        cause: "update: spec changed: env LOG_LEVEL, image",
        changedFields: ["env LOG_LEVEL", "image"],
        drift: "spec_changed",
      },
    ]);
  });

  it("with in-place updates, a workload pinned elsewhere is moved by an update; placement alone is no spec change", () => {
    const desired = desiredOf({ servers: [server("a")] });
    const actual = converged(desired);
    actual.containers[0] = { ...actual.containers[0]!, version: 3, placement: "n1" };
    expect(planUser("alice", desired, actual, { inPlaceUpdate: true, placement: "n1" }).steps).toEqual([]);
    const moved = planUser("alice", desired, actual, { inPlaceUpdate: true, placement: "n2" }).steps;
    expect(moved.map((s) => s.kind)).toEqual(["pullImage", "updateContainer"]);
    expect(moved[1]).toMatchObject({
      placement: "n2",
      cause: "update: placed on n2",
      drift: "misplaced_container",
      changedFields: [],
    });
    // New workloads are created on the user's node.
    const fresh = planUser(
      "alice",
      desired,
      { containers: [], networks: actual.networks, volumes: actual.volumes },
      {
        inPlaceUpdate: true,
        placement: "n2",
      },
    ).steps;
    expect(fresh.find((s) => s.kind === "createContainer")).toMatchObject({ placement: "n2" });
  });

  it("names an env var that was removed or added", () => {
    const old = desiredOf({ servers: [server("a", { environment: { OLD: "1" } })] });
    const desired = desiredOf({ servers: [server("a", { environment: { NEW: "1" } })] });
    const step = planUser("alice", desired, converged(old)).steps[0];
    expect(step?.cause).toBe("replace: spec changed: env NEW, env OLD");
  });

  it("still replaces, with a generic cause, when the spec_fields label is missing or garbage", () => {
    const old = desiredOf({ servers: [server("a", { tag: "v1" })] });
    const desired = desiredOf({ servers: [server("a", { tag: "v2" })] });
    for (const fields of ["", "{not json"]) {
      const container = containerFor(runOf(old, "a"), { labels: { [LABELS.specFields]: fields } });
      const plan = planUser("alice", desired, { ...converged(desired), containers: [container] });
      expect(plan.steps.filter((s) => s.kind === "createContainer").map((s) => s.cause)).toEqual([
        "replace: spec changed",
      ]);
    }
  });

  it("replaces a dead container and one attached to another network", () => {
    const desired = desiredOf({ servers: two });
    const actual = converged(desired);
    actual.containers[0] = { ...actual.containers[0]!, state: "dead" };
    actual.containers[1] = { ...actual.containers[1]!, networkIds: ["some-other-network"] };
    const plan = planUser("alice", desired, actual);
    expect(plan.steps.filter((s) => s.kind === "createContainer").map((s) => [s.serverId, s.cause])).toEqual([
      ["a", "replace: container dead"],
      ["b", "replace: container is not attached to the user's network"],
    ]);
    // A dead container is not stopped, only removed; the running one is stopped first.
    expect(
      summary(plan.steps.filter((s) => s.kind === "stopContainer" || s.kind === "removeContainer")),
    ).toEqual(["removeContainer:a", "stopContainer:b", "removeContainer:b"]);
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
      container: { id: actual.containers[1].id },
      cause: `container ${state}`,
      drift: "stopped_container",
    });
  });

  it("holds back the start of a crash-looping container and says how long", () => {
    const desired = desiredOf({ servers: two });
    const actual = converged(desired);
    actual.containers[1] = { ...actual.containers[1]!, state: "exited" };
    const plan = planUser("alice", desired, actual, {
      startWaitMs: (id) => (id === actual.containers[1]!.id ? 20_000 : 0),
    });
    expect(plan.steps).toEqual([]);
    expect(plan.waits).toEqual([{ serverId: "b", container: actual.containers[1], waitMs: 20_000 }]);
  });

  it("counts a container removed behind our back as drift when re-creating it", () => {
    const desired = desiredOf({ servers: two });
    const actual = converged(desired);
    actual.containers = actual.containers.filter((c) => c.labels[LABELS.serverId] !== "b");
    const plan = planUser("alice", desired, actual, { hadContainer: new Set(["b"]) });
    expect(plan.steps.find((s) => s.kind === "createContainer")).toMatchObject({
      serverId: "b",
      drift: "missing_container",
    });
    const fresh = planUser("alice", desired, actual);
    expect(fresh.steps.find((s) => s.kind === "createContainer")).not.toHaveProperty("drift");
  });

  it("removes a network of the user that is not its own, after its containers", () => {
    const desired = desiredOf({ servers: two });
    const actual = converged(desired);
    const stray = { id: "net-old", name: "mcp-net-alice-old", labels: {}, subnets: ["172.20.9.0/24"] };
    actual.networks.push(stray);
    const plan = planUser("alice", desired, actual);
    expect(plan.steps).toEqual([
      {
        kind: "removeNetwork",
        network: stray,
        cause: "network not desired",
        prune: false,
        drift: "orphan_network",
      },
    ]);
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
        container: { id: actual.containers[0].id, name: actual.containers[0].name },
        to: final,
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
    expect(summary(plan.steps)).toEqual([
      "stopContainer:a",
      "removeContainer:a",
      "renameContainer:a",
      "startContainer:a",
    ]);
    expect(plan.steps[1]).toMatchObject({ container: { id: oldContainer.id }, prune: false });
    expect(plan.steps[2]).toMatchObject({ container: { id: next.id }, to: runOf(desired, "a").spec.name });
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
    const removed = plan.steps.filter((s) => s.kind === "removeContainer").map((s) => s.container.id!);
    expect(removed.sort()).toEqual([outdated.id, stoppedCurrent.id, deadCurrent.id].sort());
    expect(plan.steps.every((s) => s.kind === "removeContainer" || s.kind === "stopContainer")).toBe(true);
    expect(
      plan.steps.every(
        (s) =>
          (s.kind === "removeContainer" || s.kind === "stopContainer") &&
          !s.prune &&
          /duplicate/.test(s.cause),
      ),
    ).toBe(true);
    expect(prunedContainerIds(plan.steps)).toEqual([]);
  });

  it("among equally good duplicates keeps the newest", () => {
    const desired = desiredOf({ servers: [server("a")] });
    const older = containerFor(runOf(desired, "a"), { created: 100 });
    const newer = containerFor(runOf(desired, "a"), { created: 200, name: "mcp-some-other-name" });
    const plan = planUser("alice", desired, { ...converged(desired), containers: [older, newer] });
    expect(summary(plan.steps)).toEqual(["stopContainer:a", "removeContainer:a", "renameContainer:a"]);
    expect(plan.steps[1]).toMatchObject({ container: { id: older.id } });
    expect(plan.steps[2]).toMatchObject({ container: { id: newer.id } });
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
    expect(summary(plan.steps)).toEqual(["stopContainer:gh", "removeContainer:gh"]);
    expect(plan.steps[1]).toMatchObject({
      kind: "removeContainer",
      serverId: "gh",
      container: { id: actual.containers[0]!.id },
      prune: true,
    });
    expect(plan.steps[1]!.cause).toMatch(/^MissingSecret: /);
    expect(plan.steps.every(isPruneStep)).toBe(true);
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
    expect(summary(plan.steps)).toEqual([
      "stopContainer:a",
      "removeContainer:a",
      "stopContainer:c",
      "removeContainer:c",
    ]);
    for (const step of plan.steps)
      expect(step).toMatchObject({ prune: true, cause: "server no longer enabled" });
    expect(prunedContainerIds(plan.steps)).toHaveLength(2);
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
      "stopContainer:a",
      "removeContainer:a",
      "stopContainer:b",
      "removeContainer:b",
      "removeNetwork:mcp-net-alice",
    ]);
    for (const step of plan.steps) expect(step.cause).toBe("user no longer exists");
    expect(plan.steps.every(isPruneStep)).toBe(true);
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
      "stopContainer",
      "removeContainer",
      "createNetwork",
      ...desired.volumes.map(() => "createVolume"),
      // replace b
      "pullImage",
      "createContainer",
      "stopContainer",
      "removeContainer",
      "renameContainer",
      "startContainer",
      // create c
      "pullImage",
      "createContainer",
      "startContainer",
      // start a
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
    expect(summary(plan.steps)).toEqual([
      "removeContainer:a",
      "pullImage:a",
      "createContainer:a",
      "stopContainer:a",
      "removeContainer:a",
      "renameContainer:a",
      "startContainer:a",
    ]);
    // The exited duplicate goes first; the running one is the one replaced.
    const replaced = plan.steps.find((s) => s.kind === "createContainer")!;
    const running = plan.steps.find((s) => s.kind === "stopContainer")!;
    expect(replaced.kind === "createContainer" && replaced.replacing?.id).toBe(
      running.kind === "stopContainer" && running.container.id,
    );
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
  it("describes every kind of step with its server and cause", () => {
    const desired = desiredOf({ servers: [server("a")] });
    const outcome = runOf(desired, "a");
    const container = containerFor(outcome);
    const ref = { id: container.id, name: container.name };
    const network = networkFor(desired);
    const volume = desired.volumes[0]!;
    const steps: PlanStep[] = [
      { kind: "createNetwork", name: "n", bridgeName: "mcpbr-x", cause: "c1" },
      { kind: "createVolume", volume, cause: "c2" },
      { kind: "pullImage", serverId: "a", image: "mcp/a:latest", cause: "c3" },
      { kind: "createContainer", serverId: "a", outcome, name: outcome.spec.name, cause: "c4" },
      { kind: "renameContainer", serverId: "a", container: ref, to: "new", cause: "c5" },
      { kind: "startContainer", serverId: "a", container: ref, cause: "c6" },
      { kind: "stopContainer", serverId: "a", container: ref, cause: "c7", prune: true },
      { kind: "removeContainer", serverId: "a", container: ref, cause: "c8", prune: true },
      { kind: "removeNetwork", network, cause: "c9", prune: true },
    ];
    expect(steps.map(describeStep)).toEqual([
      "create network n (c1)",
      `create volume ${volume.name} (c2)`,
      "a: pull image mcp/a:latest if absent (c3)",
      `a: create container ${outcome.spec.name} (c4)`,
      `a: rename ${container.name} -> new (c5)`,
      `a: start ${container.name} (c6)`,
      `a: stop ${container.name} (c7)`,
      `a: remove ${container.name} (c8)`,
      `remove network ${network.name} (c9)`,
    ]);
  });
});
