import type { Config } from "../config.js";
import type { ActualContainer, ActualNetwork } from "../docker/runtime.js";
import { LABELS, LEGACY_PORT_BLOCK_SIZE, type PortBlockLabel, parsePortBlockLabel } from "../labels.js";
import {
  MAX_BLOCK_SIZE,
  MAX_PORT,
  type PortRange,
  blockAt,
  blockCount,
  blocksCovering,
  blockStartOf,
  excludedBlocks,
  formatPortSpan,
} from "../desired/port-blocks.js";
import {
  type Ipv4Cidr,
  formatCidr,
  overlaps,
  parseIpv4Cidr,
  subnetPoolCapacity,
} from "../desired/subnets.js";

export interface AllocatorOptions {
  portRange: PortRange;
  /** The size of every new block; blocks of other sizes (recorded in their networks' labels) are kept as they are. */
  portsPerUser: number;
  /** Ports no new block may contain (well-known services inside the range); existing blocks are not affected. */
  excludedPorts?: readonly PortRange[];
  subnetPool: string;
  subnetPrefixLength: number;
}

/** The allocator's options as the configuration gives them (the daemon and `plan` build it the same way). */
export function allocatorOptions(
  config: Pick<Config, "portRange" | "portsPerUser" | "excludedPorts" | "subnetPool">,
): AllocatorOptions {
  return {
    portRange: config.portRange,
    portsPerUser: config.portsPerUser,
    excludedPorts: config.excludedPorts,
    subnetPool: config.subnetPool.base,
    subnetPrefixLength: config.subnetPool.prefixLength,
  };
}

/** A pool's use: `allocated` of `capacity` (ports, or subnets) are not free for a new user. */
export interface PoolStats {
  allocated: number;
  capacity: number;
}

/**
 * Numbered slots 0..count-1 with a cursor at the lowest one that may be free, so handing out the lowest free
 * slot costs O(1) amortised, however many are taken (a fleet of thousands of users starts in linear time).
 */
class SlotPool {
  private readonly taken = new Map<number, number>();
  private cursor = 0;

  constructor(readonly count: number) {}

  isFree(slot: number): boolean {
    return slot >= 0 && slot < this.count && !this.taken.has(slot);
  }

  /** Takes a slot (reference-counted: two holders need two frees). */
  take(slot: number): void {
    this.taken.set(slot, (this.taken.get(slot) ?? 0) + 1);
  }

  free(slot: number): void {
    const n = this.taken.get(slot);
    if (n === undefined) return;
    if (n > 1) this.taken.set(slot, n - 1);
    else {
      this.taken.delete(slot);
      if (slot < this.cursor) this.cursor = slot;
    }
  }

  lowestFree(): number | undefined {
    while (this.cursor < this.count && this.taken.has(this.cursor)) this.cursor++;
    return this.cursor < this.count ? this.cursor : undefined;
  }

  clear(): void {
    this.taken.clear();
    this.cursor = 0;
  }

  get size(): number {
    return this.taken.size;
  }
}

/** Which ports the held blocks cover, one byte per port: blocks of any size and alignment never overlap. */
class PortMap {
  private readonly used: Uint8Array;

  constructor(readonly maxPort: number) {
    this.used = new Uint8Array(maxPort + 1);
  }

  /** The first port of `block` that is covered, not counting the ports of `except` (the holder's own block). */
  firstUsed(block: PortRange, except?: PortRange): number | undefined {
    for (let port = block.start; port <= block.end; port++) {
      if (this.used[port] === 1 && !(except && port >= except.start && port <= except.end)) return port;
    }
    return undefined;
  }

  set(block: PortRange, used: boolean): void {
    this.used.fill(used ? 1 : 0, block.start, block.end + 1);
  }

  clear(): void {
    this.used.fill(0);
  }
}

