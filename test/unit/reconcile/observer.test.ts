import { describe, expect, it } from "vitest";
import type { ActualContainer, ActualNetwork } from "../../../src/docker/runtime.js";
import { LABELS, ownerLabels } from "../../../src/labels.js";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import { Observer, fingerprintOf, sameObservation } from "../../../src/reconcile/observer.js";
import type { ActualUser } from "../../../src/reconcile/plan.js";

function container(overrides: Partial<ActualContainer> = {}): ActualContainer {
  return {
    id: "c1",
    name: "mcp-alice-s1",
    image: "mcp/s1:1",
    state: "running",
    labels: {
      [LABELS.userId]: "alice",
      [LABELS.serverId]: "s1",
      [LABELS.specHash]: "h1",
      [LABELS.hostPort]: "20000",
    },
    networkIds: ["n1"],
    created: 1,
    ...overrides,
  };
}

function network(overrides: Partial<ActualNetwork> = {}): ActualNetwork {
  return {
    id: "n1",
    name: "mcp-user-alice",
    subnets: ["10.199.0.0/27"],
    labels: { [LABELS.userId]: "alice", [LABELS.portBlock]: "20000:16" },
    ...overrides,
  };
}

const base = (): ActualUser => ({
  containers: [container(), container({ id: "c2", name: "mcp-alice-s2" })],
  networks: [network()],
  volumes: [{ name: "v1", labels: {} }],
});

describe("Observer fingerprints", () => {
  // Every field the fingerprint reads, changed one at a time: the shortcut must see each change the fingerprint
  // sees (else a changed user would be taken as settled).
  const changes: [string, (u: ActualUser) => void][] = [
    ["container id", (u) => void (u.containers[0] = container({ id: "c9" }))],
    ["container name", (u) => void (u.containers[0] = container({ name: "x" }))],
    ["container state", (u) => void (u.containers[0] = container({ state: "exited" }))],
    [
      "server label",
      (u) =>
        void (u.containers[0] = container({ labels: { ...container().labels, [LABELS.serverId]: "s9" } })),
    ],
    [
      "spec hash",
      (u) =>
        void (u.containers[0] = container({ labels: { ...container().labels, [LABELS.specHash]: "h9" } })),
    ],
    [
      "host port",
      (u) =>
        void (u.containers[0] = container({ labels: { ...container().labels, [LABELS.hostPort]: "1" } })),
    ],
    ["networks", (u) => void (u.containers[0] = container({ networkIds: ["n1", "n2"] }))],
    ["version", (u) => void (u.containers[0] = container({ version: 7 }))],
    ["placement", (u) => void (u.containers[0] = container({ placement: "node-2" }))],
    ["node", (u) => void (u.containers[0] = container({ node: "node-2" }))],
    [
      "crash loop",
      (u) => void (u.containers[0] = container({ crashLoop: { failures: 3, lastError: "exit 1" } })),
    ],
    [
      "crash loop error",
      (u) => {
        u.containers[0] = container({ crashLoop: { failures: 3, lastError: "exit 2" } });
      },
    ],
    ["network id", (u) => void (u.networks[0] = network({ id: "n9" }))],
    ["network name", (u) => void (u.networks[0] = network({ name: "x" }))],
    ["network subnets", (u) => void (u.networks[0] = network({ subnets: ["10.199.0.32/27"] }))],
    ["port block", (u) => void (u.networks[0] = network({ labels: { [LABELS.portBlock]: "20016:16" } }))],
    ["volume", (u) => void (u.volumes[0] = { ...u.volumes[0]!, name: "v9" })],
    ["one container fewer", (u) => void u.containers.pop()],
  ];

  it.each(changes)(
    "a changed %s changes the fingerprint and is not the same observation",
    (_name, change) => {
      const before = base();
      const after = base();
      change(after);
      expect(fingerprintOf(after)).not.toBe(fingerprintOf(before));
      expect(sameObservation(before, after)).toBe(false);
    },
  );

  it("equal objects are the same observation with equal fingerprints; fields no plan reads change neither", () => {
    const before = base();
    const after = base();
    after.containers[0] = container({ image: "other", created: 99 });
    expect(sameObservation(before, after)).toBe(true);
    expect(fingerprintOf(after)).toBe(fingerprintOf(before));
  });

  it("another order is not the same observation, but the fingerprint (sorted) is equal", () => {
    const before = base();
    const after = base();
    after.containers.reverse();
    expect(sameObservation(before, after)).toBe(false);
    expect(fingerprintOf(after)).toBe(fingerprintOf(before));
  });

  it("a full listing keeps an unchanged user's fingerprint string and makes a new one for a changed user", async () => {
    const runtime = new MemoryRuntime();
    const labels = (user: string, server: string): Record<string, string> => ({
      ...ownerLabels("obs", user),
      [LABELS.userId]: user,
      [LABELS.serverId]: server,
      [LABELS.specHash]: "h",
    });
    for (const [i, user] of ["alice", "bob"].entries()) {
      const net = `mcp-user-${user}`;
      runtime.addForeignNetwork(net, `10.199.0.${i * 32}/27`, {
        ...labels(user, "s1"),
        [LABELS.serverId]: "",
      });
      await runtime.createContainer(
        { image: "img:1", network: net, mounts: [], labels: labels(user, "s1") } as never,
        `mcp-${user}-s1`,
      );
    }
    const observer = new Observer(runtime, "obs");
    await observer.listAll();
    const alice = observer.peek("alice")!.fingerprint;
    const bob = observer.peek("bob")!.fingerprint;
    const bobId = (await runtime.listContainers([`${LABELS.userId}=bob`]))[0]!.id;
    await runtime.startContainer(bobId);
    await observer.listAll();
    expect(observer.peek("alice")!.fingerprint).toBe(alice);
    expect(observer.peek("bob")!.fingerprint).not.toBe(bob);
    expect(observer.peek("bob")!.fingerprint).toBe(fingerprintOf(observer.peek("bob")!.observed));
  });
});

