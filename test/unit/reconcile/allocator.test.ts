import { describe, expect, it } from "vitest";
import type { ActualContainer, ActualNetwork } from "../../../src/docker/runtime.js";
import { LABELS, type PortBlockLabel, isOwnedBy } from "../../../src/labels.js";
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

/** A sized `port_block` label as the reconciler reads it from a network. */
const sized = (start: number, size = 100): PortBlockLabel => ({ start, size, legacy: false });

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
    expect(a.portBlockFor("alice", sized(20500))).toEqual({ start: 20500, end: 20599 });
    expect(a.portBlockFor("alice", sized(20700))).toEqual({ start: 20500, end: 20599 });
    expect(a.portBlockFor("bob", sized(20500))).toEqual({ start: 20000, end: 20099 });
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
        ownNetwork("garbage", "172.20.1.0/24", "abc"),
        ownNetwork("zero", "172.20.2.0/24", "0"),
        ownNetwork("empty", "172.20.3.0/24", "20000:0"),
        ownNetwork("negative", "172.20.4.0/24", "-20000"),
        ownNetwork("huge", "172.20.5.0/24", "20000:20000"),
        ownNetwork("past-65535", "172.20.6.0/24", "65500:100"),
        ownNetwork("two-colons", "172.20.7.0/24", "20000:10:10"),
      ],
      ownUser,
      [container("c1", "x", "nope"), container("c2", "x", "19999"), container("c3", "x", "21000")],
    );
    for (const user of ["garbage", "zero", "empty", "negative", "huge", "past-65535", "two-colons"])
      expect(a.blockOf(user), user).toBeUndefined();
    for (const user of ["c1", "c2", "c3"]) expect(a.blockOf(user)).toBeUndefined();
    expect(a.portStats().allocated).toBe(0);
    // their subnets are still known
    expect(a.subnetFor("garbage")).toBe("172.20.1.0/24");
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
  for (const start of used) expect(a.portBlockFor(`holder${i++}`, sized(start, size))?.start).toBe(start);
  return a.portBlockFor("new-user", preferred === undefined ? undefined : sized(preferred, size));
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

  it("takes the preferred block when no held block overlaps it", () => {
    expect(blockWith(RANGE, 100, new Set([20000]), 20500)).toEqual({ start: 20500, end: 20599 });
  });

  it("falls back to the lowest free block when the preferred one overlaps a held block", () => {
    const used = new Set([20000, 20500]);
    expect(blockWith(RANGE, 100, used, 20500)).toEqual({ start: 20100, end: 20199 });
    expect(blockWith(RANGE, 100, used, 20550)).toEqual({ start: 20100, end: 20199 });
    expect(blockWith(RANGE, 100, used, 20401)).toEqual({ start: 20100, end: 20199 });
  });

  // The preferred block is what the user's network records: made under an earlier range or alignment, it stays.
  it("keeps a preferred block that is unaligned or outside today's range", () => {
    const used = new Set([20000, 20500]);
    expect(blockWith(RANGE, 100, used, 20250)).toEqual({ start: 20250, end: 20349 });
    expect(blockWith(RANGE, 100, used, 21000)).toEqual({ start: 21000, end: 21099 });
    expect(blockWith(RANGE, 100, used, 19900)).toEqual({ start: 19900, end: 19999 });
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

/** Every pair of held blocks is disjoint, and every block ends inside the port space. */
function expectDisjoint(a: NetworkAllocator, users: readonly string[]): void {
  const blocks = users.map((u) => a.blockOf(u)).filter((b) => b !== undefined);
  blocks.sort((x, y) => x.start - y.start);
  for (let i = 1; i < blocks.length; i++)
    expect(
      blocks[i]!.start,
      `${JSON.stringify(blocks[i - 1])} / ${JSON.stringify(blocks[i])}`,
    ).toBeGreaterThan(blocks[i - 1]!.end);
}

describe("NetworkAllocator: blocks of other sizes (an upgrade, a changed MCP_PORTAL_PORTS_PER_USER)", () => {
  const TODAY: AllocatorOptions = { ...OPTIONS, portRange: { start: 10000, end: 29999 }, portsPerUser: 16 };

  it("reads an unsized label as a legacy block of 100 and hands out new blocks around it", () => {
    const a = new NetworkAllocator(TODAY);
    a.rebuild(
      [ownNetwork("old1", "172.20.0.0/24", "10000"), ownNetwork("old2", "172.20.1.0/24", "10200")],
      ownUser,
      [],
    );
    expect(a.blockOf("old1")).toEqual({ start: 10000, end: 10099 });
    expect(a.blockOf("old2")).toEqual({ start: 10200, end: 10299 });
    // 10000-10099 covers the 16-port blocks 0-6 (10096-10111 partly): the first free one starts at 10112.
    expect(a.portBlockFor("new1")).toEqual({ start: 10112, end: 10127 });
    for (let i = 2; i <= 20; i++) a.portBlockFor(`new${i}`);
    expectDisjoint(a, ["old1", "old2", ...Array.from({ length: 20 }, (_, i) => `new${i + 1}`)]);
    // blocks 5 (10112) .. 10 (10192-10207 meets old2): five fit between, then past old2 (10288-10303 is taken).
    expect(a.blockOf("new5")).toEqual({ start: 10176, end: 10191 });
    expect(a.blockOf("new6")).toEqual({ start: 10304, end: 10319 });
  });

  it("keeps sized labels of another size and alignment exactly as recorded", () => {
    const a = new NetworkAllocator(TODAY);
    a.rebuild(
      [
        ownNetwork("ten", "172.20.0.0/24", "10005:10"),
        ownNetwork("big", "172.20.1.0/24", "10040:40"),
        ownNetwork("today", "172.20.2.0/24", "10016:16"),
      ],
      ownUser,
      [],
    );
    expect(a.blockOf("ten")).toEqual({ start: 10005, end: 10014 });
    expect(a.blockOf("big")).toEqual({ start: 10040, end: 10079 });
    expect(a.blockOf("today")).toEqual({ start: 10016, end: 10031 });
    expect(a.portBlockFor("new")).toEqual({ start: 10080, end: 10095 });
    expect(a.portStats()).toEqual({ allocated: 6 * 16, capacity: 1250 * 16 });
  });

  // An installation that ran with blocks of 10 had its unsized labels 10 apart: read as 100 they would overlap
  // and all but one user would lose their ports. Each ends where the next begins.
  it("cuts a legacy block short where the next block begins", () => {
    const a = new NetworkAllocator({ ...TODAY, portsPerUser: 10 });
    a.rebuild(
      [
        ownNetwork("u0", "172.20.0.0/24", "20000"),
        ownNetwork("u1", "172.20.1.0/24", "20010"),
        ownNetwork("u2", "172.20.2.0/24", "20020"),
        ownNetwork("sized", "172.20.3.0/24", "20050:10"),
      ],
      ownUser,
      [],
    );
    expect(a.blockOf("u0")).toEqual({ start: 20000, end: 20009 });
    expect(a.blockOf("u1")).toEqual({ start: 20010, end: 20019 });
    expect(a.blockOf("u2")).toEqual({ start: 20020, end: 20049 });
    expect(a.blockOf("sized")).toEqual({ start: 20050, end: 20059 });
    expect(a.portBlockFor("u3", { start: 20060, size: 100, legacy: true })).toEqual({
      start: 20060,
      end: 20159,
    });
    // A legacy start inside another block is no block at all.
    expect(a.portBlockFor("inside", { start: 20005, size: 100, legacy: true })).toEqual({
      start: 10000,
      end: 10009,
    });
  });

  it("keeps blocks outside today's range (the range moved) and never hands them out again", () => {
    const a = new NetworkAllocator({ ...TODAY, portRange: { start: 10000, end: 10099 } });
    a.rebuild([ownNetwork("old", "172.20.0.0/24", "20000")], ownUser, []);
    expect(a.blockOf("old")).toEqual({ start: 20000, end: 20099 });
    expect(a.portStats()).toEqual({ allocated: 0, capacity: 96 });
    expect(a.portBlockFor("new")).toEqual({ start: 10000, end: 10015 });
  });

  it("frees the blocks a released legacy block covered", () => {
    const a = new NetworkAllocator(TODAY);
    a.rebuild([ownNetwork("old", "172.20.0.0/24", "10000")], ownUser, []);
    expect(a.portStats().allocated).toBe(7 * 16);
    a.release("old");
    expect(a.portStats().allocated).toBe(0);
    expect(a.portBlockFor("new")).toEqual({ start: 10000, end: 10015 });
  });

  it("never hands out overlapping blocks, whatever mix of sizes the labels record (random fleets)", () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 50; round++) {
      const a = new NetworkAllocator({
        ...TODAY,
        portRange: { start: 10000, end: 10999 },
        portsPerUser: 1 + random(20),
        excludedPorts: [{ start: 10000 + random(1000), end: 10000 + random(1000) }].filter(
          (s) => s.start <= s.end,
        ),
      });
      const networks = Array.from({ length: 30 }, (_, i) => {
        const start = 9900 + random(1200);
        const label = random(3) === 0 ? String(start) : `${start}:${1 + random(120)}`;
        return ownNetwork(`u${i}`, `172.20.${i}.0/24`, label);
      });
      a.rebuild(networks, ownUser, []);
      const users = networks.map((n) => n.labels[LABELS.userId]!);
      for (let i = 0; i < 60; i++) {
        const user = `n${i}`;
        users.push(user);
        if (random(4) === 0) a.release(users[random(users.length)]!);
        else a.portBlockFor(user);
      }
      expectDisjoint(a, users);
    }
  });
});

