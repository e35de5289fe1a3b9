import { describe, expect, it } from "vitest";
import { formatCidr, gatewayOf, overlaps, parseIpv4Cidr } from "../../../src/desired/subnets.js";

function cidr(text: string) {
  const parsed = parseIpv4Cidr(text);
  if (!parsed) throw new Error(`bad test CIDR ${text}`);
  return parsed;
}

describe("CIDR helpers", () => {
  it("parse, mask the host bits and format back", () => {
    expect(formatCidr(cidr("172.20.0.0/16"))).toBe("172.20.0.0/16");
    expect(formatCidr(cidr("172.20.5.77/24"))).toBe("172.20.5.0/24");
    expect(formatCidr(cidr(" 10.0.0.1/8 "))).toBe("10.0.0.0/8");
    expect(formatCidr(cidr("255.255.255.255/32"))).toBe("255.255.255.255/32");
    expect(formatCidr(cidr("1.2.3.4/0"))).toBe("0.0.0.0/0");
  });

  it("refuse malformed input", () => {
    for (const bad of ["172.20.0.0", "172.20.0.0/33", "256.0.0.0/8", "a.b.c.d/8", "fd00::/64", "1.2.3/8"])
      expect(parseIpv4Cidr(bad)).toBeUndefined();
  });

  it("detect overlaps both ways, including containment and adjacency", () => {
    expect(overlaps(cidr("172.20.0.0/16"), cidr("172.20.5.0/24"))).toBe(true);
    expect(overlaps(cidr("172.20.5.0/24"), cidr("172.20.0.0/16"))).toBe(true);
    expect(overlaps(cidr("172.20.0.0/24"), cidr("172.20.1.0/24"))).toBe(false);
    expect(overlaps(cidr("172.20.0.0/23"), cidr("172.20.1.0/24"))).toBe(true);
    expect(overlaps(cidr("10.0.0.0/8"), cidr("172.16.0.0/12"))).toBe(false);
  });

  it("take the first usable address as gateway", () => {
    expect(gatewayOf(cidr("172.20.7.0/24"))).toBe("172.20.7.1");
    expect(gatewayOf(cidr("10.1.0.0/16"))).toBe("10.1.0.1");
  });
});
