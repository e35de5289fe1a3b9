import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
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
} from "../../../src/secrets/store.js";
import { useTempDirs } from "./helpers.js";

const k1 = generateKey("k1");
const ring = parseKeyList(k1);
const digestKey = DigestKey.fromSeed(Buffer.alloc(32, 7));
const tempDir = useTempDirs();

describe("secrets store", () => {
  it("sets, lists, replaces and removes secrets; the file is 0600 and holds no plaintext", async () => {
    const dataDir = await tempDir();
    expect(await setSecret(dataDir, "alice", "GITHUB_TOKEN", "ghp_plaintext_value", ring)).toEqual({
      created: true,
      keyId: "k1",
    });
    expect(await setSecret(dataDir, "alice", "OTHER", "second-plaintext", ring)).toMatchObject({
      created: true,
    });
    expect(await setSecret(dataDir, "alice", "GITHUB_TOKEN", "ghp_new_value", ring)).toMatchObject({
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
    await expect(setSecret(dataDir, "alice", "C", "x", ring)).rejects.toBeInstanceOf(SecretsFileError);
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

  it("validates user ids, names and values before touching the disk", async () => {
    const dataDir = await tempDir();
    await expect(setSecret(dataDir, "../etc", "X", "v", ring)).rejects.toMatchObject({
      code: "SECRET_INVALID_USER_ID",
    });
    await expect(setSecret(dataDir, "alice", "lower", "v", ring)).rejects.toBeInstanceOf(SecretUsageError);
    await expect(setSecret(dataDir, "alice", "X", "a\0b", ring)).rejects.toMatchObject({
      code: "SECRET_INVALID_VALUE",
    });
    await expect(readSecretsFile(dataDir, "a/b")).rejects.toMatchObject({ code: "SECRET_INVALID_USER_ID" });
  });

  it("resolves missing and undecryptable secrets as distinct errors without leaking values", async () => {
    const dataDir = await tempDir();
    await setSecret(dataDir, "alice", "GOOD", "good-value", ring);
    await setSecret(dataDir, "alice", "MOVED", "moved-value", ring);
    await setSecret(dataDir, "bob", "FOREIGN", "foreign-value", ring);
    const otherRing = parseKeyList(generateKey("k9"));
    await setSecret(dataDir, "alice", "UNKNOWN_KEY", "unknown-value", otherRing);

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
