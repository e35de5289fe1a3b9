import { describe, expect, it } from "vitest";
import type { ActualContainer, ActualNetwork } from "../../../src/docker/runtime.js";
import { LABELS, isOwnedBy } from "../../../src/labels.js";
import { type AllocatorOptions, NetworkAllocator } from "../../../src/reconcile/allocator.js";

const OPTIONS: AllocatorOptions = {
  portRange: { start: 20000, end: 20999 },
  portsPerUser: 100,
  subnetPool: "172.20.0.0/16",
  subnetPrefixLength: 24,
};

function ownNetwork(userId: string, subnet: string | undefined, portBlock?: string): ActualNetwork {
  return {
    id: `net-${userId}`,
    name: `mcp-net-${userId}`,
    subnets: subnet ? [subnet] : [],
    labels: {
      [LABELS.managedBy]: "mcp-portal",
      [LABELS.installation]: "default",
      [LABELS.userId]: userId,
      [LABELS.networkType]: "user_isolation",
      ...(portBlock !== undefined ? { [LABELS.portBlock]: portBlock } : {}),
    },
  };
}

function foreignNetwork(name: string, subnets: string[], labels: Record<string, string> = {}): ActualNetwork {
  return { id: name, name, subnets, labels };
}

function container(userId: string, serverId: string, hostPort: string): ActualContainer {
  return {
    id: `${userId}-${serverId}`,
    name: `mcp-${userId}-${serverId}`,
    image: "mcp/x:latest",
    state: "running",
    networkIds: [],
    created: 1,
    labels: {
      [LABELS.managedBy]: "mcp-portal",
      [LABELS.installation]: "default",
      [LABELS.userId]: userId,
      [LABELS.serverId]: serverId,
      [LABELS.hostPort]: hostPort,
    },
  };
}

/** How the reconciler tells our networks from everyone else's. */
const ownUser = (n: ActualNetwork) => (isOwnedBy(n.labels, "default") ? n.labels[LABELS.userId] : undefined);

describe("NetworkAllocator: port blocks", () => {
  it("hands out the lowest free block and keeps it per user", () => {
    const a = new NetworkAllocator(OPTIONS);
    expect(a.portBlockFor("alice")).toEqual({ start: 20000, end: 20099 });
    expect(a.portBlockFor("bob")).toEqual({ start: 20100, end: 20199 });
    expect(a.portBlockFor("alice")).toEqual({ start: 20000, end: 20099 });
    expect(a.blockOf("bob")).toEqual({ start: 20100, end: 20199 });
    expect(a.blockOf("nobody")).toBeUndefined();
  });

  it("takes a free preferred block, but never moves a held one", () => {
    const a = new NetworkAllocator(OPTIONS);
    expect(a.portBlockFor("alice", 20500)).toEqual({ start: 20500, end: 20599 });
    expect(a.portBlockFor("alice", 20700)).toEqual({ start: 20500, end: 20599 });
    expect(a.portBlockFor("bob", 20500)).toEqual({ start: 20000, end: 20099 });
  });

  it("runs out after the last whole block", () => {
    const a = new NetworkAllocator(OPTIONS);
    for (let i = 0; i < 10; i++) expect(a.portBlockFor(`u${i}`)?.start).toBe(20000 + i * 100);
    expect(a.portBlockFor("late")).toBeUndefined();
    expect(a.blockOf("late")).toBeUndefined();
  });

  it("reuses a released block", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.portBlockFor("alice");
    a.portBlockFor("bob");
    a.portBlockFor("carol");
    a.release("bob");
    expect(a.blockOf("bob")).toBeUndefined();
    expect(a.portBlockFor("dave")).toEqual({ start: 20100, end: 20199 });
    expect(a.portBlockFor("erin")).toEqual({ start: 20300, end: 20399 });
  });

  it("counts allocated ports and capacity", () => {
    const a = new NetworkAllocator(OPTIONS);
    expect(a.portStats()).toEqual({ allocated: 0, capacity: 1000 });
    a.portBlockFor("alice");
    a.portBlockFor("bob");
    expect(a.portStats()).toEqual({ allocated: 200, capacity: 1000 });
    a.release("alice");
    expect(a.portStats()).toEqual({ allocated: 100, capacity: 1000 });
    const partial = new NetworkAllocator({ ...OPTIONS, portRange: { start: 20000, end: 20250 } });
    expect(partial.portStats()).toEqual({ allocated: 0, capacity: 200 });
  });
});

