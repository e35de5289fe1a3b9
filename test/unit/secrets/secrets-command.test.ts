import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { secretsCommand } from "../../../src/commands/secrets.js";
import { DigestKey } from "../../../src/secrets/digest.js";
import { generateKey, parseKeyList } from "../../../src/secrets/key-ring.js";
import { readSecretsFile, resolveSecrets, secretsFilePath } from "../../../src/secrets/store.js";
import { useTempDirs } from "./helpers.js";
import { runCli } from "../../helpers/cli-io.js";

const tempDir = useTempDirs();

function cli(args: string[], env: NodeJS.ProcessEnv, stdin = "") {
  return runCli(secretsCommand, args, env, stdin);
}

describe("secrets command", () => {
  it("set / list / rm via the handler; list never prints values", async () => {
    const dataDir = await tempDir();
    const env = { MCP_PORTAL_SECRET_KEYS: generateKey("k1") };

    const set = await cli(["set", "alice", "GITHUB_TOKEN", "--data-dir", dataDir], env, "ghp_value_123\n");
    expect(set).toMatchObject({ code: 0, stderr: "" });
    expect(set.stdout).toContain("created secret GITHUB_TOKEN for user alice (key k1)");
    expect(set.stdout).not.toContain("ghp_value_123");
    const text = await readFile(secretsFilePath(dataDir, "alice"), "utf8");
    expect(text).not.toContain("ghp_value_123");

    expect(
      (await cli(["set", "alice", "OTHER"], { ...env, MCP_PORTAL_DATA_DIR: dataDir }, "other\r\n")).code,
    ).toBe(0);

    const list = await cli(["list", "alice", "--data-dir", dataDir], {});
    expect(list).toEqual({ code: 0, stdout: "GITHUB_TOKEN\tk1\nOTHER\tk1\n", stderr: "" });

    const rm = await cli(["rm", "alice", "OTHER", "--data-dir", dataDir], {});
    expect(rm.code).toBe(0);
    expect((await cli(["rm", "alice", "OTHER", "--data-dir", dataDir], {})).code).toBe(1);
    expect((await cli(["list", "alice", "--data-dir", dataDir], {})).stdout).toBe("GITHUB_TOKEN\tk1\n");

    // Every change is in the audit trail, by name only.
    const audit = (await readFile(`${dataDir}/.mcp-portal/audit.log`, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audit.map((e) => [e.event_type, e.user_id, e.action, e.resource])).toEqual([
      ["SECRET_CHANGE", "alice", "create_secret", "GITHUB_TOKEN"],
      ["SECRET_CHANGE", "alice", "create_secret", "OTHER"],
      ["SECRET_CHANGE", "alice", "remove_secret", "OTHER"],
    ]);
    const auditText = await readFile(`${dataDir}/.mcp-portal/audit.log`, "utf8");
    expect(auditText).not.toContain("ghp_value_123");
    expect(auditText).not.toContain("other");
  });

  it("strips exactly one trailing newline from the value", async () => {
    const dataDir = await tempDir();
    const env = { MCP_PORTAL_SECRET_KEYS: generateKey("k1"), MCP_PORTAL_DATA_DIR: dataDir };
    expect((await cli(["set", "alice", "X"], env, "line1\nline2\n\n")).code).toBe(0);
    const resolved = resolveSecrets(
      await readSecretsFile(dataDir, "alice"),
      "alice",
      ["X"],
      parseKeyList(env.MCP_PORTAL_SECRET_KEYS),
      DigestKey.fromSeed(Buffer.alloc(32)),
    );
    expect(resolved.get("X")).toMatchObject({ ok: true, value: "line1\nline2\n" });
  });

  it("rotate and gen-key", async () => {
    const dataDir = await tempDir();
    const k1 = generateKey("k1");
    await cli(["set", "alice", "X", "--data-dir", dataDir], { MCP_PORTAL_SECRET_KEYS: k1 }, "v");
    const gen = await cli(["gen-key", "k2"], {});
    expect(gen.code).toBe(0);
    const k2 = gen.stdout.trim();
    expect(k2).toMatch(/^k2:[A-Za-z0-9+/]{43}=$/);
    const rotate = await cli(["rotate", "--data-dir", dataDir], { MCP_PORTAL_SECRET_KEYS: `${k2},${k1}` });
    expect(rotate.code).toBe(0);
    expect(rotate.stdout).toContain("rotated users/alice/secrets.env: 1 secret(s), 1 re-encrypted under k2");
    const list = await cli(["list", "alice", "--data-dir", dataDir], {});
    expect(list.stdout).toBe("X\tk2\n");
  });

  it("returns 2 for usage errors and 1 for runtime errors, without echoing key material", async () => {
    const dataDir = await tempDir();
    expect((await cli([], {})).code).toBe(2);
    expect((await cli(["frobnicate"], {})).code).toBe(2);
    expect((await cli(["set", "alice"], {})).code).toBe(2);
    expect((await cli(["list", "alice", "--bogus"], {})).code).toBe(2);
    expect((await cli(["list", "../x", "--data-dir", dataDir], {})).code).toBe(2);
    expect((await cli(["gen-key", "bad id"], {})).code).toBe(1);
    expect((await cli(["help"], {})).code).toBe(0);

    const noKeys = await cli(["set", "alice", "X", "--data-dir", dataDir], {}, "v");
    expect(noKeys.code).toBe(1);
    expect(noKeys.stderr).toContain("MCP_PORTAL_SECRET_KEYS");

    const badKey = "k1:" + Buffer.alloc(16, 9).toString("base64");
    const short = await cli(
      ["set", "alice", "X", "--data-dir", dataDir],
      { MCP_PORTAL_SECRET_KEYS: badKey },
      "v",
    );
    expect(short.code).toBe(1);
    expect(short.stderr).not.toContain(badKey.slice(3));

    const empty = await cli(
      ["set", "alice", "X", "--data-dir", dataDir],
      { MCP_PORTAL_SECRET_KEYS: generateKey("k") },
      "\n",
    );
    expect(empty.code).toBe(1);
  });
});
