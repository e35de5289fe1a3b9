import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig: MCP_PORTAL_ALLOWED_IMAGES", () => {
  it("is unset by default (any image runs unless policy.json gives allowed_images)", () => {
    expect(loadConfig({}).defaultAllowedImages).toBeUndefined();
    expect(loadConfig({ MCP_PORTAL_ALLOWED_IMAGES: "" }).defaultAllowedImages).toBeUndefined();
    expect(loadConfig({ MCP_PORTAL_ALLOWED_IMAGES: " , ," }).defaultAllowedImages).toBeUndefined();
  });

  it("reads comma-separated globs, trimmed", () => {
    expect(
      loadConfig({ MCP_PORTAL_ALLOWED_IMAGES: "mcp/*, ghcr.io/acme/* ,registry:5000/tool?" })
        .defaultAllowedImages,
    ).toEqual(["mcp/*", "ghcr.io/acme/*", "registry:5000/tool?"]);
  });

  it("refuses a glob longer than policy.json allows", () => {
    expect(() => loadConfig({ MCP_PORTAL_ALLOWED_IMAGES: `mcp/${"a".repeat(300)}` })).toThrow(ConfigError);
  });
});

describe("loadConfig: port and subnet pools", () => {
  it("defaults to 1,231 blocks of 16 ports in 10000-29999 and /27s of 10.199.0.0/16", () => {
    const config = loadConfig({});
    expect(config.portRange).toEqual({ start: 10000, end: 29999 });
    expect(config.portsPerUser).toBe(16);
    expect(config.defaultLimits.max_ports).toBe(16);
    expect(config.excludedPorts).toContainEqual({ start: 27017, end: 27019 });
    expect(config.subnetPool).toEqual({ base: "10.199.0.0/16", prefixLength: 27 });
  });

  it("reads MCP_PORTAL_PORT_EXCLUDE as ports and ranges; empty excludes nothing", () => {
    expect(loadConfig({ MCP_PORTAL_PORT_EXCLUDE: "" }).excludedPorts).toEqual([]);
    expect(loadConfig({ MCP_PORTAL_PORT_EXCLUDE: "10001, 10100-10199" }).excludedPorts).toEqual([
      { start: 10001, end: 10001 },
      { start: 10100, end: 10199 },
    ]);
    expect(() => loadConfig({ MCP_PORTAL_PORT_EXCLUDE: "27017:27019" })).toThrow(
      /MCP_PORTAL_PORT_EXCLUDE: "27017:27019" is not a port or a range a-b of ports/,
    );
  });

  it("refuses a range that holds no block once excluded ports are left out", () => {
    const env = {
      MCP_PORTAL_PORT_RANGE_START: "20000",
      MCP_PORTAL_PORT_RANGE_END: "20031",
      MCP_PORTAL_PORTS_PER_USER: "16",
    };
    expect(loadConfig({ ...env, MCP_PORTAL_PORT_EXCLUDE: "20000" }).portRange.end).toBe(20031);
    expect(() => loadConfig({ ...env, MCP_PORTAL_PORT_EXCLUDE: "20000,20020" })).toThrow(
      /MCP_PORTAL_PORT_RANGE_END: port range 20000-20031 must hold at least one block/,
    );
    expect(() => loadConfig({ ...env, MCP_PORTAL_PORT_RANGE_END: "20010" })).toThrow(ConfigError);
  });

  it("refuses a subnet pool that is no IPv4 network or smaller than one subnet", () => {
    expect(() => loadConfig({ MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "300.1.0.0/16" })).toThrow(
      /MCP_PORTAL_USER_NETWORK_SUBNET_BASE: must be an IPv4 CIDR/,
    );
    expect(() =>
      loadConfig({
        MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "10.9.0.0/28",
        MCP_PORTAL_USER_NETWORK_SUBNET_SIZE: "27",
      }),
    ).toThrow(/MCP_PORTAL_USER_NETWORK_SUBNET_SIZE/);
  });
});