describe("NetworkAllocator: rebuild", () => {
  it("restores blocks from the network port_block label and subnets from the networks", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.rebuild(
      [ownNetwork("alice", "172.20.3.0/24", "20300"), ownNetwork("bob", "172.20.0.0/24", "20000")],
      ownUser,
      [],
    );
    expect(a.portBlockFor("alice")).toEqual({ start: 20300, end: 20399 });
    expect(a.subnetFor("alice")).toBe("172.20.3.0/24");
    expect(a.subnetFor("bob")).toBe("172.20.0.0/24");
    expect(a.portBlockFor("carol")).toEqual({ start: 20100, end: 20199 });
    expect(a.subnetFor("carol")).toBe("172.20.1.0/24");
    expect(a.portStats().allocated).toBe(300);
  });

  it("falls back to the host_port labels of containers when the network has no port_block label", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.rebuild([ownNetwork("bob", "172.20.0.0/24")], ownUser, [
      container("bob", "time", "20542"),
      container("bob", "web", "20517"),
      container("carol", "x", "20801"),
    ]);
    expect(a.blockOf("bob")).toEqual({ start: 20500, end: 20599 });
    expect(a.blockOf("carol")).toEqual({ start: 20800, end: 20899 });
    expect(a.portBlockFor("dave")).toEqual({ start: 20000, end: 20099 });
  });

  it("prefers the network label over container ports and never gives a block to two users", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.rebuild([ownNetwork("alice", "172.20.0.0/24", "20200")], ownUser, [
      container("alice", "x", "20950"),
      container("bob", "x", "20230"),
      container("carol", "x", "20410"),
      container("dave", "x", "20420"),
    ]);
    expect(a.blockOf("alice")?.start).toBe(20200);
    expect(a.blockOf("bob")).toBeUndefined();
    expect(a.blockOf("carol")?.start).toBe(20400);
    expect(a.blockOf("dave")).toBeUndefined();
  });

  it("ignores unusable labels", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.rebuild(
      [
        ownNetwork("unaligned", "172.20.1.0/24", "20350"),
        ownNetwork("garbage", "172.20.2.0/24", "abc"),
        ownNetwork("outside", "172.20.4.0/24", "30000"),
      ],
      ownUser,
      [container("c1", "x", "nope"), container("c2", "x", "19999"), container("c3", "x", "21000")],
    );
    for (const user of ["unaligned", "garbage", "outside", "c1", "c2", "c3"])
      expect(a.blockOf(user)).toBeUndefined();
    expect(a.portStats().allocated).toBe(0);
    // their subnets are still known
    expect(a.subnetFor("unaligned")).toBe("172.20.1.0/24");
  });

  it("keeps reservations made since the listing started", () => {
    const a = new NetworkAllocator(OPTIONS);
    expect(a.portBlockFor("new")).toEqual({ start: 20000, end: 20099 });
    expect(a.subnetFor("new")).toBe("172.20.0.0/24");
    a.rebuild([ownNetwork("alice", "172.20.5.0/24", "20500")], ownUser, []);
    expect(a.blockOf("new")).toEqual({ start: 20000, end: 20099 });
    expect(a.subnetFor("new")).toBe("172.20.0.0/24");
    expect(a.portBlockFor("next")).toEqual({ start: 20100, end: 20199 });
    expect(a.subnetFor("next")).toBe("172.20.1.0/24");
  });

  it("drops a reserved block that the listing shows another user holds", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.portBlockFor("new");
    a.rebuild([ownNetwork("alice", "172.20.5.0/24", "20000")], ownUser, []);
    expect(a.blockOf("alice")?.start).toBe(20000);
    expect(a.blockOf("new")).toBeUndefined();
    expect(a.portBlockFor("new")).toEqual({ start: 20100, end: 20199 });
  });

  it("avoids the subnets of foreign networks, including other installations' networks", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.rebuild(
      [
        foreignNetwork("bridge", ["172.17.0.0/16"]),
        foreignNetwork("compose_default", ["172.20.0.0/24", "172.20.1.0/24"]),
        foreignNetwork("mcp-net-alice-abc123", ["172.20.2.0/23"], {
          [LABELS.managedBy]: "mcp-portal",
          [LABELS.installation]: "staging",
          [LABELS.userId]: "alice",
          [LABELS.portBlock]: "20000",
        }),
      ],
      ownUser,
      [],
    );
    expect(a.subnetFor("alice")).toBe("172.20.4.0/24");
    // the other installation's port_block label is not ours
    expect(a.portBlockFor("alice")).toEqual({ start: 20000, end: 20099 });
  });

  it("forgets foreign networks that are gone on the next rebuild", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.rebuild([foreignNetwork("other", ["172.20.0.0/24"])], ownUser, []);
    a.rebuild([], ownUser, []);
    expect(a.subnetFor("alice")).toBe("172.20.0.0/24");
  });

  // A subnet reserved before the listing must not survive it when the listing shows it now overlaps
  // an existing network (the port-block reservation is already dropped in the same situation).
  it("drops a reserved subnet that a network in the listing now overlaps", () => {
    const a = new NetworkAllocator(OPTIONS);
    expect(a.subnetFor("new")).toBe("172.20.0.0/24");
    a.rebuild([foreignNetwork("someone-else", ["172.20.0.0/24"])], ownUser, []);
    expect(a.subnetFor("new")).toBe("172.20.1.0/24");
  });
});