describe("NetworkAllocator: excluded ports", () => {
  const EXCLUDING: AllocatorOptions = {
    ...OPTIONS,
    portsPerUser: 16,
    portRange: { start: 10000, end: 10159 },
    excludedPorts: [
      { start: 10020, end: 10020 },
      { start: 10050, end: 10070 },
    ],
  };

  it("never gives a new user a block containing an excluded port", () => {
    const a = new NetworkAllocator(EXCLUDING);
    const starts = Array.from({ length: 6 }, (_, i) => a.portBlockFor(`u${i}`)?.start);
    // blocks 1 (10016-10031) and 3-4 (10048-10079) hold excluded ports
    expect(starts).toEqual([10000, 10032, 10080, 10096, 10112, 10128]);
    expect(a.portBlockFor("late")).toEqual({ start: 10144, end: 10159 });
    expect(a.portBlockFor("later")).toBeUndefined();
  });

  it("counts the blocks left for users, without the excluded ones", () => {
    const a = new NetworkAllocator(EXCLUDING);
    expect(a.portStats()).toEqual({ allocated: 0, capacity: 7 * 16 });
    a.portBlockFor("u");
    expect(a.portStats()).toEqual({ allocated: 16, capacity: 7 * 16 });
  });

  it("keeps an existing block that contains an excluded port", () => {
    const a = new NetworkAllocator(EXCLUDING);
    a.rebuild([ownNetwork("old", "172.20.0.0/24", "10016:16")], ownUser, []);
    expect(a.blockOf("old")).toEqual({ start: 10016, end: 10031 });
    expect(a.portStats().allocated).toBe(0);
    a.rebuild(
      [ownNetwork("old", "172.20.0.0/24", "10016:16"), ownNetwork("o2", "172.20.1.0/24", "10000:16")],
      ownUser,
      [],
    );
    expect(a.portStats().allocated).toBe(16);
  });

  it("names the range, the block size and the exclusions when the pool is exhausted", () => {
    const a = new NetworkAllocator(EXCLUDING);
    for (let i = 0; i < 7; i++) a.portBlockFor(`u${i}`);
    expect(a.portBlockFor("late")).toBeUndefined();
    expect(a.portPoolExhaustedMessage()).toBe(
      "no free port block left: all 7 blocks of 16 ports in 10000-10159 are held, 3 more skipped for " +
        "MCP_PORTAL_PORT_EXCLUDE (10020,10050-10070); widen MCP_PORTAL_PORT_RANGE_START/_END or lower " +
        "MCP_PORTAL_PORTS_PER_USER (both apply to new users; existing blocks stay as they are)",
    );
  });
});

