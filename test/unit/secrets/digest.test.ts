import { createHash } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { DigestKey, digestKeyPath, loadDigestKey, rotateDigestKey } from "../../../src/secrets/digest.js";
import { generateKey, parseKeyList } from "../../../src/secrets/key-ring.js";
import { useTempDirs } from "./helpers.js";

const k1 = generateKey("k1");
const k2 = generateKey("k2");
const tempDir = useTempDirs();

describe("secret digests", () => {
  it("are deterministic, keyed and bound to user and name", () => {
    const key = DigestKey.fromSeed(Buffer.alloc(32, 1));
    const digest = key.digest("alice", "TOKEN", "1234");
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(key.digest("alice", "TOKEN", "1234")).toBe(digest);
    expect(key.digest("alice", "TOKEN", "1235")).not.toBe(digest);
    expect(key.digest("bob", "TOKEN", "1234")).not.toBe(digest);
    expect(key.digest("alice", "OTHER", "1234")).not.toBe(digest);
    expect(DigestKey.fromSeed(Buffer.alloc(32, 2)).digest("alice", "TOKEN", "1234")).not.toBe(digest);
    expect(createHash("sha256").update("alice:TOKEN:1234").digest("hex")).not.toBe(digest);
    expect(JSON.stringify({ key })).toBe('{"key":"[DigestKey]"}');
  });

  it("creates the seed once (0600, sealed), and concurrent loaders agree", async () => {
    const stateDir = await tempDir();
    const ring = parseKeyList(k1);
    const keys = await Promise.all([1, 2, 3, 4, 5].map(() => loadDigestKey(stateDir, ring)));
    const digests = new Set(keys.map((key) => key.digest("alice", "T", "v")));
    expect(digests.size).toBe(1);
    expect((await stat(digestKeyPath(stateDir))).mode & 0o777).toBe(0o600);
    expect(await readFile(digestKeyPath(stateDir), "utf8")).toMatch(/^enc:v1:k1:[A-Za-z0-9+/=]+\n$/);
    expect((await loadDigestKey(stateDir, ring)).digest("alice", "T", "v")).toBe([...digests][0]);
  });

  it("survives key rotation and retirement of the old key", async () => {
    const stateDir = await tempDir();
    const before = (await loadDigestKey(stateDir, parseKeyList(k1))).digest("alice", "T", "v");
    const rotated = await rotateDigestKey(stateDir, parseKeyList(`${k2},${k1}`));
    expect(rotated).toEqual({ status: "rotated", fromKeyId: "k1", toKeyId: "k2" });
    expect(await rotateDigestKey(stateDir, parseKeyList(`${k2},${k1}`))).toEqual({
      status: "current",
      keyId: "k2",
    });
    const after = (await loadDigestKey(stateDir, parseKeyList(k2))).digest("alice", "T", "v");
    expect(after).toBe(before);
  });

  it("refuses an undecryptable seed instead of replacing it", async () => {
    const stateDir = await tempDir();
    await loadDigestKey(stateDir, parseKeyList(k1));
    const original = await readFile(digestKeyPath(stateDir), "utf8");
    await expect(loadDigestKey(stateDir, parseKeyList(k2))).rejects.toMatchObject({
      code: "SECRET_DIGEST_KEY_INVALID",
    });
    await writeFile(digestKeyPath(stateDir), "garbage\n");
    await expect(loadDigestKey(stateDir, parseKeyList(k1))).rejects.toMatchObject({
      code: "SECRET_DIGEST_KEY_INVALID",
    });
    expect(await readFile(digestKeyPath(stateDir), "utf8")).toBe("garbage\n");
    expect(original).not.toBe("garbage\n");
    expect(await rotateDigestKey(stateDir, parseKeyList(k1))).toMatchObject({ status: "failed" });
  });
});
