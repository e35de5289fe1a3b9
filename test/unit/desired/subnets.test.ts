import { describe, expect, it } from "vitest";
import {
  allocateSubnet,
  formatCidr,
  gatewayOf,
  overlaps,
  parseIpv4Cidr,
} from "../../../src/desired/subnets.js";

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

describe("allocateSubnet", () => {
  const POOL = "172.20.0.0/16";

  it("hands out the lowest /24 of the pool when nothing is used", () => {
    expect(allocateSubnet(POOL, 24, [])).toBe("172.20.0.0/24");
  });

  it("skips subnets in use, ours or foreign", () => {
    expect(allocateSubnet(POOL, 24, ["172.20.0.0/24", "172.20.1.0/24"])).toBe("172.20.2.0/24");
  });

  it("skips a /24 inside the pool held by a foreign network with a different prefix", () => {
    expect(allocateSubnet(POOL, 24, ["172.20.0.128/25"])).toBe("172.20.1.0/24");
    expect(allocateSubnet(POOL, 24, ["172.20.0.0/23"])).toBe("172.20.2.0/24");
    expect(allocateSubnet(POOL, 24, ["172.20.0.7/32"])).toBe("172.20.1.0/24");
  });

  it("skips the foreign /24 and keeps the ones around it", () => {
    const inUse = ["172.20.0.0/24", "172.20.1.0/24", "172.20.3.0/24"];
    expect(allocateSubnet(POOL, 24, inUse)).toBe("172.20.2.0/24");
    expect(allocateSubnet(POOL, 24, [...inUse, "172.20.2.0/24"])).toBe("172.20.4.0/24");
  });

  it("ignores networks outside the pool and unparsable entries", () => {
    expect(allocateSubnet(POOL, 24, ["10.0.0.0/8", "fd00::/64", "garbage"])).toBe("172.20.0.0/24");
  });

  it("keeps the preferred subnet when it is free, inside the pool and of the right size", () => {
    expect(allocateSubnet(POOL, 24, ["172.20.0.0/24"], "172.20.9.0/24")).toBe("172.20.9.0/24");
  });

  it("ignores a preferred subnet that is taken, outside the pool or of another size", () => {
    expect(allocateSubnet(POOL, 24, ["172.20.9.0/24"], "172.20.9.0/24")).toBe("172.20.0.0/24");
    expect(allocateSubnet(POOL, 24, ["172.20.8.0/21"], "172.20.9.0/24")).toBe("172.20.0.0/24");
    expect(allocateSubnet(POOL, 24, [], "10.9.0.0/24")).toBe("172.20.0.0/24");
    expect(allocateSubnet(POOL, 24, [], "172.20.9.0/25")).toBe("172.20.0.0/24");
    expect(allocateSubnet(POOL, 24, [], "not a cidr")).toBe("172.20.0.0/24");
  });

  it("returns undefined when the pool is exhausted or covered by a foreign network", () => {
    const all = Array.from({ length: 4 }, (_, i) => `10.0.${i}.0/24`);
    expect(allocateSubnet("10.0.0.0/22", 24, all)).toBeUndefined();
    expect(allocateSubnet("10.0.0.0/22", 24, all.slice(0, 3))).toBe("10.0.3.0/24");
    expect(allocateSubnet(POOL, 24, ["172.16.0.0/12"])).toBeUndefined();
    expect(allocateSubnet(POOL, 24, ["172.20.0.0/16"], "172.20.4.0/24")).toBeUndefined();
  });

  it("refuses a subnet size larger than the pool and a malformed pool", () => {
    expect(allocateSubnet(POOL, 15, [])).toBeUndefined();
    expect(allocateSubnet("nope", 24, [])).toBeUndefined();
  });

  it("supports other sizes", () => {
    expect(allocateSubnet(POOL, 28, ["172.20.0.0/28"])).toBe("172.20.0.16/28");
    expect(allocateSubnet(POOL, 16, [])).toBe("172.20.0.0/16");
    expect(allocateSubnet(POOL, 16, ["172.20.200.0/24"])).toBeUndefined();
  });
});