describe("NetworkAllocator: subnets", () => {
  it("gives each user its own subnet and keeps it", () => {
    const a = new NetworkAllocator(OPTIONS);
    expect(a.subnetFor("alice")).toBe("172.20.0.0/24");
    expect(a.subnetFor("bob")).toBe("172.20.1.0/24");
    expect(a.subnetFor("alice")).toBe("172.20.0.0/24");
  });

  it("takes a free preferred subnet", () => {
    const a = new NetworkAllocator(OPTIONS);
    expect(a.subnetFor("alice", "172.20.9.0/24")).toBe("172.20.9.0/24");
    expect(a.subnetFor("bob", "172.20.9.0/24")).toBe("172.20.0.0/24");
  });

  it("avoids subnets set as foreign", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.setForeignSubnets(["172.20.0.0/23"]);
    expect(a.subnetFor("alice")).toBe("172.20.2.0/24");
  });

  it("forgets a subnet the engine refused and never offers it again until the next rebuild", () => {
    const a = new NetworkAllocator(OPTIONS);
    expect(a.subnetFor("alice")).toBe("172.20.0.0/24");
    a.forgetSubnet("alice", "172.20.0.0/24");
    expect(a.subnetFor("alice")).toBe("172.20.1.0/24");
    expect(a.subnetFor("bob")).toBe("172.20.2.0/24");
    // forgetting a subnet the user does not hold leaves its own alone
    a.forgetSubnet("alice", "172.20.7.0/24");
    expect(a.subnetFor("alice")).toBe("172.20.1.0/24");
  });

  it("frees a released user's subnet for reuse", () => {
    const a = new NetworkAllocator(OPTIONS);
    a.subnetFor("alice");
    a.subnetFor("bob");
    a.release("alice");
    expect(a.subnetFor("carol")).toBe("172.20.0.0/24");
  });

  it("returns undefined when the pool is exhausted", () => {
    const a = new NetworkAllocator({ ...OPTIONS, subnetPool: "10.0.0.0/23" });
    expect(a.subnetFor("a")).toBe("10.0.0.0/24");
    expect(a.subnetFor("b")).toBe("10.0.1.0/24");
    expect(a.subnetFor("c")).toBeUndefined();
  });
});

const RANGE = { start: 20000, end: 20999 };

/** The block a new user gets when the starts in `used` are held by others. */
function blockWith(
  range: { start: number; end: number },
  size: number,
  used: ReadonlySet<number>,
  preferred?: number,
) {
  const a = new NetworkAllocator({ ...OPTIONS, portRange: range, portsPerUser: size });
  let i = 0;
  for (const start of used) expect(a.portBlockFor(`holder${i++}`, start)?.start).toBe(start);
  return a.portBlockFor("new-user", preferred);
}

/** The subnet a new user gets when `inUse` are foreign networks' subnets. */
function subnetWith(pool: string, size: number, inUse: string[], preferred?: string) {
  const a = new NetworkAllocator({ ...OPTIONS, subnetPool: pool, subnetPrefixLength: size });
  a.setForeignSubnets(inUse);
  return a.subnetFor("new-user", preferred);
}

