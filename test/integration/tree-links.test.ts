import { mkdir, rename, rm, symlink } from "node:fs/promises";
import path from "node:path";
import Docker from "dockerode";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, readStatus, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

/*
 * A user with commit rights to users/<id>/ turns their file, or their whole folder, into a link to another
 * user's. The running controller must neither follow it (alice would run bob's servers) nor read it as "nothing
 * enabled" (alice's servers would go): it keeps alice as she was and says why.
 */

const docker = new Docker();

async function containers(installation: string): Promise<{ key: string; id: string; state: string }[]> {
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.installation}=${installation}`] },
  });
  return list
    .map((c) => ({
      key: `${c.Labels[LABELS.userId]}/${c.Labels[LABELS.serverId]}`,
      id: c.Id,
      state: c.State,
    }))
    .sort((a, b) => (a.key < b.key ? -1 : 1));
}

describeDocker("links in a user's folder, against a running controller", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let started: StartedDaemon | undefined;

  beforeAll(async () => {
    data = await TestDataDir.create();
    await data.baseCatalog("main", [stdioServer("alpha"), stdioServer("beta")]);
    await data.enable("alice", ["alpha"]);
    await data.enable("bob", ["beta"]);
  });

  afterEach(async () => {
    await started?.stop();
    started = undefined;
  });

  afterAll(async () => {
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("block only that user: nothing of alice's is replaced or removed, bob is untouched, status says why", async () => {
    started = await startDaemon(testEnv(data.root, installation));
    const running = await waitFor("both running", async () => {
      const now = await containers(installation);
      return now.length === 2 && now.every((c) => c.state === "running") ? now : undefined;
    });
    expect(running.map((c) => c.key)).toEqual(["alice/alpha", "bob/beta"]);
    const aliceStatus = (pattern: RegExp) =>
      waitFor(`alice's status to say ${pattern.source}`, async () => {
        const status = await readStatus(data.stateDir, "alice");
        return status?.errors.some((e) => pattern.test(`${e.file}: ${e.path}: ${e.message}`))
          ? status
          : undefined;
      });

    // 1. alice's enabled-servers.json becomes a link to bob's (which enables beta).
    const aliceFile = path.join(data.root, "users/alice/enabled-servers.json");
    await rm(aliceFile);
    await symlink("../bob/enabled-servers.json", aliceFile);
    const linkedFile = await aliceStatus(/^users\/alice\/enabled-servers\.json: \$: is a symbolic link/);
    expect(linkedFile.phase).not.toBe("Ready");
    await started.daemon.controller.idle();
    expect(await containers(installation)).toEqual(running);

    // 2. alice's whole folder becomes a link to bob's.
    await mkdir(path.join(data.root, "attic"), { recursive: true });
    await rename(path.join(data.root, "users/alice"), path.join(data.root, "attic/alice"));
    await symlink("bob", path.join(data.root, "users/alice"));
    await aliceStatus(/^users\/alice: \$: is a symbolic link/);
    await started.daemon.controller.idle();
    expect(await containers(installation)).toEqual(running);
    expect((await readStatus(data.stateDir, "bob"))?.errors).toEqual([]);

    // Fixed in git: alice converges back to her own file, still the same container.
    await rm(path.join(data.root, "users/alice"));
    await mkdir(path.join(data.root, "users/alice"));
    await data.enable("alice", ["alpha"]);
    await waitFor(
      "alice ready again",
      async () => (await readStatus(data.stateDir, "alice"))?.phase === "Ready",
    );
    expect(await containers(installation)).toEqual(running);
  });
});