/**
 * Port blocks and subnets per user. The engine is the memory (network labels, container port labels); this
 * only mirrors it and hands out new ones under the single-threaded event loop, so two users never race to the
 * same block or subnet. A new block has today's size, on today's range; a block recorded with another size or
 * outside the range (an earlier configuration) is kept as it is, and new blocks go around it. Handing out a
 * new block or subnet is O(1) amortised; holding a recorded block costs its size; a rebuild is linear in the
 * listing.
 */
/** `mcp.portal.network_type` of a user's egress network (README, "Network egress"). */
export const EGRESS_NETWORK_TYPE = "egress";

/** The allocator's key of a user's egress subnet: a user id never contains `#`. */
function egressSubnetKey(userId: string): string {
  return `${userId}#egress`;
}

export class NetworkAllocator {
  private readonly blocks = new Map<string, PortRange>();
  /** The range's whole blocks of today's size: taken while any held block or excluded port shares a port. */
  private readonly blockSlots: SlotPool;
  private readonly excludedSlots: readonly number[];
  private readonly ports: PortMap;
  private readonly subnets = new Map<string, string>();
  /** The pool slots each user's subnet overlaps (one, unless it is not aligned to the pool). */
  private readonly userSubnetSlots = new Map<string, number[]>();
  private readonly subnetSlots: SlotPool;
  private foreignSubnets: string[] = [];
  private readonly pool: Ipv4Cidr | undefined;
  /**
   * What the last rebuild read, while nothing was released or forgotten since: a rebuild from the same listing
   * would end where the allocator is now (the holds it makes are already held, reservations are kept), so it is
   * skipped. At 100,000 containers the rebuild was a third of a no-op resync's CPU.
   */
  private lastRebuild: RebuildInputs | undefined;

  constructor(private readonly options: AllocatorOptions) {
    const { portRange, portsPerUser } = options;
    this.blockSlots = new SlotPool(blockCount(portRange, portsPerUser));
    this.excludedSlots = [...excludedBlocks(portRange, portsPerUser, options.excludedPorts ?? [])];
    this.resetBlockSlots();
    this.ports = new PortMap(Math.max(MAX_PORT, portRange.end));
    this.pool = parseIpv4Cidr(options.subnetPool);
    this.subnetSlots = new SlotPool(
      this.pool ? subnetPoolCapacity(this.pool, options.subnetPrefixLength) : 0,
    );
  }

  /** Rebuilds from a full listing: every network on the engine and our containers. */
  rebuild(
    allNetworks: readonly ActualNetwork[],
    ownNetworkUser: (n: ActualNetwork) => string | undefined,
    containers: readonly ActualContainer[],
  ): void {
    if (this.lastRebuild?.matches(allNetworks, containers)) return;
    this.lastRebuild = undefined;
    this.rebuildFrom(allNetworks, ownNetworkUser, containers);
    this.lastRebuild = new RebuildInputs(allNetworks, containers);
  }