describe("NetworkAllocator: block choice (formerly allocateBlock)", () => {
  it("hands out the lowest free block", () => {
    expect(blockWith(RANGE, 100, new Set())).toEqual({ start: 20000, end: 20099 });
    expect(blockWith(RANGE, 100, new Set([20000, 20100]))).toEqual({ start: 20200, end: 20299 });
  });

  it("reuses a gap left by a released block instead of going past the highest", () => {
    const used = new Set([20000, 20100, 20200, 20300]);
    used.delete(20100);
    expect(blockWith(RANGE, 100, used)).toEqual({ start: 20100, end: 20199 });
  });

  it("takes the preferred block when it is free, aligned and in range", () => {
    expect(blockWith(RANGE, 100, new Set([20000]), 20500)).toEqual({ start: 20500, end: 20599 });
  });

  it("falls back to the lowest free block when the preferred one is taken, unaligned or out of range", () => {
    const used = new Set([20000, 20500]);
    expect(blockWith(RANGE, 100, used, 20500)).toEqual({ start: 20100, end: 20199 });
    expect(blockWith(RANGE, 100, used, 20550)).toEqual({ start: 20100, end: 20199 });
    expect(blockWith(RANGE, 100, used, 21000)).toEqual({ start: 20100, end: 20199 });
    expect(blockWith(RANGE, 100, used, 19900)).toEqual({ start: 20100, end: 20199 });
  });

  it("returns undefined when every block is used", () => {
    const used = new Set(Array.from({ length: 10 }, (_, i) => 20000 + i * 100));
    expect(blockWith(RANGE, 100, used)).toBeUndefined();
    expect(blockWith(RANGE, 100, used, 20300)).toBeUndefined();
    expect(blockWith({ start: 20000, end: 20050 }, 100, new Set())).toBeUndefined();
  });
});

describe("NetworkAllocator: subnet choice (formerly allocateSubnet)", () => {
  const POOL = "172.20.0.0/16";

  it("hands out the lowest /24 of the pool when nothing is used", () => {
    expect(subnetWith(POOL, 24, [])).toBe("172.20.0.0/24");
  });

  it("skips subnets in use, ours or foreign", () => {
    expect(subnetWith(POOL, 24, ["172.20.0.0/24", "172.20.1.0/24"])).toBe("172.20.2.0/24");
  });

  it("skips a /24 inside the pool held by a foreign network with a different prefix", () => {
    expect(subnetWith(POOL, 24, ["172.20.0.128/25"])).toBe("172.20.1.0/24");
    expect(subnetWith(POOL, 24, ["172.20.0.0/23"])).toBe("172.20.2.0/24");
    expect(subnetWith(POOL, 24, ["172.20.0.7/32"])).toBe("172.20.1.0/24");
  });

  it("skips the foreign /24 and keeps the ones around it", () => {
    const inUse = ["172.20.0.0/24", "172.20.1.0/24", "172.20.3.0/24"];
    expect(subnetWith(POOL, 24, inUse)).toBe("172.20.2.0/24");
    expect(subnetWith(POOL, 24, [...inUse, "172.20.2.0/24"])).toBe("172.20.4.0/24");
  });

  it("ignores networks outside the pool and unparsable entries", () => {
    expect(subnetWith(POOL, 24, ["10.0.0.0/8", "fd00::/64", "garbage"])).toBe("172.20.0.0/24");
  });

  it("keeps the preferred subnet when it is free, inside the pool and of the right size", () => {
    expect(subnetWith(POOL, 24, ["172.20.0.0/24"], "172.20.9.0/24")).toBe("172.20.9.0/24");
  });

  it("ignores a preferred subnet that is taken, outside the pool or of another size", () => {
    expect(subnetWith(POOL, 24, ["172.20.9.0/24"], "172.20.9.0/24")).toBe("172.20.0.0/24");
    expect(subnetWith(POOL, 24, ["172.20.8.0/21"], "172.20.9.0/24")).toBe("172.20.0.0/24");
    expect(subnetWith(POOL, 24, [], "10.9.0.0/24")).toBe("172.20.0.0/24");
    expect(subnetWith(POOL, 24, [], "172.20.9.0/25")).toBe("172.20.0.0/24");
    expect(subnetWith(POOL, 24, [], "not a cidr")).toBe("172.20.0.0/24");
  });

  it("returns undefined when the pool is exhausted or covered by a foreign network", () => {
    const all = Array.from({ length: 4 }, (_, i) => `10.0.${i}.0/24`);
    expect(subnetWith("10.0.0.0/22", 24, all)).toBeUndefined();
    expect(subnetWith("10.0.0.0/22", 24, all.slice(0, 3))).toBe("10.0.3.0/24");
    expect(subnetWith(POOL, 24, ["172.16.0.0/12"])).toBeUndefined();
    expect(subnetWith(POOL, 24, ["172.20.0.0/16"], "172.20.4.0/24")).toBeUndefined();
  });

  it("refuses a subnet size larger than the pool and a malformed pool", () => {
    expect(subnetWith(POOL, 15, [])).toBeUndefined();
    expect(subnetWith("nope", 24, [])).toBeUndefined();
  });

  it("supports other sizes", () => {
    expect(subnetWith(POOL, 28, ["172.20.0.0/28"])).toBe("172.20.0.16/28");
    expect(subnetWith(POOL, 16, [])).toBe("172.20.0.0/16");
    expect(subnetWith(POOL, 16, ["172.20.200.0/24"])).toBeUndefined();
  });
});