describe("NetworkAllocator: subnets of other sizes", () => {
  it("hands out /27s around /24s an earlier configuration made in the same pool", () => {
    const a = new NetworkAllocator({ ...OPTIONS, subnetPool: "10.199.0.0/16", subnetPrefixLength: 27 });
    a.rebuild(
      [ownNetwork("old0", "10.199.0.0/24", "20000"), ownNetwork("old1", "10.199.1.0/24", "20100")],
      ownUser,
      [],
    );
    expect(a.subnetFor("new")).toBe("10.199.2.0/27");
    expect(a.subnetFor("next")).toBe("10.199.2.32/27");
    expect(a.subnetStats()).toEqual({ allocated: 18, capacity: 2048 });
  });

  it("keeps subnets outside the pool (the pool moved) and does not count them", () => {
    const a = new NetworkAllocator({ ...OPTIONS, subnetPool: "10.199.0.0/16", subnetPrefixLength: 27 });
    a.rebuild([ownNetwork("old", "172.20.7.0/24", "20000")], ownUser, []);
    expect(a.subnetFor("old")).toBe("172.20.7.0/24");
    expect(a.subnetFor("new")).toBe("10.199.0.0/27");
    expect(a.subnetStats()).toEqual({ allocated: 1, capacity: 2048 });
  });

  it("counts other networks overlapping the pool as allocated, and names the pool when it is exhausted", () => {
    const a = new NetworkAllocator({ ...OPTIONS, subnetPool: "10.9.0.0/26", subnetPrefixLength: 27 });
    a.rebuild([foreignNetwork("other", ["10.9.0.0/27"])], ownUser, []);
    expect(a.subnetStats()).toEqual({ allocated: 1, capacity: 2 });
    expect(a.subnetFor("u")).toBe("10.9.0.32/27");
    expect(a.subnetFor("late")).toBeUndefined();
    expect(a.subnetPoolExhaustedMessage()).toBe(
      "no free subnet left: all 2 /27 subnets of 10.9.0.0/26 are taken by users' networks or overlap other " +
        "networks; widen MCP_PORTAL_USER_NETWORK_SUBNET_BASE or raise MCP_PORTAL_USER_NETWORK_SUBNET_SIZE (both " +
        "apply to new users; existing networks stay as they are)",
    );
  });
});

