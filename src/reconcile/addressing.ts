import { EGRESS_PROXY_OFFSET_FROM_END } from "../desired/egress-desired.js";
import { addressInSubnet, parseIpv4Cidr } from "../desired/subnets.js";
import type { ContainerSpec } from "../desired/types.js";
import type { Addressing } from "../docker/runtime.js";

/** The proxy learns its egress network's subnet here, to map a source address back to a server's offset. */
export const EGRESS_SUBNET_ENV = "MCP_PORTAL_EGRESS_SUBNET";

/**
 * Pure: a container's fixed addresses, DNS and addressing-only environment, from the subnets of the networks it
 * joins. Undefined for a container with none of these (every unrestricted server).
 */
export function addressingFor(
  spec: ContainerSpec,
  subnets: Readonly<Record<string, string>>,
): { ok: true; value: Addressing | undefined } | { ok: false; reason: string } {
  const extras = spec.extraNetworks ?? [];
  if (spec.addressOffset === undefined && extras.every((n) => n.addressOffsetFromEnd === undefined))
    return { ok: true, value: undefined };
  const addressing: Addressing = { addresses: {} };
  const cidrOf = (network: string) => {
    const subnet = subnets[network];
    return subnet === undefined ? undefined : parseIpv4Cidr(subnet);
  };
  if (spec.addressOffset !== undefined) {
    const cidr = cidrOf(spec.network);
    if (!cidr) return { ok: false, reason: `the subnet of network ${spec.network} is not known yet` };
    const address = addressInSubnet(cidr, spec.addressOffset);
    const proxy = addressInSubnet(cidr, -EGRESS_PROXY_OFFSET_FROM_END);
    if (!address || !proxy || address === proxy) {
      return {
        ok: false,
        reason:
          `the server's address (offset ${spec.addressOffset} in its port block) does not fit the egress network ` +
          `${spec.network} (${subnets[spec.network]}): its port block is larger than the subnet holds`,
      };
    }
    addressing.addresses[spec.network] = address;
    if (spec.dnsFromEgressProxy) addressing.dns = [proxy];
  }
  for (const extra of extras) {
    if (extra.addressOffsetFromEnd === undefined) continue;
    const cidr = cidrOf(extra.name);
    const address = cidr ? addressInSubnet(cidr, -extra.addressOffsetFromEnd) : undefined;
    if (!address) return { ok: false, reason: `the subnet of network ${extra.name} is not known yet` };
    addressing.addresses[extra.name] = address;
    addressing.env = { ...addressing.env, [EGRESS_SUBNET_ENV]: subnets[extra.name]! };
  }
  return { ok: true, value: addressing };
}
