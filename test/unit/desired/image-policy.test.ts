import { describe, expect, it } from "vitest";
import {
  describeAllowedImages,
  imageNotAllowedMessage,
  isImageAllowed,
  normalizeImageName,
  resolveAllowedImages,
} from "../../../src/desired/image-policy.js";

describe("normalizeImageName", () => {
  it("adds docker.io (and library/) as Docker does", () => {
    expect(normalizeImageName("mcp/github")).toBe("docker.io/mcp/github");
    expect(normalizeImageName("redis")).toBe("docker.io/library/redis");
    expect(normalizeImageName("a/b/c")).toBe("docker.io/a/b/c");
  });

  it("leaves names with a registry alone", () => {
    expect(normalizeImageName("ghcr.io/acme/tool")).toBe("ghcr.io/acme/tool");
    expect(normalizeImageName("localhost/tool")).toBe("localhost/tool");
    expect(normalizeImageName("registry:5000/tool")).toBe("registry:5000/tool");
    expect(normalizeImageName("docker.io/mcp/github")).toBe("docker.io/mcp/github");
  });

  // Docker treats `docker.io/redis` as `docker.io/library/redis`.
  it("adds library/ to a one-component docker.io name", () => {
    expect(normalizeImageName("docker.io/redis")).toBe("docker.io/library/redis");
  });
});

describe("isImageAllowed", () => {
  it("allows everything with the default ['*']", () => {
    expect(isImageAllowed("mcp/github", ["*"])).toBe(true);
    expect(isImageAllowed("ghcr.io/x/y", ["*"])).toBe(true);
  });

  it("denies everything with an empty list", () => {
    expect(isImageAllowed("mcp/github", [])).toBe(false);
  });

  it("matches short globs against short names and docker.io globs against normalised names", () => {
    expect(isImageAllowed("mcp/github", ["mcp/*"])).toBe(true);
    expect(isImageAllowed("mcp/github", ["docker.io/mcp/*"])).toBe(true);
    expect(isImageAllowed("redis", ["docker.io/library/*"])).toBe(true);
    expect(isImageAllowed("redis", ["redis"])).toBe(true);
    expect(isImageAllowed("docker.io/mcp/github", ["docker.io/mcp/*"])).toBe(true);
  });

  it("does not let a namespace glob match another namespace or registry", () => {
    expect(isImageAllowed("mcpx/github", ["mcp/*"])).toBe(false);
    expect(isImageAllowed("evil/mcp", ["mcp/*"])).toBe(false);
    expect(isImageAllowed("ghcr.io/mcp/github", ["mcp/*"])).toBe(false);
    expect(isImageAllowed("ghcr.io/mcp/github", ["docker.io/mcp/*"])).toBe(false);
    expect(isImageAllowed("ghcr.io/other/tool", ["ghcr.io/acme/*"])).toBe(false);
    expect(isImageAllowed("ghcr.io/acme/tool", ["ghcr.io/acme/*"])).toBe(true);
  });

  it("lets * cross slashes and ? match exactly one character", () => {
    expect(isImageAllowed("ghcr.io/acme/team/tool", ["ghcr.io/acme/*"])).toBe(true);
    expect(isImageAllowed("mcp/tool1", ["mcp/tool?"])).toBe(true);
    expect(isImageAllowed("mcp/tool12", ["mcp/tool?"])).toBe(false);
    expect(isImageAllowed("mcp/tool", ["mcp/tool?"])).toBe(false);
  });

  it("treats regex metacharacters in globs literally", () => {
    expect(isImageAllowed("ghcrxio/acme/tool", ["ghcr.io/acme/*"])).toBe(false);
    expect(isImageAllowed("mcp/a", ["mcp/a|evil/*"])).toBe(false);
    expect(isImageAllowed("evil/x", ["mcp/a|evil/*"])).toBe(false);
    expect(isImageAllowed("mcp/aaa", ["mcp/a+"])).toBe(false);
  });

  it("anchors the whole name", () => {
    expect(isImageAllowed("mcp/github-evil", ["mcp/github"])).toBe(false);
    expect(isImageAllowed("x/mcp/github", ["mcp/github"])).toBe(false);
  });

  it("allows when any glob matches", () => {
    expect(isImageAllowed("ghcr.io/acme/tool", ["mcp/*", "ghcr.io/acme/*"])).toBe(true);
  });

  // The same image written in its long form must be allowed by a glob written in the short form
  // (the README's example policy is `"allowed_images": ["mcp/*", ...]`).
  it("matches a short-form glob against the long form of the same image", () => {
    expect(isImageAllowed("docker.io/mcp/github", ["mcp/*"])).toBe(true);
  });

  it("matches a short-form official-image glob against its long form", () => {
    expect(isImageAllowed("docker.io/library/redis", ["redis"])).toBe(true);
  });
});

describe("resolveAllowedImages", () => {
  it("takes policy.json's list when the file gives one, even over MCP_PORTAL_ALLOWED_IMAGES", () => {
    expect(resolveAllowedImages(["mcp/*"], ["ghcr.io/*"])).toEqual({
      globs: ["mcp/*"],
      source: "policy.json",
    });
    // An empty list in policy.json is a choice too: nothing runs.
    expect(resolveAllowedImages([], ["ghcr.io/*"])).toEqual({ globs: [], source: "policy.json" });
  });

  it("falls back to MCP_PORTAL_ALLOWED_IMAGES, then to every image", () => {
    expect(resolveAllowedImages(undefined, ["ghcr.io/*"])).toEqual({
      globs: ["ghcr.io/*"],
      source: "MCP_PORTAL_ALLOWED_IMAGES",
    });
    expect(resolveAllowedImages(undefined, undefined)).toEqual({ globs: ["*"], source: "none" });
  });

  it("names the source in its messages", () => {
    expect(imageNotAllowedMessage("x/y", "policy.json")).toBe(
      'image "x/y" is not allowed by policy.json allowed_images',
    );
    expect(imageNotAllowedMessage("x/y", "MCP_PORTAL_ALLOWED_IMAGES")).toBe(
      'image "x/y" is not allowed by MCP_PORTAL_ALLOWED_IMAGES (policy.json gives no allowed_images)',
    );
    expect(describeAllowedImages({ globs: ["*"], source: "none" })).toContain("any image from any registry");
  });
});
