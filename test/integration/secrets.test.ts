import { execFile } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { generateKey, parseKeyList } from "../../src/secrets/key-ring.js";
import { rotateSecrets } from "../../src/secrets/rotate.js";
import { setSecret } from "../../src/secrets/store.js";
import { type StartedDaemon, readStatus, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();
const run = promisify(execFile);

// Plaintext values chosen so that a grep cannot match anything by accident.
const TOKEN_V1 = "plaintext-token-7f3a9c1e-v1";
const TOKEN_V2 = "plaintext-token-4b8d2e6f-v2";

async function containersOf(installation: string, userId: string) {
  return docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.userId}=${userId}`] },
  });
}

async function envInside(containerId: string, name: string): Promise<string> {
  const exec = await docker
    .getContainer(containerId)
    .exec({ Cmd: ["sh", "-c", `printf %s "$${name}"`], AttachStdout: true });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("end", () => resolve());
  });
  // Multiplexed stream: 8-byte frame headers before each payload.
  const raw = Buffer.concat(chunks);
  let out = "";
  for (let i = 0; i + 8 <= raw.length;) {
    const size = raw.readUInt32BE(i + 4);
    out += raw.subarray(i + 8, i + 8 + size).toString("utf8");
    i += 8 + size;
  }
  return out;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  }
  return out;
}

describeDocker("per-user secrets injected into containers", () => {
  const installation = newTestInstallation();
  const k1 = generateKey("k1");
  const k2 = generateKey("k2");
  let data: TestDataDir;
  let env: Record<string, string>;
  let started: StartedDaemon | undefined;

  beforeAll(async () => {
    data = await TestDataDir.create();
    await data.baseCatalog("main", [
      stdioServer("needs-token", { required_secrets: ["API_TOKEN"] }),
      stdioServer("plain"),
    ]);
    await data.enable("alice", ["needs-token", "plain"]);
    await data.enable("bob", ["needs-token", "plain"]);
    await setSecret(data.root, "alice", "API_TOKEN", TOKEN_V1, parseKeyList(k1));
    env = testEnv(data.root, installation, { MCP_PORTAL_SECRET_KEYS: k1, LOG_LEVEL: "debug" });
    started = await startDaemon(env);
  });

  afterAll(async () => {
    await started?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("gives the container the decrypted value and blocks only the server whose secret is missing", async () => {
    const alice = await containersOf(installation, "alice");
    const withToken = alice.find((c) => c.Labels[LABELS.serverId] === "needs-token")!;
    expect(withToken.State).toBe("running");
    expect(await envInside(withToken.Id, "API_TOKEN")).toBe(TOKEN_V1);

    const bob = await containersOf(installation, "bob");
    expect(bob.map((c) => c.Labels[LABELS.serverId])).toEqual(["plain"]);
    const status = await readStatus(data.stateDir, "bob");
    const blocked = status?.servers.find((s) => s.id === "needs-token");
    expect(blocked?.phase).toBe("Blocked");
    expect(blocked?.reason).toBe("MissingSecret");
    expect(status?.servers.find((s) => s.id === "plain")?.phase).toBe("Running");
  });

  it("replaces the container when the value changes, through a digest in the spec hash", async () => {
    const before = (await containersOf(installation, "alice")).find(
      (c) => c.Labels[LABELS.serverId] === "needs-token",
    )!;
    await setSecret(data.root, "alice", "API_TOKEN", TOKEN_V2, parseKeyList(k1));
    const after = await waitFor("replaced with the new value", async () => {
      const c = (await containersOf(installation, "alice")).find(
        (x) => x.Labels[LABELS.serverId] === "needs-token" && x.State === "running" && x.Id !== before.Id,
      );
      return c;
    });
    expect(await envInside(after.Id, "API_TOKEN")).toBe(TOKEN_V2);
    expect(after.Labels[LABELS.specHash]).not.toBe(before.Labels[LABELS.specHash]);
    const plain = (await containersOf(installation, "alice")).find(
      (c) => c.Labels[LABELS.serverId] === "plain",
    )!;
    expect(plain.Created).toBeLessThanOrEqual(before.Created + 5);
  });

  it("keeps a running container when the secret becomes undecryptable, and says why", async () => {
    const before = (await containersOf(installation, "alice")).find(
      (c) => c.Labels[LABELS.serverId] === "needs-token",
    )!;
    // A value moved to another user fails the AAD check.
    const file = path.join(data.root, "users/alice/secrets.env");
    const line = (await readFile(file, "utf8")).trim();
    await data.write("users/bob/secrets.env", line + "\n");
    const status = await waitFor("bob's secret fails to decrypt", async () => {
      const s = await readStatus(data.stateDir, "bob");
      return s?.servers.find((x) => x.id === "needs-token")?.reason === "SecretDecryptFailed" ? s : undefined;
    });
    expect(status.servers.find((x) => x.id === "plain")?.phase).toBe("Running");
    const still = (await containersOf(installation, "alice")).find(
      (c) => c.Labels[LABELS.serverId] === "needs-token",
    )!;
    expect(still.Id).toBe(before.Id);
    await data.write("users/bob/secrets.env", "");
  });

  it("rotates to a new key without replacing any container", async () => {
    const before = (await containersOf(installation, "alice")).map((c) => c.Id).sort();
    await started!.stop();
    started = undefined;
    const report = await rotateSecrets({
      dataDir: data.root,
      stateDir: data.stateDir,
      keyRing: parseKeyList(`${k2},${k1}`),
    });
    expect(report.ok).toBe(true);
    expect(await readFile(path.join(data.root, "users/alice/secrets.env"), "utf8")).toContain(":k2:");
    // The old key is gone from the ring: everything must decrypt with k2 alone.
    started = await startDaemon({ ...env, MCP_PORTAL_SECRET_KEYS: k2 });
    const after = (await containersOf(installation, "alice")).map((c) => c.Id).sort();
    expect(after).toEqual(before);
    expect((await readStatus(data.stateDir, "alice"))?.phase).toBe("Ready");
  });

  it("never writes the plaintext outside the container's environment", async () => {
    const needles = [TOKEN_V1, TOKEN_V2];
    const files = [...(await filesUnder(data.root))];
    for (const file of files) {
      const text = await readFile(file, "utf8");
      for (const needle of needles)
        expect(text.includes(needle), `${file} holds a plaintext secret`).toBe(false);
    }
    const logs = started!.logs.join("");
    expect(logs.length).toBeGreaterThan(0);
    for (const needle of needles) expect(logs.includes(needle), "logs hold a plaintext secret").toBe(false);
    for (const c of await containersOf(installation, "alice")) {
      const labels = JSON.stringify(c.Labels);
      for (const needle of needles)
        expect(labels.includes(needle), "labels hold a plaintext secret").toBe(false);
    }
    // And `grep -r` agrees (covers the state dir, cache, audit log and status files inside the data dir).
    const grep = await run("grep", ["-rl", "-e", TOKEN_V1, "-e", TOKEN_V2, data.root]).catch(
      (e: { code?: number; stdout?: string }) => e,
    );
    expect((grep as { code?: number }).code).toBe(1);
  });
});
