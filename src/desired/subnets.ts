export interface Ipv4Cidr {
  network: number;
  prefixLength: number;
}

export function parseIpv4Cidr(cidr: string): Ipv4Cidr | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!match) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const prefixLength = Number(match[5]);
  if (octets.some((o) => o > 255) || prefixLength > 32) return undefined;
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  return { network: maskNetwork(address, prefixLength), prefixLength };
}

function maskNetwork(address: number, prefixLength: number): number {
  const size = 2 ** (32 - prefixLength);
  return Math.floor(address / size) * size;
}

export function formatIpv4(address: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join(".");
}

export function formatCidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;
}

export function overlaps(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  const aEnd = a.network + 2 ** (32 - a.prefixLength) - 1;
  const bEnd = b.network + 2 ** (32 - b.prefixLength) - 1;
  return a.network <= bEnd && b.network <= aEnd;
}

/** The first usable address, which Docker's bridge driver takes as the gateway. */
export function gatewayOf(cidr: Ipv4Cidr): string {
  return formatIpv4(cidr.network + 1);
}

/** How many subnets of `prefixLength` the pool holds (0 when they are larger than the pool). */
export function subnetPoolCapacity(pool: Ipv4Cidr, prefixLength: number): number {
  return prefixLength >= pool.prefixLength ? 2 ** (prefixLength - pool.prefixLength) : 0;
}

/** Containers a bridge subnet holds: every address but the network, the broadcast and the bridge (gateway). */
export function containersPerSubnet(prefixLength: number): number {
  return Math.max(0, 2 ** (32 - prefixLength) - 3);
}

/** The address `offset` after the subnet's start (negative: before its end); undefined outside the usable range. */
export function addressInSubnet(cidr: Ipv4Cidr, offset: number): string | undefined {
  const size = 2 ** (32 - cidr.prefixLength);
  const index = offset < 0 ? size + offset : offset;
  // Not the network address, the bridge's (the first usable one) nor the broadcast address.
  if (!Number.isInteger(index) || index < 2 || index > size - 2) return undefined;
  return formatIpv4(cidr.network + index);
}
