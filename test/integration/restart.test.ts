import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { readStatus, spawnDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, httpServer, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();

async function snapshot(installation: string) {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.installation}=${installation}`] },
  });
  const networks = await docker.listNetworks({
    filters: { label: [`${LABELS.installation}=${installation}`] },
  });
  return {
    containers: containers
      .map((c) => ({
        user: c.Labels[LABELS.userId],
        server: c.Labels[LABELS.serverId],
        port: c.Labels[LABELS.hostPort],
        state: c.State,
      }))
      .sort((a, b) => `${a.user}/${a.server}`.localeCompare(`${b.user}/${b.server}`)),
    networks: networks
      .map((n) => ({
        user: n.Labels?.[LABELS.userId],
        subnet: n.IPAM?.Config?.[0]?.Subnet,
        block: n.Labels?.[LABELS.portBlock],
      }))
      .sort((a, b) => String(a.user).localeCompare(String(b.user))),
  };
}

describeDocker("restart safety of the daemon process", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let env: Record<string, string>;

  beforeAll(async () => {
    data = await TestDataDir.create();
    await data.baseCatalog("main", [stdioServer("echo"), stdioServer("other"), httpServer("web")]);
    for (const user of ["u1", "u2", "u3"]) await data.enable(user, ["echo", "other", "web"]);
    env = testEnv(data.root, installation);
  });

  afterAll(async () => {
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("survives kill -9 at any point: same ports and subnets, no duplicates, nothing leaked", async () => {
    // Kill the first run mid-converge (as soon as the first container exists), then let a second run finish.
    const first = spawnDaemon(env);
    await waitFor("first container", async () => {
      const list = await docker.listContainers({
        all: true,
        filters: { label: [`${LABELS.installation}=${installation}`] },
      });
      return list.length > 0;
    });
    first.child.kill("SIGKILL");
    await first.exited;

    const second = spawnDaemon(env);
    const converged = await waitFor(
      "all 9 containers running",
      async () => {
        const s = await snapshot(installation);
        return s.containers.length === 9 && s.containers.every((c) => c.state === "running") ? s : undefined;
      },
      60_000,
    );
    second.child.kill("SIGKILL");
    await second.exited;
    expect(converged.networks).toHaveLength(3);

    // A third start after another kill -9 changes nothing: same ports, same subnets, same blocks.
    const third = spawnDaemon(env);
    await waitFor("third run synced", () => third.output().includes("initial sync done"), 30_000);
    const after = await snapshot(installation);
    third.child.kill("SIGKILL");
    await third.exited;
    expect(after).toEqual(converged);
    const ports = converged.containers.map((c) => c.port);
    expect(new Set(ports).size).toBe(ports.length);
    const subnets = converged.networks.map((n) => n.subnet);
    expect(new Set(subnets).size).toBe(subnets.length);
    expect(third.output()).not.toContain('"action":"create_container"');
  });

  it("exits 0 on SIGTERM and leaves the containers running", async () => {
    const run = spawnDaemon(env);
    await waitFor("synced", () => run.output().includes("initial sync done"), 30_000);
    run.child.kill("SIGTERM");
    const code = await run.exited;
    expect(code, run.output().slice(-2000)).toBe(0);
    expect(run.output()).toContain("shutting down");
    const s = await snapshot(installation);
    expect(s.containers.filter((c) => c.state === "running")).toHaveLength(9);
    const status = await readStatus(data.stateDir, "u1");
    expect(status?.phase).toBe("Ready");
  });
});
