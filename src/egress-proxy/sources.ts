import type { EgressPolicyDocument, EgressPolicyEntry } from "../contracts/egress-policy.js";
import { type HostPattern, parseHostPattern } from "../desired/egress-rules.js";
import { type Ipv4Cidr, parseIpv4Cidr } from "../desired/subnets.js";

/** A restricted server as the proxy knows it: by its fixed address on the egress network. */
export interface SourceServer {
  server: string;
  mode: "none" | "allow";
  patterns: HostPattern[];
}

/**
 * Maps a connection's source address to the restricted server that holds it. Docker gives each restricted
 * server its fixed address on the internal network, and a container without NET_ADMIN cannot take another's,
 * so the address is who is asking. Anything else (the user's unrestricted servers, a stray) is nobody.
 */
export class SourceMap {
  private readonly byAddress = new Map<number, SourceServer>();
  private readonly subnet: Ipv4Cidr;

  constructor(policy: EgressPolicyDocument, subnet: string) {
    const cidr = parseIpv4Cidr(subnet);
    if (!cidr) throw new Error(`not an IPv4 subnet: ${subnet}`);
    this.subnet = cidr;
    for (const entry of policy.servers) this.byAddress.set(cidr.network + entry.offset, toSource(entry));
  }

  /** The server at `address` (IPv4, or IPv4-mapped IPv6 as Node reports it), or undefined. */
  lookup(address: string | undefined): SourceServer | undefined {
    const numeric = ipv4ToNumber(address?.replace(/^::ffff:/, ""));
    if (numeric === undefined) return undefined;
    const size = 2 ** (32 - this.subnet.prefixLength);
    if (numeric < this.subnet.network || numeric >= this.subnet.network + size) return undefined;
    return this.byAddress.get(numeric);
  }
}

function toSource(entry: EgressPolicyEntry): SourceServer {
  return {
    server: entry.server,
    mode: entry.mode,
    patterns: entry.allow.map(parseHostPattern).filter((p): p is HostPattern => p !== undefined),
  };
}

export function ipv4ToNumber(address: string | undefined): number | undefined {
  const match = address === undefined ? null : /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (!match) return undefined;
  const octets = match.slice(1).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return octets.reduce((acc, o) => acc * 256 + o, 0);
}
