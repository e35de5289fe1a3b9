import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { tokensFilePath } from "../../../src/auth/token-store.js";
import { main } from "../../../src/main.js";
import { runCli } from "../../helpers/cli-io.js";

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(main, ["tokens", ...args], env);
}

describe("mcp-portal tokens", () => {
  it("creates (printing the token once), lists and revokes", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-tokens-"));
    dirs.push(stateDir);
    const created = await cli(["create", "alice", "--state-dir", stateDir]);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^mcp_[0-9a-f]{16}_/);
    expect(created.stderr).toMatch(/shown only this once/);
    expect(created.stderr).toMatch(
      /note: users\/alice\/ is not a directory of .*; the API refuses this token's writes/,
    );
    expect(await readFile(tokensFilePath(stateDir), "utf8")).not.toContain(token);
    const id = token.slice(4, 20);

    const list = await cli(["list"], { MCP_PORTAL_STATE_DIR: stateDir });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\talice\\t\\d{4}-`));
    expect(list.stdout).not.toContain(token);

    expect((await cli(["revoke", id, "--state-dir", stateDir])).code).toBe(0);
    expect((await cli(["revoke", id, "--state-dir", stateDir])).code).toBe(1);
    expect((await cli(["list", "--state-dir", stateDir])).stdout).toBe("");
  });

  it("loses no token when several `tokens create` and `revoke` run at once (each holds the tokens lock)", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-tokens-"));
    dirs.push(stateDir);
    const keep = await cli(["create", "keep", "--state-dir", stateDir]);
    const doomed = (await cli(["create", "doomed", "--state-dir", stateDir])).stdout.trim().slice(4, 20);
    const results = await Promise.all([
      ...Array.from({ length: 12 }, (_, i) => cli(["create", `user-${i}`, "--state-dir", stateDir])),
      cli(["revoke", doomed, "--state-dir", stateDir]),
    ]);
    expect(results.map((r) => r.code)).toEqual(Array(13).fill(0));
    const users = (await cli(["list", "--state-dir", stateDir])).stdout
      .trim()
      .split("\n")
      .map((line) => line.split("\t")[1])
      .sort();
    expect(users).toEqual(["keep", ...Array.from({ length: 12 }, (_, i) => `user-${i}`)].sort());
    expect(keep.code).toBe(0);
  });

  it("answers usage errors with 2", async () => {
    expect((await cli([])).code).toBe(2);
    expect((await cli(["create", "not/valid"])).code).toBe(2);
    expect((await cli(["revoke", "xyz"])).code).toBe(2);
    expect((await cli(["frobnicate"])).code).toBe(2);
    expect((await cli(["--help"])).code).toBe(0);
  });
});
