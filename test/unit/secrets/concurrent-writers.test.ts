import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { secretsCommand } from "../../../src/commands/secrets.js";
import { generateKey, parseKeyList } from "../../../src/secrets/key-ring.js";
import { readSecretsFile } from "../../../src/secrets/store.js";
import { runCli } from "../../helpers/cli-io.js";
import { type ApiFixture, apiFixture } from "../api/api-fixture.js";

/*
 * The CLI (`mcp-portal secrets set|rotate`) and the daemon's API both rewrite users/<id>/secrets.env. Each holds
 * the user's lock file in the state dir around its read-modify-write, so neither loses the other's update.
 */

const REPO = path.resolve(import.meta.dirname, "../../..");
const KEY = generateKey("k1");
const fixtures: ApiFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
});

async function fixture(): Promise<ApiFixture> {
  const f = await apiFixture({ secretKey: KEY });
  fixtures.push(f);
  await mkdir(path.join(f.dataDir, "users/alice"), { recursive: true });
  return f;
}

const cliEnv = (f: ApiFixture, key = KEY) => ({
  MCP_PORTAL_SECRET_KEYS: key,
  MCP_PORTAL_DATA_DIR: f.dataDir,
  MCP_PORTAL_STATE_DIR: f.stateDir,
});

function apiSet(f: ApiFixture, name: string) {
  return f.http.inject({
    method: "POST",
    url: "/api/v1/users/alice/secrets",
    headers: f.admin,
    payload: { secrets: { [name]: `value-of-${name}` } },
  });
}

async function names(f: ApiFixture): Promise<string[]> {
  return (await readSecretsFile(f.dataDir, "alice")).map((e) => e.name).sort();
}

describe("the CLI and the API writing one user's secrets at once", () => {
  it("lose no update (the CLI in-process, its own locks)", async () => {
    const f = await fixture();
    const results = await Promise.all(
      Array.from({ length: 15 }, (_, i) => [
        runCli(secretsCommand, ["set", "alice", `CLI_${i}`], cliEnv(f), `cli-value-${i}\n`),
        apiSet(f, `API_${i}`),
      ]).flat(),
    );
    expect(results.map((r) => ("code" in r ? r.code : r.statusCode))).toEqual(
      Array.from({ length: 15 }, () => [0, 200]).flat(),
    );
    const expected = Array.from({ length: 15 }, (_, i) => [`API_${i}`, `CLI_${i}`])
      .flat()
      .sort();
    expect(await names(f)).toEqual(expected);
  });

  it("lose no update while `secrets rotate` re-encrypts the file", async () => {
    const f = await fixture();
    for (let i = 0; i < 5; i++) expect((await apiSet(f, `OLD_${i}`)).statusCode).toBe(200);
    const next = `${generateKey("k2")},${KEY}`;
    const api = Promise.all(Array.from({ length: 15 }, (_, i) => apiSet(f, `NEW_${i}`)));
    const rotations = Promise.all(
      Array.from({ length: 3 }, () => runCli(secretsCommand, ["rotate"], cliEnv(f, next))),
    );
    expect((await api).map((r) => r.statusCode)).toEqual(Array(15).fill(200));
    expect((await rotations).map((r) => r.code)).toEqual([0, 0, 0]);
    expect(await names(f)).toEqual(
      [
        ...Array.from({ length: 5 }, (_, i) => `OLD_${i}`),
        ...Array.from({ length: 15 }, (_, i) => `NEW_${i}`),
      ].sort(),
    );
    const ring = parseKeyList(next);
    expect((await readSecretsFile(f.dataDir, "alice")).every((e) => ring.has(e.keyId))).toBe(true);
  });

  it("lose no update with the CLI as real processes", async () => {
    const f = await fixture();
    const run = (name: string) =>
      new Promise<number | null>((resolve) => {
        const child = spawn(
          process.execPath,
          ["--import", "tsx", path.join(REPO, "src/cli.ts"), "secrets", "set", "alice", name],
          { cwd: REPO, env: { ...process.env, ...cliEnv(f) }, stdio: ["pipe", "ignore", "ignore"] },
        );
        child.stdin.end(`${name}-value\n`);
        child.on("exit", resolve);
      });
    const processes = Promise.all(["PROC_A", "PROC_B", "PROC_C"].map(run));
    let done = false;
    void processes.then(() => (done = true));
    const apiNames: string[] = [];
    // The API keeps writing for as long as the processes run (bounded: 30 s, 2000 writes).
    const deadline = Date.now() + 30_000;
    for (let i = 0; !done && i < 2000 && Date.now() < deadline; i++) {
      expect((await apiSet(f, `API_${i}`)).statusCode).toBe(200);
      apiNames.push(`API_${i}`);
    }
    expect(await processes).toEqual([0, 0, 0]);
    expect(await names(f)).toEqual([...apiNames, "PROC_A", "PROC_B", "PROC_C"].sort());
  }, 60_000);
});
