import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, readStatus, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, httpServer, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();

async function managed(installation: string, userId?: string) {
  const label = [`${LABELS.installation}=${installation}`];
  if (userId) label.push(`${LABELS.userId}=${userId}`);
  return docker.listContainers({ all: true, filters: { label } });
}

async function networksOf(installation: string, userId?: string) {
  const label = [`${LABELS.installation}=${installation}`];
  if (userId) label.push(`${LABELS.userId}=${userId}`);
  return docker.listNetworks({ filters: { label } });
}

async function execIn(
  containerId: string,
  cmd: string[],
  timeoutMs = 20_000,
): Promise<{ code: number; output: string }> {
  const exec = await docker
    .getContainer(containerId)
    .exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const output = await new Promise<string>((resolve) => {
    let data = "";
    // Bounded: a probe that never ends must not eat the whole test timeout.
    const timer = setTimeout(() => {
      stream.destroy();
      resolve(data);
    }, timeoutMs);
    stream.on("data", (d: Buffer) => (data += d.toString("utf8")));
    stream.on("end", () => {
      clearTimeout(timer);
      resolve(data);
    });
  });
  const info = await exec.inspect();
  return { code: info.Running ? -1 : (info.ExitCode ?? -1), output };
}

function serverOf(c: Docker.ContainerInfo): string | undefined {
  return c.Labels[LABELS.serverId];
}

