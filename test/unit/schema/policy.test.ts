import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY, PolicyFile } from "../../../src/schema/policy.js";

describe("policy.json", () => {
  it("keeps allowed_images absent when the file does not give it, so MCP_PORTAL_ALLOWED_IMAGES can apply", () => {
    expect(PolicyFile.parse({}).allowed_images).toBeUndefined();
    expect(DEFAULT_POLICY.allowed_images).toBeUndefined();
    expect(PolicyFile.parse({ allowed_images: [] }).allowed_images).toEqual([]);
    expect(PolicyFile.parse({ allowed_images: ["mcp/*"] }).allowed_images).toEqual(["mcp/*"]);
  });

  it("fills users and server_security with empty maps", () => {
    expect(PolicyFile.parse({})).toMatchObject({ users: {}, server_security: {}, default_limits: {} });
  });

  it("accepts user_env_allow as a list of environment names", () => {
    const policy = PolicyFile.parse({
      server_security: { p: { user: "0:0", user_env_allow: ["TZ", "LANG"] } },
    });
    expect(policy.server_security.p?.user_env_allow).toEqual(["TZ", "LANG"]);
    expect(PolicyFile.safeParse({ server_security: { p: { user_env_allow: ["not a name"] } } }).success).toBe(
      false,
    );
    expect(PolicyFile.safeParse({ server_security: { p: { user_env_allow: "TZ" } } }).success).toBe(false);
  });
});
