import type { ActualContainer, ActualNetwork } from "../docker/runtime.js";
import { LABELS } from "../labels.js";
import { type PortRange, blockAt, blockCount, blockStartOf } from "../desired/port-blocks.js";
import { type Ipv4Cidr, formatCidr, overlaps, parseIpv4Cidr } from "../desired/subnets.js";

export interface AllocatorOptions {
  portRange: PortRange;
  portsPerUser: number;
  subnetPool: string;
  subnetPrefixLength: number;
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

/**
 * Port blocks and subnets per user. The engine is the memory (network labels, container port labels); this
 * only mirrors it and hands out new ones under the single-threaded event loop, so two users never race to the
 * same block or subnet. Lookups and allocations are O(1) amortised; a rebuild is linear in the listing.
 */
export class NetworkAllocator {
  private readonly blocks = new Map<string, number>();
  private readonly blockSlots: SlotPool;
  private readonly subnets = new Map<string, string>();
  /** The pool slots each user's subnet overlaps (one, unless it is not aligned to the pool). */
  private readonly userSubnetSlots = new Map<string, number[]>();
  private readonly subnetSlots: SlotPool;
  private foreignSubnets: string[] = [];
  private readonly pool: Ipv4Cidr | undefined;

  constructor(private readonly options: AllocatorOptions) {
    this.blockSlots = new SlotPool(blockCount(options.portRange, options.portsPerUser));
    this.pool = parseIpv4Cidr(options.subnetPool);
    const slots =
      this.pool && options.subnetPrefixLength >= this.pool.prefixLength
        ? 2 ** (options.subnetPrefixLength - this.pool.prefixLength)
        : 0;
    this.subnetSlots = new SlotPool(slots);
  }

  /** Rebuilds from a full listing: every network on the engine and our containers. */
  rebuild(
    allNetworks: readonly ActualNetwork[],
    ownNetworkUser: (n: ActualNetwork) => string | undefined,
    containers: readonly ActualContainer[],
  ): void {
    const { portRange, portsPerUser } = this.options;
    const previousBlocks = new Map(this.blocks);
    const previousSubnets = new Map(this.subnets);
    this.blocks.clear();
    this.blockSlots.clear();
    const foreign: string[] = [];
    const listedSubnets = new Map<string, string>();
    for (const network of allNetworks) {
      const userId = ownNetworkUser(network);
      if (userId === undefined) {
        foreign.push(...network.subnets);
        continue;
      }
      const subnet = network.subnets[0];
      if (subnet) listedSubnets.set(userId, subnet);
      const start = Number(network.labels[LABELS.portBlock]);
      if (Number.isInteger(start) && blockStartOf(portRange, portsPerUser, start) === start)
        this.holdBlock(userId, start);
    }
    for (const container of containers) {
      const userId = container.labels[LABELS.userId];
      const port = Number(container.labels[LABELS.hostPort]);
      if (userId === undefined || this.blocks.has(userId) || !Number.isInteger(port)) continue;
      const start = blockStartOf(portRange, portsPerUser, port);
      if (start !== undefined) this.holdBlock(userId, start);
    }
    // Reservations made since the listing started (users mid-create) survive the rebuild.
    for (const [userId, start] of previousBlocks) if (!this.blocks.has(userId)) this.holdBlock(userId, start);

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
    for (const s of this.foreignSubnets) for (const slot of this.slotsOf(s)) this.subnetSlots.free(slot);
    this.foreignSubnets = [...subnets];
    for (const s of this.foreignSubnets) for (const slot of this.slotsOf(s)) this.subnetSlots.take(slot);
  }

  /** The user's block: the one it holds, else the preferred one if free, else the lowest free block. */
  portBlockFor(userId: string, preferredStart?: number): PortRange | undefined {
    const { portRange, portsPerUser } = this.options;
    const held = this.blocks.get(userId);
    if (held !== undefined) return { start: held, end: held + portsPerUser - 1 };
    let slot: number | undefined;
    if (preferredStart !== undefined) {
      const index = (preferredStart - portRange.start) / portsPerUser;
      if (Number.isInteger(index) && this.blockSlots.isFree(index)) slot = index;
    }
    slot ??= this.blockSlots.lowestFree();
    if (slot === undefined) return undefined;
    const block = blockAt(portRange, portsPerUser, slot);
    this.holdBlock(userId, block.start);
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
    if (this.subnets.get(userId) === subnet) this.releaseSubnet(userId);
    this.setForeignSubnets([...this.foreignSubnets, subnet]);
  }

  release(userId: string): void {
    const start = this.blocks.get(userId);
    if (start !== undefined) {
      this.blocks.delete(userId);
      this.blockSlots.free(this.blockIndex(start));
    }
    this.releaseSubnet(userId);
  }

  portStats(): { allocated: number; capacity: number } {
    const { portsPerUser } = this.options;
    return { allocated: this.blocks.size * portsPerUser, capacity: this.blockSlots.count * portsPerUser };
  }

  blockOf(userId: string): PortRange | undefined {
    const start = this.blocks.get(userId);
    return start === undefined ? undefined : { start, end: start + this.options.portsPerUser - 1 };
  }

  private blockIndex(start: number): number {
    return (start - this.options.portRange.start) / this.options.portsPerUser;
  }

  /** Holds `start` for the user unless another user holds it already (first come keeps it). */
  private holdBlock(userId: string, start: number): void {
    const index = this.blockIndex(start);
    if (!this.blockSlots.isFree(index)) return;
    const previous = this.blocks.get(userId);
    if (previous !== undefined) this.blockSlots.free(this.blockIndex(previous));
    this.blocks.set(userId, start);
    this.blockSlots.take(index);
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