describe("NetworkAllocator: a rebuild from an unchanged listing", () => {
  const listing = () => ({
    networks: [ownNetwork("alice", "172.20.0.0/24", "20000:100"), foreignNetwork("other", ["172.20.1.0/24"])],
    containers: [container("alice", "echo", "20000"), container("carol", "echo", "20300")],
  });

  it("ends where a full rebuild ends: holds, reservations and stats", () => {
    const skipped = new NetworkAllocator(OPTIONS);
    const full = new NetworkAllocator(OPTIONS);
    const first = listing();
    skipped.rebuild(first.networks, ownUser, first.containers);
    full.rebuild(first.networks, ownUser, first.containers);
    // Reservations between two listings (users mid-create) survive both ways.
    expect(skipped.portBlockFor("bob")).toEqual(full.portBlockFor("bob"));
    expect(skipped.subnetFor("bob")).toEqual(full.subnetFor("bob"));
    const again = listing();
    skipped.rebuild(again.networks, ownUser, again.containers);
    // A fresh allocator given the same history but a listing in another order never takes the shortcut.
    full.rebuild([...again.networks].reverse(), ownUser, [...again.containers].reverse());
    for (const user of ["alice", "bob", "carol"]) expect(skipped.blockOf(user)).toEqual(full.blockOf(user));
    expect(skipped.subnetFor("bob")).toBe(full.subnetFor("bob"));
    expect(skipped.portStats()).toEqual(full.portStats());
    expect(skipped.subnetStats()).toEqual(full.subnetStats());
  });

  it("runs again after a release: the listing still shows the user's network, so its block is held again", () => {
    const a = new NetworkAllocator(OPTIONS);
    const { networks, containers } = listing();
    a.rebuild(networks, ownUser, containers);
    a.release("alice");
    expect(a.blockOf("alice")).toBeUndefined();
    a.rebuild(networks, ownUser, containers);
    expect(a.blockOf("alice")).toEqual({ start: 20000, end: 20099 });
    expect(a.subnetFor("alice")).toBe("172.20.0.0/24");
  });

  it("runs again when a container's host port label differs", () => {
    const a = new NetworkAllocator(OPTIONS);
    const { networks, containers } = listing();
    a.rebuild(networks, ownUser, containers);
    expect(a.blockOf("carol")).toEqual({ start: 20300, end: 20399 });
    a.rebuild(networks, ownUser, [containers[0]!, container("carol", "echo", "20500")]);
    expect(a.blockOf("carol")).toEqual({ start: 20500, end: 20599 });
  });
});
