// The hardening issue's first attack on the real engine: policy.json gives server "net" NET_ADMIN; user mallory
// defines her own "net" in custom-servers.json and got her image started with NET_ADMIN; every user's
// environment (LD_PRELOAD into the shared, writable /data) reached the loosened container too.
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, readStatus, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();

describeDocker("servers policy.json loosens, against a real engine", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let started: StartedDaemon;

  const containersOf = (userId: string) =>
    docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.userId}=${userId}`] },
    });

  beforeAll(async () => {
    data = await TestDataDir.create();
    await data.baseCatalog("main", [stdioServer("net"), stdioServer("plain")]);
    await data.policy({ server_security: { net: { cap_add: ["NET_ADMIN"], user_env_allow: ["TZ"] } } });
    await data.write("users/mallory/custom-servers.json", {
      version: "1",
      source: "user",
      metadata: { name: "mine" },
      servers: [stdioServer("net", { command: ["sh", "-c", "id; while read -r line; do :; done"] })],
    });
    await data.enable("mallory", ["net", "plain"]);
    await data.enable("alice", ["net", "plain"], { environment: { LD_PRELOAD: "/data/x.so", TZ: "UTC" } });
    started = await startDaemon(testEnv(data.root, installation));
  });

  afterAll(async () => {
    await started?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("blocks a user's own server under a loosened id (ShadowsAdminServer) and says why in status", async () => {
    const status = await waitFor("mallory's status with both servers", async () => {
      const s = await readStatus(data.stateDir, "mallory");
      return s?.servers.length === 2 && s.servers.some((x) => x.phase === "Running") ? s : undefined;
    });
    const net = status.servers.find((s) => s.id === "net");
    expect(net).toMatchObject({ phase: "Blocked", reason: "ShadowsAdminServer" });
    expect(net?.message).toContain("users/mallory/custom-servers.json");
    expect(net?.message).toContain("server_security");
    const containers = await containersOf("mallory");
    expect(containers.map((c) => c.Labels[LABELS.serverId])).toEqual(["plain"]);
  });

  it("runs the admin's loosened server with its capability but without the user's environment", async () => {
    const container = await waitFor("alice's net container", async () => {
      const found = (await containersOf("alice")).find((c) => c.Labels[LABELS.serverId] === "net");
      return found?.State === "running" ? found : undefined;
    });
    const info = await docker.getContainer(container.Id).inspect();
    expect(info.HostConfig.CapAdd).toEqual(["NET_ADMIN"]);
    const env = info.Config.Env ?? [];
    expect(env).toContain("TZ=UTC");
    expect(env.filter((e) => e.startsWith("LD_PRELOAD="))).toEqual([]);

    const plain = (await containersOf("alice")).find((c) => c.Labels[LABELS.serverId] === "plain");
    const plainInfo = await docker.getContainer(plain!.Id).inspect();
    expect(plainInfo.Config.Env).toContain("LD_PRELOAD=/data/x.so");
    expect(plainInfo.HostConfig.CapAdd ?? []).toEqual([]);
  });
});