  private rebuildFrom(
    allNetworks: readonly ActualNetwork[],
    ownNetworkUser: (n: ActualNetwork) => string | undefined,
    containers: readonly ActualContainer[],
  ): void {
    const { portRange, portsPerUser } = this.options;
    const previousBlocks = new Map(this.blocks);
    const previousSubnets = new Map(this.subnets);
    this.blocks.clear();
    this.resetBlockSlots();
    this.ports.clear();
    const foreign: string[] = [];
    const listedSubnets = new Map<string, string>();
    const legacy: { userId: string; start: number }[] = [];
    for (const network of allNetworks) {
      const userId = ownNetworkUser(network);
      if (userId === undefined) {
        foreign.push(...network.subnets);
        continue;
      }
      const subnet = network.subnets[0];
      // A user's egress network holds a second subnet of the pool, under its own key; it has no port block.
      const egress = network.labels[LABELS.networkType] === EGRESS_NETWORK_TYPE;
      if (subnet) listedSubnets.set(egress ? egressSubnetKey(userId) : userId, subnet);
      if (egress) continue;
      const label = parsePortBlockLabel(network.labels[LABELS.portBlock]);
      if (label?.legacy) legacy.push({ userId, start: label.start });
      else if (label) this.holdBlock(userId, { start: label.start, end: label.start + label.size - 1 });
    }
    // Unsized labels after the sized ones, highest start first, so each ends where the next block begins.
    legacy.sort((a, b) => b.start - a.start);
    for (const { userId, start } of legacy) {
      const block = this.legacyBlock(start);
      if (block) this.holdBlock(userId, block);
    }
    for (const container of containers) {
      const userId = container.labels[LABELS.userId];
      const port = Number(container.labels[LABELS.hostPort]);
      if (userId === undefined || this.blocks.has(userId) || !Number.isInteger(port)) continue;
      const start = blockStartOf(portRange, portsPerUser, port);
      if (start !== undefined) this.holdBlock(userId, { start, end: start + portsPerUser - 1 });
    }
    // Reservations made since the listing started (users mid-create) survive the rebuild.
    for (const [userId, block] of previousBlocks) if (!this.blocks.has(userId)) this.holdBlock(userId, block);

    this.subnets.clear();
    this.userSubnetSlots.clear();
    this.subnetSlots.clear();
    this.setForeignSubnets(foreign);
    for (const [userId, subnet] of listedSubnets) this.holdSubnet(userId, subnet);
    const listed = [...foreign, ...listedSubnets.values()]
      .map(parseIpv4Cidr)
      .filter((c): c is Ipv4Cidr => c !== undefined);
    for (const [userId, subnet] of previousSubnets) {
      const cidr = parseIpv4Cidr(subnet);
      // A reservation that a network created meanwhile now overlaps is dropped; the user gets another.
      if (!this.subnets.has(userId) && cidr && !listed.some((c) => overlaps(c, cidr)))
        this.holdSubnet(userId, subnet);
    }
  }

  /** Subnets of networks that are not ours (any installation's, Docker's own): never handed out. */
  setForeignSubnets(subnets: readonly string[]): void {
    this.lastRebuild = undefined;
    for (const s of this.foreignSubnets) for (const slot of this.slotsOf(s)) this.subnetSlots.free(slot);
    this.foreignSubnets = [...subnets];
    for (const s of this.foreignSubnets) for (const slot of this.slotsOf(s)) this.subnetSlots.take(slot);
  }

  /**
   * The user's block: the one it holds, else the preferred one (its network's label) if no other block
   * overlaps it, else the lowest free block of today's size. Undefined when the pool has none left.
   */
  portBlockFor(userId: string, preferred?: PortBlockLabel): PortRange | undefined {
    const held = this.blocks.get(userId);
    if (held !== undefined) return held;
    if (preferred !== undefined) {
      const block = preferred.legacy
        ? this.legacyBlock(preferred.start)
        : { start: preferred.start, end: preferred.start + preferred.size - 1 };
      if (block && this.holdBlock(userId, block)) return block;
    }
    const slot = this.blockSlots.lowestFree();
    if (slot === undefined) return undefined;
    // A free slot shares no port with any held block or excluded port, so holding it cannot fail.
    const block = blockAt(this.options.portRange, this.options.portsPerUser, slot);
    this.holdBlock(userId, block);
    return block;
  }

  subnetFor(userId: string, preferred?: string): string | undefined {
    const held = this.subnets.get(userId);
    if (held) return held;
    const pool = this.pool;
    if (!pool) return undefined;
    const step = 2 ** (32 - this.options.subnetPrefixLength);
    const preferredCidr = preferred ? parseIpv4Cidr(preferred) : undefined;
    let slot: number | undefined;
    if (preferredCidr && preferredCidr.prefixLength === this.options.subnetPrefixLength) {
      const index = (preferredCidr.network - pool.network) / step;
      if (Number.isInteger(index) && this.subnetSlots.isFree(index)) slot = index;
    }
    slot ??= this.subnetSlots.lowestFree();
    if (slot === undefined) return undefined;
    const subnet = formatCidr({
      network: pool.network + slot * step,
      prefixLength: this.options.subnetPrefixLength,
    });
    this.holdSubnet(userId, subnet);
    return subnet;
  }

