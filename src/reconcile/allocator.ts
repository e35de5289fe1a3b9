import type { ActualContainer, ActualNetwork } from "../docker/runtime.js";
import { LABELS } from "../labels.js";
import { type PortRange, allocateBlock, blockAt, blockCount, blockStartOf } from "../desired/port-blocks.js";
import { type Ipv4Cidr, allocateSubnet, overlaps, parseIpv4Cidr } from "../desired/subnets.js";

export interface AllocatorOptions {
  portRange: PortRange;
  portsPerUser: number;
  subnetPool: string;
  subnetPrefixLength: number;
}

/**
 * Port blocks and subnets per user. The engine is the memory (network labels, container port labels); this
 * only mirrors it and hands out new ones under the single-threaded event loop, so two users never race to the
 * same block or subnet.
 */
export class NetworkAllocator {
  private readonly blocks = new Map<string, number>();
  private readonly subnets = new Map<string, string>();
  private foreignSubnets: string[] = [];

  constructor(private readonly options: AllocatorOptions) {}

  /** Rebuilds from a full listing: every network on the engine and our containers. */
  rebuild(
    allNetworks: readonly ActualNetwork[],
    ownNetworkUser: (n: ActualNetwork) => string | undefined,
    containers: readonly ActualContainer[],
  ): void {
    const { portRange, portsPerUser } = this.options;
    const blocks = new Map<string, number>();
    // The starts in `blocks`, kept alongside so a full listing costs no scan of every block per object.
    const taken = new Set<number>();
    const hold = (userId: string, start: number) => {
      const previous = blocks.get(userId);
      if (previous !== undefined) taken.delete(previous);
      blocks.set(userId, start);
      taken.add(start);
    };
    const subnets = new Map<string, string>();
    const foreign: string[] = [];
    for (const network of allNetworks) {
      const userId = ownNetworkUser(network);
      if (userId === undefined) {
        foreign.push(...network.subnets);
        continue;
      }
      const subnet = network.subnets[0];
      if (subnet) subnets.set(userId, subnet);
      const start = Number(network.labels[LABELS.portBlock]);
      if (
        Number.isInteger(start) &&
        !taken.has(start) &&
        blockStartOf(portRange, portsPerUser, start) === start
      )
        hold(userId, start);
    }
    for (const container of containers) {
      const userId = container.labels[LABELS.userId];
      const port = Number(container.labels[LABELS.hostPort]);
      if (userId === undefined || blocks.has(userId) || !Number.isInteger(port)) continue;
      const start = blockStartOf(portRange, portsPerUser, port);
      if (start !== undefined && !taken.has(start)) hold(userId, start);
    }
    // Reservations made since the listing started (users mid-create) survive the rebuild.
    for (const [userId, start] of this.blocks)
      if (!blocks.has(userId) && !taken.has(start)) hold(userId, start);
    const listed = [...foreign, ...subnets.values()]
      .map(parseIpv4Cidr)
      .filter((c): c is Ipv4Cidr => c !== undefined);
    for (const [userId, subnet] of this.subnets) {
      const cidr = parseIpv4Cidr(subnet);
      // A reservation that a network created meanwhile now overlaps is dropped; the user gets another.
      if (!subnets.has(userId) && cidr && !listed.some((c) => overlaps(c, cidr))) subnets.set(userId, subnet);
    }
    this.blocks.clear();
    this.subnets.clear();
    for (const [k, v] of blocks) this.blocks.set(k, v);
    for (const [k, v] of subnets) this.subnets.set(k, v);
    this.foreignSubnets = foreign;
  }

  setForeignSubnets(subnets: readonly string[]): void {
    this.foreignSubnets = [...subnets];
  }

  /** The user's block: the one it holds, else the preferred one if free, else the lowest free block. */
  portBlockFor(userId: string, preferredStart?: number): PortRange | undefined {
    const { portRange, portsPerUser } = this.options;
    const held = this.blocks.get(userId);
    if (held !== undefined) return { start: held, end: held + portsPerUser - 1 };
    const block = allocateBlock(portRange, portsPerUser, new Set(this.blocks.values()), preferredStart);
    if (block) this.blocks.set(userId, block.start);
    return block;
  }

  subnetFor(userId: string, preferred?: string): string | undefined {
    const held = this.subnets.get(userId);
    if (held) return held;
    const inUse = [
      ...this.foreignSubnets,
      ...[...this.subnets.entries()].filter(([u]) => u !== userId).map(([, s]) => s),
    ];
    const subnet = allocateSubnet(this.options.subnetPool, this.options.subnetPrefixLength, inUse, preferred);
    if (subnet) this.subnets.set(userId, subnet);
    return subnet;
  }

  /** Forgets a subnet that the engine refused (e.g. it overlaps a network created meanwhile). */
  forgetSubnet(userId: string, subnet: string): void {
    if (this.subnets.get(userId) === subnet) this.subnets.delete(userId);
    this.foreignSubnets.push(subnet);
  }

  release(userId: string): void {
    this.blocks.delete(userId);
    this.subnets.delete(userId);
  }

  portStats(): { allocated: number; capacity: number } {
    const { portRange, portsPerUser } = this.options;
    return {
      allocated: this.blocks.size * portsPerUser,
      capacity: blockCount(portRange, portsPerUser) * portsPerUser,
    };
  }

  blockOf(userId: string): PortRange | undefined {
    const start = this.blocks.get(userId);
    return start === undefined
      ? undefined
      : blockAt(
          this.options.portRange,
          this.options.portsPerUser,
          (start - this.options.portRange.start) / this.options.portsPerUser,
        );
  }
}
