import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { writeTreeFile } from "../../../src/catalog/tree-write.js";
import { loadDigestKey } from "../../../src/secrets/digest.js";
import { generateKey, parseKeyList, type KeyRing } from "../../../src/secrets/key-ring.js";
import { rotateSecrets } from "../../../src/secrets/rotate.js";
import {
  listSecrets,
  readSecretsFile,
  resolveSecrets,
  secretsFilePath,
  setSecret,
  type WriteFile,
} from "../../../src/secrets/store.js";
import { useTempDirs } from "./helpers.js";

const k1 = generateKey("k1");
const k2 = generateKey("k2");
const oldRing = parseKeyList(k1);
const bothRing = parseKeyList(`${k2},${k1}`);
const newRing = parseKeyList(k2);
const tempDir = useTempDirs();
/** These tests act as the admin's CLI, which may create a user's directory. */
const CREATE = { createUserDir: true };

const VALUES: Record<string, Record<string, string>> = {
  alice: { A_TOKEN: "alice-a", B_TOKEN: "alice-b" },
  bob: { B_TOKEN: "bob-b" },
  carol: { C_TOKEN: "carol-c" },
};

async function seed(dataDir: string): Promise<void> {
  for (const [user, secrets] of Object.entries(VALUES)) {
    for (const [name, value] of Object.entries(secrets))
      await setSecret(dataDir, user, name, value, oldRing, CREATE);
  }
}

async function valuesOf(dataDir: string, user: string, ring: KeyRing, stateDir: string) {
  const entries = await readSecretsFile(dataDir, user);
  const digestKey = await loadDigestKey(stateDir, ring);
  const resolved = resolveSecrets(entries, user, Object.keys(VALUES[user] ?? {}), ring, digestKey);
  return Object.fromEntries([...resolved].map(([name, r]) => [name, r.ok ? r.value : r.error]));
}

describe("secrets rotate", () => {
  it("re-encrypts every file under the new primary key, keeping values and digests", async () => {
    const dataDir = await tempDir();
    const stateDir = path.join(dataDir, ".mcp-portal");
    await seed(dataDir);
    const digestBefore = (await loadDigestKey(stateDir, oldRing)).digest("alice", "A", "v");
    await mkdir(path.join(dataDir, "users", "bad.name"), { recursive: true });
    await writeFile(path.join(dataDir, "users", "README"), "not a user\n");
    await mkdir(path.join(dataDir, "users", "dave"), { recursive: true }); // no secrets file

    // Before rotation the new ring (new primary + old key) already decrypts everything.
    for (const user of Object.keys(VALUES)) {
      expect(await valuesOf(dataDir, user, bothRing, stateDir)).toEqual(VALUES[user]);
    }

    const report = await rotateSecrets({ dataDir, stateDir, keyRing: bothRing });
    expect(report.ok).toBe(true);
    expect(report.skipped).toEqual([{ entry: "bad.name", reason: "directory name is not a valid user id" }]);
    expect(report.files).toEqual([
      { userId: "alice", file: "users/alice/secrets.env", status: "rotated", total: 2, reencrypted: 2 },
      { userId: "bob", file: "users/bob/secrets.env", status: "rotated", total: 1, reencrypted: 1 },
      { userId: "carol", file: "users/carol/secrets.env", status: "rotated", total: 1, reencrypted: 1 },
    ]);
    expect(report.digestKey).toEqual({ status: "rotated", fromKeyId: "k1", toKeyId: "k2" });

    for (const user of Object.keys(VALUES)) {
      expect((await listSecrets(dataDir, user)).every((secret) => secret.keyId === "k2")).toBe(true);
      expect(await valuesOf(dataDir, user, newRing, stateDir)).toEqual(VALUES[user]);
    }
    expect((await loadDigestKey(stateDir, newRing)).digest("alice", "A", "v")).toBe(digestBefore);

    const aliceText = await readFile(secretsFilePath(dataDir, "alice"), "utf8");
    const again = await rotateSecrets({ dataDir, stateDir, keyRing: bothRing });
    expect(again.files.map((file) => file.status)).toEqual(["current", "current", "current"]);
    expect(await readFile(secretsFilePath(dataDir, "alice"), "utf8")).toBe(aliceText);
  });

  it("a failure on the second file leaves the first rotated and the second intact and decryptable", async () => {
    const dataDir = await tempDir();
    const stateDir = path.join(dataDir, ".mcp-portal");
    await seed(dataDir);
    const bobBefore = await readFile(secretsFilePath(dataDir, "bob"), "utf8");

    let writes = 0;
    const crashingWrite: WriteFile = async (root, file, data, options) => {
      writes += 1;
      if (writes === 2) throw new Error("simulated crash");
      await writeTreeFile(root, file, data, options);
    };
    const report = await rotateSecrets({ dataDir, stateDir, keyRing: bothRing, writeFile: crashingWrite });
    expect(report.ok).toBe(false);
    expect(report.files.map((file) => [file.userId, file.status])).toEqual([
      ["alice", "rotated"],
      ["bob", "failed"],
      ["carol", "rotated"],
    ]);

    expect((await listSecrets(dataDir, "alice")).map((secret) => secret.keyId)).toEqual(["k2", "k2"]);
    expect(await readFile(secretsFilePath(dataDir, "bob"), "utf8")).toBe(bobBefore);
    expect(await valuesOf(dataDir, "bob", bothRing, stateDir)).toEqual(VALUES.bob);

    // Re-running finishes the job.
    const rerun = await rotateSecrets({ dataDir, stateDir, keyRing: bothRing });
    expect(rerun.ok).toBe(true);
    expect(rerun.files.map((file) => file.status)).toEqual(["current", "rotated", "current"]);
    expect(await valuesOf(dataDir, "bob", newRing, stateDir)).toEqual(VALUES.bob);
  });

  it("does not rewrite a file in which any value fails to decrypt", async () => {
    const dataDir = await tempDir();
    await seed(dataDir);
    await setSecret(dataDir, "bob", "LOST", "lost-value", parseKeyList(generateKey("gone")), CREATE);
    const bobBefore = await readFile(secretsFilePath(dataDir, "bob"), "utf8");

    const report = await rotateSecrets({ dataDir, keyRing: bothRing });
    expect(report.ok).toBe(false);
    const bob = report.files.find((file) => file.userId === "bob");
    expect(bob?.status).toBe("failed");
    expect(bob?.status === "failed" ? bob.error : "").toContain('key "gone"');
    expect(JSON.stringify(report)).not.toContain("lost-value");
    expect(await readFile(secretsFilePath(dataDir, "bob"), "utf8")).toBe(bobBefore);
    expect(report.files.filter((file) => file.status === "rotated").map((file) => file.userId)).toEqual([
      "alice",
      "carol",
    ]);
  });

  it("reports an invalid secrets file and continues with the others", async () => {
    const dataDir = await tempDir();
    await seed(dataDir);
    await writeFile(secretsFilePath(dataDir, "alice"), "A_TOKEN=plaintext\n");
    const report = await rotateSecrets({ dataDir, keyRing: bothRing });
    expect(report.files[0]).toMatchObject({ userId: "alice", status: "failed" });
    expect(report.files.slice(1).map((file) => file.status)).toEqual(["rotated", "rotated"]);
  });

  it("handles a data dir without users/", async () => {
    const dataDir = await tempDir();
    expect(await rotateSecrets({ dataDir, keyRing: bothRing })).toEqual({
      files: [],
      skipped: [],
      digestKey: { status: "absent" },
      ok: true,
    });
  });
});
