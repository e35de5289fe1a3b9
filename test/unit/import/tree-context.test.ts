import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readTreeContext } from "../../../src/import/tree-context.js";
import { useTempDirs } from "../catalog/fixtures.js";

const tempDir = useTempDirs("mcp-portal-tree-context-");

describe("readTreeContext: the image allow-list an import respects", () => {
  it("takes MCP_PORTAL_ALLOWED_IMAGES without policy.json, or with one that gives no allowed_images", async () => {
    const dir = await tempDir();
    expect((await readTreeContext(dir, undefined, 1024, ["mcp/*"])).allowedImages).toEqual(["mcp/*"]);
    expect((await readTreeContext(dir, undefined, 1024)).allowedImages).toBeUndefined();
    await writeFile(path.join(dir, "policy.json"), '{"default_limits":{}}');
    expect((await readTreeContext(dir, undefined, 1024, ["mcp/*"])).allowedImages).toEqual(["mcp/*"]);
  });

  it("lets policy.json's allowed_images win", async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, "policy.json"), '{"allowed_images":["ghcr.io/acme/*"]}');
    expect((await readTreeContext(dir, undefined, 1024, ["mcp/*"])).allowedImages).toEqual([
      "ghcr.io/acme/*",
    ]);
  });
});
