import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { mergeGlobalCatalog, type MergedCatalog } from "../../../src/catalog/merge.js";
import { MergedCatalogCache } from "../../../src/catalog/merged-cache.js";
import { base, server, useTempDirs } from "./fixtures.js";

const tempDir = useTempDirs("mcp-portal-cache-");

function catalogWith(...ids: string[]): MergedCatalog {
  return mergeGlobalCatalog(
    [
      base(
        "catalogs/base/a.json",
        ids.map((id) => server(id)),
      ),
    ],
    [],
  ).catalog;
}

function clock(): () => Date {
  let t = Date.parse("2025-01-01T00:00:00Z");
  return () => new Date((t += 1000));
}

async function readCache(stateDir: string, userId: string) {
  return JSON.parse(await readFile(path.join(stateDir, "cache", `merged-${userId}.json`), "utf8")) as {
    user_id: string;
    inputs_hash: string;
    generated_at: string;
    servers: { id: string }[];
  };
}

describe("MergedCatalogCache", () => {
  it("computes on a miss and writes cache/merged-<user>.json atomically, leaving no temp file", async () => {
    const stateDir = await tempDir();
    const cache = new MergedCatalogCache(stateDir, clock());
    const catalog = catalogWith("time", "fetch");
    const compute = vi.fn(() => catalog);

    const result = await cache.get("alice", "hash-1", compute);
    expect(result).toEqual({ catalog, recomputed: true });
    expect(compute).toHaveBeenCalledTimes(1);
    expect(await readdir(path.join(stateDir, "cache"))).toEqual(["merged-alice.json"]);
    const file = await readCache(stateDir, "alice");
    expect(Object.keys(file)).toEqual(["user_id", "inputs_hash", "generated_at", "servers"]);
    expect(file).toMatchObject({
      user_id: "alice",
      inputs_hash: "hash-1",
      generated_at: "2025-01-01T00:00:01.000Z",
    });
    expect(file.servers.map((s) => s.id)).toEqual(["fetch", "time"]);
  });

  it("returns the cached catalog without computing or writing while the inputs hash is unchanged", async () => {
    const stateDir = await tempDir();
    const cache = new MergedCatalogCache(stateDir, clock());
    await cache.get("alice", "hash-1", () => catalogWith("time"));
    const before = await stat(path.join(stateDir, "cache", "merged-alice.json"));

    const compute = vi.fn(() => catalogWith("other"));
    const again = await cache.get("alice", "hash-1", compute);
    expect(again.recomputed).toBe(false);
    expect(compute).not.toHaveBeenCalled();
    expect([...again.catalog.servers.keys()]).toEqual(["time"]);
    const after = await stat(path.join(stateDir, "cache", "merged-alice.json"));
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });

  it("after a restart recomputes in memory but does not rewrite a file that holds the same hash", async () => {
    const stateDir = await tempDir();
    await new MergedCatalogCache(stateDir, clock()).get("alice", "hash-1", () => catalogWith("time"));
    const before = await stat(path.join(stateDir, "cache", "merged-alice.json"));

    const restarted = new MergedCatalogCache(stateDir, () => new Date("2030-01-01T00:00:00Z"));
    const result = await restarted.get("alice", "hash-1", () => catalogWith("time"));
    expect(result.recomputed).toBe(true);
    const after = await stat(path.join(stateDir, "cache", "merged-alice.json"));
    expect(after.ino).toBe(before.ino);
    expect((await readCache(stateDir, "alice")).generated_at).toBe("2025-01-01T00:00:01.000Z");
  });

  it("recomputes and rewrites when the inputs hash changes", async () => {
    const stateDir = await tempDir();
    const cache = new MergedCatalogCache(stateDir, clock());
    await cache.get("alice", "hash-1", () => catalogWith("time"));
    const compute = vi.fn(() => catalogWith("time", "github"));

    const result = await cache.get("alice", "hash-2", compute);
    expect(result.recomputed).toBe(true);
    expect(compute).toHaveBeenCalledTimes(1);
    const file = await readCache(stateDir, "alice");
    expect(file.inputs_hash).toBe("hash-2");
    expect(file.generated_at).toBe("2025-01-01T00:00:02.000Z");
    expect(file.servers.map((s) => s.id)).toEqual(["github", "time"]);
  });

  it("rewrites a damaged or foreign cache file", async () => {
    const stateDir = await tempDir();
    const cache = new MergedCatalogCache(stateDir, clock());
    await cache.get("alice", "hash-1", () => catalogWith("time"));
    const file = path.join(stateDir, "cache", "merged-bob.json");
    await writeFile(
      file,
      (await readFile(path.join(stateDir, "cache", "merged-alice.json"), "utf8")).slice(0, 200),
    );

    await cache.get("bob", "hash-1", () => catalogWith("time"));
    expect(await readCache(stateDir, "bob")).toMatchObject({ user_id: "bob", inputs_hash: "hash-1" });
  });

  it("keeps users apart, removes a user's file, and refuses ids that are not user ids", async () => {
    const stateDir = await tempDir();
    const cache = new MergedCatalogCache(stateDir, clock());
    await cache.get("alice", "h", () => catalogWith("time"));
    await cache.get("bob", "h", () => catalogWith("fetch"));
    await cache.remove("alice");
    await cache.remove("alice");
    expect(await readdir(path.join(stateDir, "cache"))).toEqual(["merged-bob.json"]);
    expect((await cache.get("alice", "h", () => catalogWith("time"))).recomputed).toBe(true);

    await expect(cache.get("../etc", "h", () => catalogWith("time"))).rejects.toThrow(/not a valid user id/);
    await expect(cache.remove("a/b")).rejects.toThrow(/not a valid user id/);
  });
});
