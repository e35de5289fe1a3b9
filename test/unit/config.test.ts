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
