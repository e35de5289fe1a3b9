import { execFile } from "node:child_process";
import { cp, mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();
const exec = promisify(execFile);

async function containers(installation: string) {
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.installation}=${installation}`] },
  });
  return list.map((c) => ({
    key: `${c.Labels[LABELS.userId]}/${c.Labels[LABELS.serverId]}`,
    id: c.Id,
    state: c.State,
    env: c.Labels[LABELS.specHash],
  }));
}

async function keys(installation: string): Promise<string[]> {
  return (await containers(installation)).map((c) => c.key).sort();
}

function mutations(started: StartedDaemon) {
  const c = started.daemon.runtime.callCounts;
  return { create: c.get("container_create") ?? 0, remove: c.get("container_remove") ?? 0 };
}

const USERS_WITH_SERVERS = ["u01", "u02", "u03", "u04", "u05", "u06"];
const QUIET_USERS = Array.from({ length: 60 }, (_, i) => `q${String(i).padStart(2, "0")}`);

/** One revision of the tree: 66 users' files plus the catalog, i.e. ~130 files rewritten per checkout. */
async function writeRevision(data: TestDataDir, rev: number): Promise<void> {
  await data.baseCatalog("main", [
    stdioServer("alpha", { environment: { REV: rev === 2 ? "two" : "one" } }),
    stdioServer("beta"),
    stdioServer("gamma"),
  ]);
  for (const [i, user] of USERS_WITH_SERVERS.entries()) {
    const servers = rev === 2 ? (i < 3 ? ["alpha", "gamma"] : ["beta"]) : i < 3 ? ["alpha"] : ["beta"];
    await data.enable(user, servers);
  }
  for (const user of QUIET_USERS) {
    await data.enable(user, [], { environment: { REVISION: String(rev) } });
    await data.write(`users/${user}/custom-servers.json`, {
      version: `${rev}.0.0`,
      source: "user",
      metadata: { name: `${user} r${rev}` },
      servers: [],
    });
  }
}

function expectedKeys(rev: number): string[] {
  return USERS_WITH_SERVERS.flatMap((u, i) =>
    rev === 2
      ? i < 3
        ? [`${u}/alpha`, `${u}/gamma`]
        : [`${u}/beta`]
      : i < 3
        ? [`${u}/alpha`]
        : [`${u}/beta`],
  ).sort();
}

describeDocker("git-driven change", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let started: StartedDaemon | undefined;
  const git = (...args: string[]) => exec("git", ["-C", data.root, ...args]);

  beforeAll(async () => {
    data = await TestDataDir.create();
    await git("init", "-q", "-b", "main");
    await git("config", "user.email", "test@example.invalid");
    await git("config", "user.name", "test");
    await writeFile(path.join(data.root, ".gitignore"), ".mcp-portal/\n");
    for (const rev of [1, 2, 3]) {
      await writeRevision(data, rev === 3 ? 1 : rev);
      if (rev === 3)
        await data.write(`users/${QUIET_USERS[0]}/enabled-servers.json`, {
          servers: [],
          environment: { REVISION: "3" },
        });
      await git("add", "-A");
      await git("commit", "-q", "-m", `rev ${rev}`);
      await git("tag", `rev${rev}`);
    }
    await git("checkout", "-q", "rev1");
  });

  afterEach(async () => {
    await started?.stop();
    started = undefined;
  });

  afterAll(async () => {
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("converges across git checkouts with exactly the container changes the revisions require", async () => {
    started = await startDaemon(testEnv(data.root, installation));
    expect(await keys(installation)).toEqual(expectedKeys(1));
    const rev1 = await containers(installation);
    const before = mutations(started);

    // rev1 -> rev2: alpha's env changes (3 replaces), gamma is enabled for 3 users (3 creates).
    await git("checkout", "-q", "rev2");
    await waitFor(
      "rev2 converged",
      async () => {
        const now = await containers(installation);
        return JSON.stringify(now.map((c) => c.key).sort()) === JSON.stringify(expectedKeys(2)) &&
          now.every((c) => c.state === "running") &&
          now.filter((c) => c.key.endsWith("/alpha")).every((c) => !rev1.some((r) => r.id === c.id))
          ? now
          : undefined;
      },
      30_000,
    );
    await started.daemon.controller.idle();
    await new Promise((r) => setTimeout(r, 800));
    const afterRev2 = mutations(started);
    expect(afterRev2.create - before.create).toBe(6);
    expect(afterRev2.remove - before.remove).toBe(3);
    // beta's containers were never touched.
    const rev2 = await containers(installation);
    for (const c of rev2.filter((x) => x.key.endsWith("/beta")))
      expect(rev1.some((r) => r.id === c.id)).toBe(true);

    // rev2 -> rev3 (= rev1's containers, plus a quiet user's file change): 3 replaces back, 3 removals.
    await git("checkout", "-q", "rev3");
    await waitFor(
      "rev3 converged",
      async () => {
        const now = await containers(installation);
        return (
          JSON.stringify(now.map((c) => c.key).sort()) === JSON.stringify(expectedKeys(1)) &&
          now.every((c) => c.state === "running")
        );
      },
      30_000,
    );
    await started.daemon.controller.idle();
    await new Promise((r) => setTimeout(r, 800));
    const afterRev3 = mutations(started);
    expect(afterRev3.create - afterRev2.create).toBe(3);
    expect(afterRev3.remove - afterRev2.remove).toBe(6);
  }, 120_000);

  it("follows a data dir that is a symlink swapped atomically to a new checkout (git-sync)", async () => {
    await git("checkout", "-q", "rev1");
    const parent = await TestDataDir.create();
    try {
      const revA = path.join(parent.root, "rev-a");
      const revB = path.join(parent.root, "rev-b");
      await cp(data.root, revA, {
        recursive: true,
        filter: (src) => !src.includes(".mcp-portal") && !src.includes(`${path.sep}.git`),
      });
      await exec("git", ["-C", data.root, "checkout", "-q", "rev2"]);
      await cp(data.root, revB, {
        recursive: true,
        filter: (src) => !src.includes(".mcp-portal") && !src.includes(`${path.sep}.git`),
      });
      const link = path.join(parent.root, "current");
      await symlink(revA, link);
      const stateDir = path.join(parent.root, "state");
      await mkdir(stateDir);
      started = await startDaemon({ ...testEnv(link, installation), MCP_PORTAL_STATE_DIR: stateDir });
      await waitFor(
        "rev-a converged",
        async () => JSON.stringify(await keys(installation)) === JSON.stringify(expectedKeys(1)),
        30_000,
      );
      // Swap the way git-sync does: a new link renamed over the old one.
      await symlink(revB, `${link}.tmp`);
      await rename(`${link}.tmp`, link);
      await waitFor(
        "rev-b converged",
        async () => {
          const now = await containers(installation);
          return (
            JSON.stringify(now.map((c) => c.key).sort()) === JSON.stringify(expectedKeys(2)) &&
            now.every((c) => c.state === "running")
          );
        },
        30_000,
      );
      // The old checkout may now be deleted without effect.
      await rm(revA, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 800));
      expect(await keys(installation)).toEqual(expectedKeys(2));
    } finally {
      await started?.stop();
      started = undefined;
      await parent.dispose();
    }
  });

  it("handles editors' save-by-rename and a file caught half-written without deleting anything", async () => {
    await git("checkout", "-q", "rev1");
    started = await startDaemon(testEnv(data.root, installation));
    await waitFor(
      "rev1",
      async () => JSON.stringify(await keys(installation)) === JSON.stringify(expectedKeys(1)),
      30_000,
    );
    const base = mutations(started);
    const file = path.join(data.root, "users/u01/enabled-servers.json");
    // Half-written: the editor truncated the file and wrote only a prefix so far.
    await writeFile(file, '{ "servers": [ { "id": "alpha" }, { "id": "ga');
    await new Promise((r) => setTimeout(r, 1000));
    expect(mutations(started).remove).toBe(base.remove);
    // Save-by-rename: write a temp file next to it, rename over the original.
    await writeFile(`${file}.swp`, JSON.stringify({ servers: [{ id: "alpha" }, { id: "gamma" }] }));
    await rename(`${file}.swp`, file);
    await waitFor("u01/gamma running", async () =>
      (await containers(installation)).some((c) => c.key === "u01/gamma" && c.state === "running"),
    );
    await started.daemon.controller.idle();
    const after = mutations(started);
    expect(after.create - base.create).toBe(1);
    expect(after.remove).toBe(base.remove);
  });
});