  /** Forgets a subnet that the engine refused (e.g. it overlaps a network created meanwhile). */
  forgetSubnet(userId: string, subnet: string): void {
    this.lastRebuild = undefined;
    if (this.subnets.get(userId) === subnet) this.releaseSubnet(userId);
    this.setForeignSubnets([...this.foreignSubnets, subnet]);
  }

  release(userId: string): void {
    this.lastRebuild = undefined;
    const block = this.blocks.get(userId);
    if (block !== undefined) this.releaseBlock(userId, block);
    this.releaseSubnet(userId);
    this.releaseSubnet(egressSubnetKey(userId));
  }

  /** The subnet of the user's egress network (a second one from the pool), held as subnetFor holds the first. */
  egressSubnetFor(userId: string): string | undefined {
    return this.subnetFor(egressSubnetKey(userId));
  }

  /** Frees the user's egress subnet (its network was removed); the user keeps its own network's. */
  releaseEgress(userId: string): void {
    this.releaseSubnet(egressSubnetKey(userId));
  }

  forgetEgressSubnet(userId: string, subnet: string): void {
    this.forgetSubnet(egressSubnetKey(userId), subnet);
  }

  /** Ports of the range's blocks (of today's size) that a new user cannot get, of all it has without excluded ones. */
  portStats(): PoolStats {
    const { portsPerUser } = this.options;
    const excluded = this.excludedSlots.length;
    return {
      allocated: (this.blockSlots.size - excluded) * portsPerUser,
      capacity: (this.blockSlots.count - excluded) * portsPerUser,
    };
  }

  /** Subnets of the pool that a new user cannot get (held by users, or overlapping other networks), of all. */
  subnetStats(): PoolStats {
    return { allocated: this.subnetSlots.size, capacity: this.subnetSlots.count };
  }

  blockOf(userId: string): PortRange | undefined {
    return this.blocks.get(userId);
  }

  /** Why a user gets no block (status, `plan`): the pool, and how to grow it. */
  portPoolExhaustedMessage(): string {
    const { portRange, portsPerUser, excludedPorts = [] } = this.options;
    const blocks = this.blockSlots.count - this.excludedSlots.length;
    const skipped =
      this.excludedSlots.length > 0
        ? `, ${this.excludedSlots.length} more skipped for MCP_PORTAL_PORT_EXCLUDE (${excludedPorts.map(formatPortSpan).join(",")})`
        : "";
    return (
      `no free port block left: all ${blocks} blocks of ${portsPerUser} ports in ${formatPortSpan(portRange)} are ` +
      `held${skipped}; widen MCP_PORTAL_PORT_RANGE_START/_END or lower MCP_PORTAL_PORTS_PER_USER (both apply to ` +
      `new users; existing blocks stay as they are)`
    );
  }

  /** Why a user gets no subnet (status): the pool, and how to grow it. */
  subnetPoolExhaustedMessage(): string {
    const { subnetPool, subnetPrefixLength } = this.options;
    const { capacity } = this.subnetStats();
    return (
      `no free subnet left: all ${capacity} /${subnetPrefixLength} subnets of ${subnetPool} are taken by users' ` +
      `networks or overlap other networks; widen MCP_PORTAL_USER_NETWORK_SUBNET_BASE or raise ` +
      `MCP_PORTAL_USER_NETWORK_SUBNET_SIZE (both apply to new users; existing networks stay as they are)`
    );
  }

  private resetBlockSlots(): void {
    this.blockSlots.clear();
    for (const slot of this.excludedSlots) this.blockSlots.take(slot);
  }

  /**
   * The block of a bare (legacy) `port_block` label: LEGACY_PORT_BLOCK_SIZE ports from `start`, ending where
   * the next held block begins (an installation that ran with smaller blocks had them back to back). Undefined
   * when `start` itself is held or out of bounds.
   */
  private legacyBlock(start: number): PortRange | undefined {
    const { maxPort } = this.ports;
    if (start > maxPort) return undefined;
    const longest = { start, end: Math.min(start + LEGACY_PORT_BLOCK_SIZE - 1, maxPort) };
    const next = this.ports.firstUsed(longest);
    if (next === start) return undefined;
    return next === undefined ? longest : { start, end: next - 1 };
  }