describe("Observer marks and listings under way", () => {
  async function observerWithAlice(): Promise<{ observer: Observer; runtime: MemoryRuntime }> {
    const runtime = new MemoryRuntime({ latencyMs: 20 });
    runtime.addForeignContainer("mcp-alice-s1", {
      ...ownerLabels("unit", "alice"),
      [LABELS.serverId]: "s1",
    });
    const observer = new Observer(runtime, "unit");
    await observer.listAll();
    return { observer, runtime };
  }

  it("a user marked stale while its own listing is under way stays stale (the listing may predate the change)", async () => {
    const { observer } = await observerWithAlice();
    observer.markStale("alice");
    const listing = observer.user("alice");
    observer.markStale("alice");
    await listing;
    expect(observer.peek("alice")).toBeUndefined();
    expect(observer.staleUsers).toBe(1);
    // A listing that starts after the mark clears it.
    await observer.user("alice");
    expect(observer.peek("alice")?.observed.containers).toHaveLength(1);
    expect(observer.staleUsers).toBe(0);
  });

  it("a full listing clears only the marks made before it started, and the same for the whole listing", async () => {
    const { observer } = await observerWithAlice();
    observer.markStale("alice");
    observer.markStale("bob");
    observer.invalidateListing();
    expect(observer.listingInvalidated).toBe(true);
    const listing = observer.listAll();
    observer.markStale("bob");
    await listing;
    expect(observer.peek("alice")).toBeDefined();
    expect(observer.peek("bob")).toBeUndefined();
    expect(observer.listingInvalidated).toBe(false);
    const again = observer.listAll();
    observer.invalidateListing();
    await again;
    expect(observer.listingInvalidated).toBe(true);
  });

  it("counts our servers' containers in the kept slices without listing", async () => {
    const { observer, runtime } = await observerWithAlice();
    runtime.resetCalls();
    expect(observer.managedContainers()).toBe(1);
    expect(runtime.callCount()).toBe(0);

    // The count follows each user's own listing, a forgotten user and the next full listing.
    const bobs = [1, 2].map((n) =>
      runtime.addForeignContainer(`mcp-bob-s${n}`, {
        ...ownerLabels("unit", "bob"),
        [LABELS.serverId]: `s${n}`,
      }),
    );
    // Not a server's container: not counted.
    runtime.addForeignContainer("mcp-bob-proxy", ownerLabels("unit", "bob"));
    await observer.user("bob", { fresh: true });
    expect(observer.managedContainers()).toBe(3);
    runtime.removeContainerExternally(bobs[0]!);
    await observer.user("bob", { fresh: true });
    expect(observer.managedContainers()).toBe(2);
    observer.forget("alice");
    expect(observer.managedContainers()).toBe(1);
    runtime.removeContainerExternally(bobs[1]!);
    await observer.user("bob", { fresh: true });
    expect(observer.managedContainers()).toBe(0);
    await observer.listAll();
    expect(observer.managedContainers()).toBe(1);
  });
});