describeDocker("reconcile loop against a real engine", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let started: StartedDaemon;

  beforeAll(async () => {
    data = await TestDataDir.create();
    await data.baseCatalog("main", [
      stdioServer("echo", { environment: { GREETING: "hello" } }),
      stdioServer("other"),
      httpServer("web"),
      stdioServer("big", { resources: { memory_mb: 64, cpu_shares: 32, pids_limit: 32 } }),
    ]);
    await data.policy({ default_limits: { max_containers: 3 } });
    await data.enable("alice", ["echo", "web", "other"]);
    await data.enable("bob", ["echo", "web"]);
    started = await startDaemon(testEnv(data.root, installation));
  });

  afterAll(async () => {
    await started?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("gives two users enabling the same server their own containers, networks, ports and subnets", async () => {
    const alice = await managed(installation, "alice");
    const bob = await managed(installation, "bob");
    expect(alice.map(serverOf).sort()).toEqual(["echo", "other", "web"]);
    expect(bob.map(serverOf).sort()).toEqual(["echo", "web"]);
    expect(alice.every((c) => c.State === "running")).toBe(true);
    const aliceEcho = alice.find((c) => serverOf(c) === "echo")!;
    const bobEcho = bob.find((c) => serverOf(c) === "echo")!;
    expect(aliceEcho.Id).not.toBe(bobEcho.Id);
    expect(aliceEcho.Labels[LABELS.hostPort]).not.toBe(bobEcho.Labels[LABELS.hostPort]);
    const [aliceNet] = await networksOf(installation, "alice");
    const [bobNet] = await networksOf(installation, "bob");
    expect(aliceNet!.Name).not.toBe(bobNet!.Name);
    expect(aliceNet!.IPAM?.Config?.[0]?.Subnet).not.toBe(bobNet!.IPAM?.Config?.[0]?.Subnet);
    // The HTTP server answers on its user's host port (loopback only).
    const web = alice.find((c) => serverOf(c) === "web")!;
    const port = web.Labels[LABELS.hostPort];
    expect(
      web.Ports.some((p) => p.PublicPort === Number(port) && p.IP === "127.0.0.1" && p.PrivatePort === 8080),
    ).toBe(true);
    const body = await waitFor("web answers", async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
      return res?.ok ? res.text() : undefined;
    });
    expect(body.trim()).toBe("ok-web");
  });

  it("applies hardened defaults: non-root, no capabilities, no-new-privileges, limits, stdin open for stdio", async () => {
    const [echo] = (await managed(installation, "alice")).filter((c) => serverOf(c) === "echo");
    const info = await docker.getContainer(echo!.Id).inspect();
    expect(info.Config.User).toBe("1000:1000");
    expect(info.HostConfig.CapDrop).toEqual(["ALL"]);
    expect(info.HostConfig.SecurityOpt).toContain("no-new-privileges:true");
    expect(info.HostConfig.Memory).toBe(32 * 1024 * 1024);
    expect(info.HostConfig.PidsLimit).toBe(32);
    expect(info.HostConfig.RestartPolicy?.Name).toBe("no");
    expect(info.Config.OpenStdin).toBe(true);
    expect(info.Config.Env).toContain("GREETING=hello");
    expect(info.Config.Env).toContain("MCP_USER_ID=alice");
    expect(info.Mounts.map((m) => m.Destination).sort()).toEqual(["/cache", "/data"]);
    expect(info.Mounts.every((m) => m.Type === "volume")).toBe(true);
  });

  it("keeps users' networks apart: another user's container cannot reach the server, the same user's can", async () => {
    const aliceWeb = (await managed(installation, "alice")).find((c) => serverOf(c) === "web")!;
    const aliceEcho = (await managed(installation, "alice")).find((c) => serverOf(c) === "echo")!;
    const bobEcho = (await managed(installation, "bob")).find((c) => serverOf(c) === "echo")!;
    const info = await docker.getContainer(aliceWeb.Id).inspect();
    const ip = Object.values(info.NetworkSettings.Networks)[0]!.IPAddress;
    // busybox-static's wget crashes resolving even an IP literal; nc speaks plain HTTP just as well.
    const probe = ["sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 8080`];
    const same = await execIn(aliceEcho.Id, probe);
    expect(same.output).toContain("ok-web");
    const other = await execIn(bobEcho.Id, probe);
    expect(other.code).not.toBe(0);
    expect(other.output).not.toContain("ok-web");
  });

  it("makes zero mutations on a second reconcile", async () => {
    const { runtime, controller } = started.daemon;
    const before = new Map(runtime.callCounts);
    await controller.resync();
    await controller.idle();
    const mutating = [
      "container_create",
      "container_start",
      "container_stop",
      "container_remove",
      "container_rename",
      "network_create",
      "network_remove",
      "volume_create",
    ] as const;
    for (const op of mutating) expect(runtime.callCounts.get(op) ?? 0, op).toBe(before.get(op) ?? 0);
    const lists = ["container_list", "network_list", "volume_list"].map(
      (op) =>
        (runtime.callCounts.get(op as "container_list") ?? 0) - (before.get(op as "container_list") ?? 0),
    );
    // One listing per kind for the whole resync, not one per user.
    expect(lists).toEqual([1, 1, 1]);
  });

  it("adds and removes containers when enabled-servers.json is edited", async () => {
    await data.enable("bob", ["echo"]);
    await waitFor("bob's web removed", async () => (await managed(installation, "bob")).length === 1);
    await data.enable("bob", ["echo", "other"]);
    const bob = await waitFor("bob's other running", async () => {
      const list = await managed(installation, "bob");
      return list.some((c) => serverOf(c) === "other" && c.State === "running") ? list : undefined;
    });
    expect(bob.map(serverOf).sort()).toEqual(["echo", "other"]);
  });

  it("replaces only the containers of a server whose catalog env changed", async () => {
    const before = await managed(installation);
    const ids = new Map(before.map((c) => [`${c.Labels[LABELS.userId]}/${serverOf(c)}`, c.Id]));
    await data.baseCatalog("main", [
      stdioServer("echo", { environment: { GREETING: "bonjour" } }),
      stdioServer("other"),
      httpServer("web"),
      stdioServer("big", { resources: { memory_mb: 64, cpu_shares: 32, pids_limit: 32 } }),
    ]);
    const after = await waitFor("echo replaced for both users", async () => {
      const list = await managed(installation);
      const echoes = list.filter((c) => serverOf(c) === "echo" && c.State === "running");
      return echoes.length === 2 && echoes.every((c) => c.Id !== ids.get(`${c.Labels[LABELS.userId]}/echo`))
        ? list
        : undefined;
    });
    for (const c of after) {
      const key = `${c.Labels[LABELS.userId]}/${serverOf(c)}`;
      if (serverOf(c) === "echo") {
        expect(c.Names[0]).toMatch(/^\/mcp-.*-echo-[0-9a-f]{6}$/);
        const env = (await docker.getContainer(c.Id).inspect()).Config.Env;
        expect(env).toContain("GREETING=bonjour");
      } else {
        expect(c.Id, key).toBe(ids.get(key));
      }
    }
    const status = await readStatus(started.daemon.config.stateDir, "alice");
    expect(status?.servers.find((s) => s.id === "echo")?.phase).toBe("Running");
  });

  it("undoes docker rm -f and docker stop of a managed container", async () => {
    const echo = (await managed(installation, "alice")).find((c) => serverOf(c) === "echo")!;
    await docker.getContainer(echo.Id).remove({ force: true });
    const recreated = await waitFor("alice's echo recreated", async () =>
      (await managed(installation, "alice")).find((c) => serverOf(c) === "echo" && c.State === "running"),
    );
    expect(recreated.Id).not.toBe(echo.Id);
    expect(recreated.Labels[LABELS.hostPort]).toBe(echo.Labels[LABELS.hostPort]);
    // Removing the new container right away is not a crash loop: it comes back at once, not after a backoff.
    await docker.getContainer(recreated.Id).remove({ force: true });
    const started = Date.now();
    await waitFor(
      "alice's echo recreated again",
      async () =>
        (await managed(installation, "alice")).find(
          (c) => serverOf(c) === "echo" && c.State === "running" && c.Id !== recreated.Id,
        ),
      8_000,
    );
    expect(Date.now() - started).toBeLessThan(8_000);
    const other = (await managed(installation, "alice")).find((c) => serverOf(c) === "other")!;
    await docker.getContainer(other.Id).stop({ t: 0 });
    const restarted = await waitFor("alice's other restarted", async () =>
      (await managed(installation, "alice")).find((c) => serverOf(c) === "other" && c.State === "running"),
    );
    expect(restarted.Id).toBe(other.Id);
    // `docker kill`: the engine announces `die` before its listing shows the container exited.
    const web = (await managed(installation, "alice")).find((c) => serverOf(c) === "web")!;
    const startedBefore = (await docker.getContainer(web.Id).inspect()).State.StartedAt;
    await docker.getContainer(web.Id).kill();
    const revived = await waitFor("alice's web restarted after kill", async () => {
      const info = await docker.getContainer(web.Id).inspect();
      return info.State.Running && info.State.StartedAt !== startedBefore ? info : undefined;
    });
    expect(revived.Id).toBe(web.Id);
  });

  it("recreates a user's network removed behind its back (network events carry no labels)", async () => {
    // A user with nothing enabled still owns a network, and nothing else would notice it going.
    await data.enable("frank", []);
    const net = await waitFor("frank's network", async () => (await networksOf(installation, "frank"))[0]);
    await docker.getNetwork(net.Id).remove();
    const recreated = await waitFor("frank's network back", async () => {
      const [n] = await networksOf(installation, "frank");
      return n && n.Id !== net.Id ? n : undefined;
    });
    expect(recreated.Name).toBe(net.Name);
    expect(recreated.IPAM?.Config?.[0]?.Subnet).toBe(net.IPAM?.Config?.[0]?.Subnet);
  });

  it("blocks servers beyond a limit in enabled order, says which limit, and stops the excess when a limit drops", async () => {
    await data.enable("carol", ["echo", "other", "web", "big"]);
    const status = await waitFor("carol reconciled", async () => {
      const s = await readStatus(started.daemon.config.stateDir, "carol");
      return s && s.servers.length === 4 && s.servers.filter((x) => x.phase === "Running").length === 3
        ? s
        : undefined;
    });
    const big = status.servers.find((s) => s.id === "big")!;
    expect(big.phase).toBe("Blocked");
    expect(big.reason).toBe("LimitExceeded");
    expect(big.message).toContain("max_containers 3");
    expect((await managed(installation, "carol")).map(serverOf).sort()).toEqual(["echo", "other", "web"]);
    await data.policy({
      default_limits: { max_containers: 3 },
      users: { carol: { limits: { max_containers: 1 } } },
    });
    await waitFor(
      "carol down to one container",
      async () => (await managed(installation, "carol")).length === 1,
    );
    expect((await managed(installation, "carol")).map(serverOf)).toEqual(["echo"]);
    // Other users are not affected by carol's limit.
    expect((await managed(installation, "alice")).length).toBe(3);
  });

  it("deletes nothing when a file becomes malformed, and reports it", async () => {
    const before = (await managed(installation, "alice")).map((c) => c.Id).sort();
    await data.write("users/alice/enabled-servers.json", '{ "servers": [ { "id": "echo" } ');
    const status = await waitFor("alice reports the problem", async () => {
      const s = await readStatus(started.daemon.config.stateDir, "alice");
      return s && s.errors.length > 0 ? s : undefined;
    });
    expect(status.errors[0]?.file).toBe("users/alice/enabled-servers.json");
    expect(status.errors[0]?.path).toMatch(/^line \d+, column \d+$/);
    expect(status.conditions.find((c) => c.type === "Stalled")?.status).toBe("True");
    await data.baseCatalog("broken", [{ id: "x" }]);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await managed(installation, "alice")).map((c) => c.Id).sort()).toEqual(before);
    expect((await managed(installation, "bob")).length).toBe(2);
    // A deleted container of a user whose file is broken still comes back (the last good state is kept).
    const other = (await managed(installation, "alice")).find((c) => serverOf(c) === "other")!;
    await docker.getContainer(other.Id).remove({ force: true });
    await waitFor("recreated from last good state", async () =>
      (await managed(installation, "alice")).some((c) => serverOf(c) === "other" && c.State === "running"),
    );
    await data.write("catalogs/base/broken.json", {
      version: "1",
      source: "base",
      metadata: { name: "b" },
      servers: [],
    });
    await data.enable("alice", ["echo", "web", "other"]);
    await waitFor(
      "alice healthy again",
      async () => (await readStatus(started.daemon.config.stateDir, "alice"))?.phase === "Ready",
    );
  });

  it("shows ImagePullBackOff for an image that cannot be pulled, without holding up the user's other servers", async () => {
    // A registry on a closed loopback port: the pull fails fast and no traffic leaves the machine.
    await data.write("users/gina/custom-servers.json", {
      version: "1",
      source: "user",
      metadata: { name: "gina" },
      servers: [stdioServer("ghost", { image: "127.0.0.1:1/mcp-portal-test/absent", tag: "1" })],
    });
    await data.enable("gina", ["ghost", "echo"]);
    const status = await waitFor("gina's pull failure reported", async () => {
      const s = await readStatus(started.daemon.config.stateDir, "gina");
      const ghost = s?.servers.find((x) => x.id === "ghost");
      return ghost?.reason === "ImagePullBackOff" &&
        s?.servers.find((x) => x.id === "echo")?.phase === "Running"
        ? s
        : undefined;
    });
    expect(status.servers.find((x) => x.id === "ghost")?.phase).toBe("Pending");
    expect(status.servers.find((x) => x.id === "ghost")?.message).toMatch(/next try in \d+ s/);
    expect(status.conditions.find((c) => c.type === "Degraded")?.status).toBe("True");
    await data.removeUser("gina");
  });

  it("leaves an unmanaged container with a colliding name alone and reports the conflict", async () => {
    const { containerName } = await import("../../src/desired/names.js");
    const name = containerName(installation, "dave", "echo");
    const squatter = await docker.createContainer({
      name,
      Image: "mcp-portal-test/busybox:1",
      Cmd: ["sleep", "300"],
      Labels: { "test.squatter": installation },
    });
    try {
      await data.enable("dave", ["echo"]);
      const status = await waitFor("dave reports a conflict", async () => {
        const s = await readStatus(started.daemon.config.stateDir, "dave");
        return s?.servers[0]?.reason === "NameConflict" ? s : undefined;
      });
      expect(status.servers[0]?.phase).toBe("Blocked");
      const info = await docker.getContainer(squatter.id).inspect();
      expect(info.Config.Labels[LABELS.managedBy]).toBeUndefined();
      expect(info.State.Status).toBe("created");
    } finally {
      await squatter.remove({ force: true });
    }
  });

  it("removes a deleted user's containers and network but keeps its data volumes", async () => {
    await data.enable("erin", ["echo"]);
    await waitFor("erin running", async () =>
      (await managed(installation, "erin")).some((c) => c.State === "running"),
    );
    await data.removeUser("erin");
    await waitFor("erin's containers gone", async () => (await managed(installation, "erin")).length === 0);
    await waitFor("erin's network gone", async () => (await networksOf(installation, "erin")).length === 0);
    const volumes = await docker.listVolumes({
      filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.userId}=erin`] },
    });
    expect(volumes.Volumes?.length).toBeGreaterThan(0);
    await waitFor(
      "erin's status removed",
      async () => (await readStatus(started.daemon.config.stateDir, "erin")) === undefined,
    );
  });
});