  /** Holds `block` for the user unless it overlaps another user's block (first come keeps it). */
  private holdBlock(userId: string, block: PortRange): boolean {
    const size = block.end - block.start + 1;
    if (block.start < 1 || block.end > this.ports.maxPort || size < 1 || size > MAX_BLOCK_SIZE) return false;
    const previous = this.blocks.get(userId);
    if (previous !== undefined && previous.start === block.start && previous.end === block.end) return true;
    if (this.ports.firstUsed(block, previous) !== undefined) return false;
    if (previous !== undefined) this.releaseBlock(userId, previous);
    this.blocks.set(userId, block);
    this.ports.set(block, true);
    const slots = blocksCovering(this.options.portRange, this.options.portsPerUser, block);
    if (slots) for (let i = slots.first; i <= slots.last; i++) this.blockSlots.take(i);
    return true;
  }

  private releaseBlock(userId: string, block: PortRange): void {
    this.blocks.delete(userId);
    this.ports.set(block, false);
    const slots = blocksCovering(this.options.portRange, this.options.portsPerUser, block);
    if (slots) for (let i = slots.first; i <= slots.last; i++) this.blockSlots.free(i);
  }

  private holdSubnet(userId: string, subnet: string): void {
    this.releaseSubnet(userId);
    this.subnets.set(userId, subnet);
    const slots = this.slotsOf(subnet);
    this.userSubnetSlots.set(userId, slots);
    for (const slot of slots) this.subnetSlots.take(slot);
  }

  private releaseSubnet(userId: string): void {
    for (const slot of this.userSubnetSlots.get(userId) ?? []) this.subnetSlots.free(slot);
    this.userSubnetSlots.delete(userId);
    this.subnets.delete(userId);
  }

  /** The pool's slots a subnet overlaps (none when it lies outside the pool). */
  private slotsOf(subnet: string): number[] {
    const pool = this.pool;
    const cidr = parseIpv4Cidr(subnet);
    if (!pool || !cidr || !overlaps(pool, cidr) || this.subnetSlots.count === 0) return [];
    const step = 2 ** (32 - this.options.subnetPrefixLength);
    const poolEnd = pool.network + this.subnetSlots.count * step - 1;
    const start = Math.max(cidr.network, pool.network);
    const end = Math.min(cidr.network + 2 ** (32 - cidr.prefixLength) - 1, poolEnd);
    const slots: number[] = [];
    for (let i = Math.floor((start - pool.network) / step); i <= Math.floor((end - pool.network) / step); i++)
      slots.push(i);
    return slots;
  }
}

/**
 * The parts of a listing a rebuild reads, compared element by element without building strings: network ids
 * (a network's subnet and labels never change while its id stays) and each container's user and host port
 * labels. Another order counts as a change (the rebuild then runs; only slower).
 */
class RebuildInputs {
  private readonly networkIds: string[];
  private readonly containerUsers: (string | undefined)[];
  private readonly containerPorts: (string | undefined)[];

  constructor(networks: readonly ActualNetwork[], containers: readonly ActualContainer[]) {
    this.networkIds = networks.map((n) => n.id);
    this.containerUsers = containers.map((c) => c.labels[LABELS.userId]);
    this.containerPorts = containers.map((c) => c.labels[LABELS.hostPort]);
  }

  matches(networks: readonly ActualNetwork[], containers: readonly ActualContainer[]): boolean {
    if (networks.length !== this.networkIds.length || containers.length !== this.containerUsers.length)
      return false;
    for (let i = 0; i < networks.length; i++) if (networks[i]!.id !== this.networkIds[i]) return false;
    for (let i = 0; i < containers.length; i++) {
      const labels = containers[i]!.labels;
      if (
        labels[LABELS.userId] !== this.containerUsers[i] ||
        labels[LABELS.hostPort] !== this.containerPorts[i]
      )
        return false;
    }
    return true;
  }
}
