import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AdminTokenError, loadAdminToken } from "../../../src/auth/admin-token.js";
import { Authenticator } from "../../../src/auth/authenticate.js";
import { digestsEqual, generateToken, hashToken, tokenId } from "../../../src/auth/token-format.js";
import {
  TokenCache,
  TokenStoreError,
  createToken,
  readTokens,
  revokeToken,
  tokensFilePath,
} from "../../../src/auth/token-store.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "mcp-portal-auth-"));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe("token format", () => {
  it("generates mcp_<id>_<secret> tokens whose id is findable and whose hash is sha256", () => {
    const a = generateToken();
    const b = generateToken();
    expect(a.token).toMatch(/^mcp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(tokenId(a.token)).toBe(a.id);
    expect(a.hash).toBe(hashToken(a.token));
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.id).not.toBe(b.id);
    expect(a.token).not.toBe(b.token);
  });

  it.each([
    "",
    "mcp_",
    "mcp_0123_abc",
    "xyz_0123456789abcdef_" + "a".repeat(43),
    "mcp_0123456789ABCDEF_" + "a".repeat(43),
  ])("finds no id in %j", (token) => {
    expect(tokenId(token)).toBeUndefined();
  });

  it("compares digests of equal length only", () => {
    const h = hashToken("x");
    expect(digestsEqual(h, h)).toBe(true);
    expect(digestsEqual(h, hashToken("y"))).toBe(false);
    expect(digestsEqual(h, "abcd")).toBe(false);
    expect(digestsEqual("zz", "zz")).toBe(false);
  });
});

describe("token store", () => {
  it("stores only hashes, in a 0600 file, and revokes by id", async () => {
    const stateDir = await tempDir();
    const { record, token } = await createToken(stateDir, "alice", new Date("2024-01-02T03:04:05Z"));
    expect(record).toMatchObject({ user_id: "alice", created_at: "2024-01-02T03:04:05.000Z" });
    const text = await readFile(tokensFilePath(stateDir), "utf8");
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.split("_").at(-1));
    expect(text).toContain(hashToken(token));
    expect((await stat(tokensFilePath(stateDir))).mode & 0o777).toBe(0o600);
    await createToken(stateDir, "bob");
    expect((await readTokens(stateDir)).map((t) => t.user_id)).toEqual(["alice", "bob"]);
    expect(await revokeToken(stateDir, record.id)).toBe(true);
    expect(await revokeToken(stateDir, record.id)).toBe(false);
    expect((await readTokens(stateDir)).map((t) => t.user_id)).toEqual(["bob"]);
  });

  it("refuses an invalid user id and an invalid file (never reads it as empty)", async () => {
    const stateDir = await tempDir();
    await expect(createToken(stateDir, "../x")).rejects.toThrow(TokenStoreError);
    await writeFile(tokensFilePath(stateDir), "{ not json");
    await expect(readTokens(stateDir)).rejects.toThrow(/not valid JSON/);
    await writeFile(tokensFilePath(stateDir), JSON.stringify({ tokens: [{ id: "x" }] }));
    await expect(readTokens(stateDir)).rejects.toThrow(TokenStoreError);
    expect(await readTokens(await tempDir())).toEqual([]);
  });

  it("the cache re-reads the file when it changes, and reports an invalid file", async () => {
    const stateDir = await tempDir();
    const invalid: string[] = [];
    const cache = new TokenCache(stateDir, (m) => invalid.push(m));
    expect(await cache.current()).toMatchObject({ status: "ok" });
    const { record } = await createToken(stateDir, "alice");
    const first = await cache.current();
    expect(first.status === "ok" && first.byId.has(record.id)).toBe(true);
    expect(await cache.current()).toBe(first);
    await revokeToken(stateDir, record.id);
    const second = await cache.current();
    expect(second.status === "ok" && second.byId.size).toBe(0);
    await writeFile(tokensFilePath(stateDir), "[]");
    expect(await cache.current()).toMatchObject({ status: "invalid" });
    expect(invalid).toHaveLength(1);
  });
});

describe("admin token", () => {
  it("comes from the env or a file, trimmed", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "admin");
    await writeFile(file, "from-a-file-0123456789\n");
    expect(await loadAdminToken({})).toBeUndefined();
    expect(await loadAdminToken({ MCP_PORTAL_ADMIN_TOKEN: " inline-token-0123456789 " })).toBe(
      "inline-token-0123456789",
    );
    expect(await loadAdminToken({ MCP_PORTAL_ADMIN_TOKEN_FILE: file })).toBe("from-a-file-0123456789");
  });

  it.each([
    [{ MCP_PORTAL_ADMIN_TOKEN: "short" }, /at least 16/],
    [{ MCP_PORTAL_ADMIN_TOKEN: "a".repeat(20), MCP_PORTAL_ADMIN_TOKEN_FILE: "/x" }, /not both/],
    [{ MCP_PORTAL_ADMIN_TOKEN_FILE: "/nonexistent/admin-token" }, /cannot read/],
    [{ MCP_PORTAL_ADMIN_TOKEN: "with space in the middle 0123" }, /whitespace/],
  ])("refuses %j", async (env, message) => {
    await expect(loadAdminToken(env)).rejects.toThrow(AdminTokenError);
    await expect(loadAdminToken(env)).rejects.toThrow(message);
  });
});

describe("Authenticator", () => {
  it("is disabled without any token, then tells admin, user and invalid tokens apart", async () => {
    const stateDir = await tempDir();
    const none = new Authenticator(undefined, new TokenCache(stateDir));
    expect(await none.authenticate("Bearer anything")).toMatchObject({
      ok: false,
      statusCode: 403,
      code: "API_DISABLED",
    });

    const { record, token } = await createToken(stateDir, "alice");
    const auth = new Authenticator("admin-secret-0123456789", new TokenCache(stateDir));
    expect(await auth.authenticate(undefined)).toMatchObject({ ok: false, statusCode: 401 });
    expect(await auth.authenticate("Basic abc")).toMatchObject({ ok: false, statusCode: 401 });
    expect(await auth.authenticate("Bearer admin-secret-0123456789")).toEqual({
      ok: true,
      caller: { kind: "admin" },
    });
    expect(await auth.authenticate(`bearer ${token}`)).toEqual({
      ok: true,
      caller: { kind: "user", userId: "alice", tokenId: record.id },
    });
    // Right id, wrong secret; unknown id.
    const forged = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    expect(await auth.authenticate(`Bearer ${forged}`)).toMatchObject({ ok: false, statusCode: 401 });
    expect(await auth.authenticate(`Bearer ${generateToken().token}`)).toMatchObject({
      ok: false,
      statusCode: 401,
    });
    // A user token alone also enables the API.
    const userOnly = new Authenticator(undefined, new TokenCache(stateDir));
    expect(await userOnly.authenticate(`Bearer ${token}`)).toMatchObject({ ok: true });
  });

  it("refuses user tokens while tokens.json is unusable, the admin token still works", async () => {
    const stateDir = await tempDir();
    const { token } = await createToken(stateDir, "alice");
    await writeFile(tokensFilePath(stateDir), "garbage");
    const auth = new Authenticator("admin-secret-0123456789", new TokenCache(stateDir));
    expect(await auth.authenticate(`Bearer ${token}`)).toMatchObject({ ok: false, statusCode: 503 });
    expect(await auth.authenticate("Bearer admin-secret-0123456789")).toMatchObject({ ok: true });
  });
});
