import { chmod, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { TreeWriteError } from "../../../src/catalog/tree-write.js";
import { DigestKey } from "../../../src/secrets/digest.js";
import { SecretsFileError, SecretUsageError } from "../../../src/secrets/errors.js";
import { generateKey, parseKeyList } from "../../../src/secrets/key-ring.js";
import {
  listSecrets,
  readSecretsFile,
  removeSecret,
  resolveSecrets,
  secretsFilePath,
  setSecret,
  writeSecretsFile,
} from "../../../src/secrets/store.js";
import { useTempDirs } from "./helpers.js";

const k1 = generateKey("k1");
const ring = parseKeyList(k1);
const digestKey = DigestKey.fromSeed(Buffer.alloc(32, 7));
const tempDir = useTempDirs();
/** These tests act as the admin's CLI, which may create a user's directory. */
const CREATE = { createUserDir: true };

describe("secrets store", () => {
  it("sets, lists, replaces and removes secrets; the file is 0600 and holds no plaintext", async () => {
    const dataDir = await tempDir();
    expect(await setSecret(dataDir, "alice", "GITHUB_TOKEN", "ghp_plaintext_value", ring, CREATE)).toEqual({
      created: true,
      keyId: "k1",
    });
    expect(await setSecret(dataDir, "alice", "OTHER", "second-plaintext", ring, CREATE)).toMatchObject({
      created: true,
    });
    expect(await setSecret(dataDir, "alice", "GITHUB_TOKEN", "ghp_new_value", ring, CREATE)).toMatchObject({
      created: false,
    });

    const file = secretsFilePath(dataDir, "alice");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, "utf8");
    for (const plaintext of ["ghp_plaintext_value", "second-plaintext", "ghp_new_value"]) {
      expect(text).not.toContain(plaintext);
      expect(text).not.toContain(Buffer.from(plaintext).toString("base64"));
    }
    expect(text).toMatch(/^GITHUB_TOKEN=enc:v1:k1:[A-Za-z0-9+/=]+$/m);

    expect(await listSecrets(dataDir, "alice")).toEqual([
      { name: "GITHUB_TOKEN", keyId: "k1" },
      { name: "OTHER", keyId: "k1" },
    ]);
    const resolved = resolveSecrets(
      await readSecretsFile(dataDir, "alice"),
      "alice",
      ["GITHUB_TOKEN"],
      ring,
      digestKey,
    );
    expect(resolved.get("GITHUB_TOKEN")).toMatchObject({ ok: true, value: "ghp_new_value" });

    expect(await removeSecret(dataDir, "alice", "OTHER")).toBe(true);
    expect(await removeSecret(dataDir, "alice", "OTHER")).toBe(false);
    expect(await listSecrets(dataDir, "alice")).toEqual([{ name: "GITHUB_TOKEN", keyId: "k1" }]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("treats a missing file as no secrets and does not create one on rm", async () => {
    const dataDir = await tempDir();
    expect(await readSecretsFile(dataDir, "nobody")).toEqual([]);
    expect(await removeSecret(dataDir, "nobody", "X")).toBe(false);
    await expect(stat(secretsFilePath(dataDir, "nobody"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("treats an invalid or unreadable file as an error, never as empty, and refuses to overwrite it", async () => {
    const dataDir = await tempDir();
    await mkdir(path.join(dataDir, "users", "alice"), { recursive: true });
    const file = secretsFilePath(dataDir, "alice");
    await writeFile(file, "# ok\nA=enc:v1:k1:AAAA\nB=plaintext\n");
    const error = await readSecretsFile(dataDir, "alice").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SecretsFileError);
    expect((error as SecretsFileError).code).toBe("SECRETS_FILE_INVALID");
    expect((error as SecretsFileError).problems).toEqual([
      "users/alice/secrets.env: line 2: A: payload is too short to hold a nonce and a tag",
      "users/alice/secrets.env: line 3: B: value is not encrypted (expected enc:v1:<key-id>:<base64>)",
    ]);
    await expect(setSecret(dataDir, "alice", "C", "x", ring, CREATE)).rejects.toBeInstanceOf(
      SecretsFileError,
    );
    expect(await readFile(file, "utf8")).toContain("B=plaintext");

    await mkdir(path.join(dataDir, "users", "dir"), { recursive: true });
    await mkdir(secretsFilePath(dataDir, "dir"));
    await expect(readSecretsFile(dataDir, "dir")).rejects.toMatchObject({ code: "SECRETS_FILE_UNREADABLE" });

    if (process.getuid?.() !== 0) {
      await writeFile(file, "");
      await chmod(file, 0o000);
      await expect(readSecretsFile(dataDir, "alice")).rejects.toMatchObject({
        code: "SECRETS_FILE_UNREADABLE",
      });
    }
  });

  it("does not create a user's directory unless asked to, and never writes through a linked one", async () => {
    const dataDir = await tempDir();
    await mkdir(path.join(dataDir, "users"));
    const error = await setSecret(dataDir, "zed", "A", "v", ring).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TreeWriteError);
    expect(error).toMatchObject({ code: "TREE_DIR_MISSING", problem: { file: "users/zed" } });
    await expect(stat(path.join(dataDir, "users/zed"))).rejects.toMatchObject({ code: "ENOENT" });
    await setSecret(dataDir, "bob", "B", "v", ring, CREATE);
    await symlink("bob", path.join(dataDir, "users/eve"));
    await expect(setSecret(dataDir, "eve", "STOLEN", "v", ring, CREATE)).rejects.toBeInstanceOf(
      SecretsFileError,
    );
    await expect(writeSecretsFile(dataDir, "eve", [], CREATE)).rejects.toMatchObject({
      code: "TREE_PATH_REFUSED",
      problem: { file: "users/eve" },
    });
    expect((await listSecrets(dataDir, "bob")).map((s) => s.name)).toEqual(["B"]);
  });

  it("validates user ids, names and values before touching the disk", async () => {
    const dataDir = await tempDir();
    await expect(setSecret(dataDir, "../etc", "X", "v", ring, CREATE)).rejects.toMatchObject({
      code: "SECRET_INVALID_USER_ID",
    });
    await expect(setSecret(dataDir, "alice", "lower", "v", ring, CREATE)).rejects.toBeInstanceOf(
      SecretUsageError,
    );
    await expect(setSecret(dataDir, "alice", "X", "a\0b", ring, CREATE)).rejects.toMatchObject({
      code: "SECRET_INVALID_VALUE",
    });
    await expect(readSecretsFile(dataDir, "a/b")).rejects.toMatchObject({ code: "SECRET_INVALID_USER_ID" });
  });

  it("resolves missing and undecryptable secrets as distinct errors without leaking values", async () => {
    const dataDir = await tempDir();
    await setSecret(dataDir, "alice", "GOOD", "good-value", ring, CREATE);
    await setSecret(dataDir, "alice", "MOVED", "moved-value", ring, CREATE);
    await setSecret(dataDir, "bob", "FOREIGN", "foreign-value", ring, CREATE);
    const otherRing = parseKeyList(generateKey("k9"));
    await setSecret(dataDir, "alice", "UNKNOWN_KEY", "unknown-value", otherRing, CREATE);

    // Copy bob's ciphertext into alice's file under a new name, and swap MOVED under another name.
    const aliceFile = secretsFilePath(dataDir, "alice");
    const bobText = await readFile(secretsFilePath(dataDir, "bob"), "utf8");
    const bobLine = bobText.split("\n").find((line) => line.startsWith("FOREIGN="));
    let aliceText = await readFile(aliceFile, "utf8");
    aliceText = aliceText.replace("MOVED=", "RENAMED=") + `${bobLine}\n`;
    await writeFile(aliceFile, aliceText);

    const entries = await readSecretsFile(dataDir, "alice");
    const names = ["GOOD", "ABSENT", "RENAMED", "FOREIGN", "UNKNOWN_KEY"];
    const resolved = resolveSecrets(entries, "alice", names, ring, digestKey);
    expect(resolved.get("GOOD")).toEqual({
      ok: true,
      value: "good-value",
      digest: digestKey.digest("alice", "GOOD", "good-value"),
    });
    expect(resolved.get("ABSENT")).toMatchObject({ ok: false, error: "MissingSecret" });
    expect(resolved.get("RENAMED")).toMatchObject({ ok: false, error: "SecretDecryptFailed" });
    expect(resolved.get("FOREIGN")).toMatchObject({ ok: false, error: "SecretDecryptFailed" });
    expect(resolved.get("UNKNOWN_KEY")).toMatchObject({ ok: false, error: "SecretDecryptFailed" });
    const messages = JSON.stringify([...resolved.entries()].filter(([name]) => name !== "GOOD"));
    for (const secret of ["good-value", "moved-value", "foreign-value", "unknown-value", k1.slice(3)]) {
      expect(messages).not.toContain(secret);
    }
    expect(messages).toContain('key \\"k9\\", which is not in the key ring');
  });
});
