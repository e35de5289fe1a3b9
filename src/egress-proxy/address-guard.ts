import { isIP } from "node:net";
import { parseIpv4Cidr, overlaps } from "../desired/subnets.js";
import { ipv4ToNumber } from "./sources.js";

/*
 * Addresses an allowed name may not lead to, whatever DNS says (a name an admin allowed could be pointed at
 * them later): the proxy's own host and containers, link-local (cloud metadata at 169.254.169.254), and the
 * egress network itself. Private ranges stay reachable: an allowed internal API is a legitimate destination.
 */
const BLOCKED_V4 = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4"];

export function blockedAddress(address: string, egressSubnet: string): string | undefined {
  const family = isIP(address);
  if (family === 6) {
    const lower = address.toLowerCase();
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    if (mapped) return blockedAddress(mapped[1]!, egressSubnet);
    if (lower === "::" || lower === "::1") return "loopback or unspecified address";
    if (/^fe[89ab]/.test(lower)) return "link-local address";
    if (lower.startsWith("ff")) return "multicast address";
    return undefined;
  }
  if (family !== 4) return "not an IP address";
  const n = ipv4ToNumber(address);
  const own = parseIpv4Cidr(`${address}/32`);
  if (n === undefined || !own) return "not an IP address";
  for (const range of [...BLOCKED_V4, egressSubnet]) {
    const cidr = parseIpv4Cidr(range);
    if (cidr && overlaps(cidr, own))
      return range === egressSubnet ? "an address on the egress network" : `an address in ${range}`;
  }
  return undefined;
}
