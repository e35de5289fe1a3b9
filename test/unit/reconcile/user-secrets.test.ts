import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadUserSecrets } from "../../../src/reconcile/user-secrets.js";
import { DigestKey } from "../../../src/secrets/digest.js";
import { generateKey, parseKeyList } from "../../../src/secrets/key-ring.js";
import { setSecret } from "../../../src/secrets/store.js";
import { useTempDirs } from "../catalog/fixtures.js";

const tempDir = useTempDirs("mcp-portal-user-secrets-");
const keyRing = parseKeyList(generateKey("k1"));
const keys = { keyRing, digestKey: DigestKey.fromSeed(Buffer.alloc(32, 1)) };

describe("a user's secrets as the reconciler reads them", () => {
  it("refuses a secrets.env linked to another user's: the secret fails to decrypt, it is not missing", async () => {
    const dataDir = await tempDir();
    await setSecret(dataDir, "bob", "TOKEN", "bobs-value", keyRing, { createUserDir: true });
    await mkdir(path.join(dataDir, "users/mallory"), { recursive: true });
    await symlink("../bob/secrets.env", path.join(dataDir, "users/mallory/secrets.env"));
    const resolve = await loadUserSecrets(dataDir, "mallory", new Set(["TOKEN"]), keys);
    const result = resolve("TOKEN");
    expect(result).toMatchObject({ ok: false, reason: "SecretDecryptFailed" });
    expect(result.ok ? "" : result.message).toMatch(/users\/mallory\/secrets\.env: is a symbolic link/);
    expect(JSON.stringify(result)).not.toContain("bobs-value");
  });

  it("applies the configured size cap (MCP_PORTAL_MAX_FILE_BYTES) before reading", async () => {
    const dataDir = await tempDir();
    await mkdir(path.join(dataDir, "users/alice"), { recursive: true });
    await writeFile(path.join(dataDir, "users/alice/secrets.env"), `# ${"x".repeat(2048)}\n`);
    const capped = await loadUserSecrets(dataDir, "alice", new Set(["A"]), { ...keys, maxFileBytes: 1024 });
    expect(capped("A")).toMatchObject({ ok: false, reason: "SecretDecryptFailed" });
    const uncapped = await loadUserSecrets(dataDir, "alice", new Set(["A"]), keys);
    expect(uncapped("A")).toMatchObject({ ok: false, reason: "MissingSecret" });
  });
});
