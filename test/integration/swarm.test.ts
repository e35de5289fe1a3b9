// The Swarm backend on a real three-node swarm (scripts/swarm-lab.sh: one dockerd per network namespace on this
// machine). The controller runs as a child process against the manager (so it can be killed with -9); a node
// gateway runs as a container on every node (the node's own engine socket, the users' overlays joined); the
// entry gateway runs in node 1's network namespace, on the public URL's address; MCP clients from the official
// SDK reach the servers through it. Everything the run makes lives in the lab, which is torn down at the end.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../src/auth/token-store.js";
import { statusCommand } from "../../src/commands/status.js";
import type { UserStatus } from "../../src/contracts/status-file.js";
import { containerName } from "../../src/desired/names.js";
import { LABELS, MANAGED_BY } from "../../src/labels.js";
import { runCli } from "../helpers/cli-io.js";
import { readStatus, spawnDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir } from "../helpers/data-dir.js";
import { TEST_BUSYBOX_IMAGE, TEST_NODE_IMAGE, newTestInstallation } from "../helpers/docker.js";
import {
  LAB_UP_TIMEOUT_MS,
  type LabNode,
  type SwarmLab,
  startSwarmLab,
  swarmLabWanted,
} from "../helpers/swarm-lab.js";

const REPO = path.resolve(import.meta.dirname, "../..");
const ADMIN = "swarm-admin-token-0123456789abcdef";
const USERS = ["u1", "u2", "u3", "u4"];
const RELAY_PORT = 7070;
/** The bound: a drained or failed node's users run elsewhere within this long. */
const REPLACE_WITHIN_MS = 60_000;

const SERVERS = [
  {
    id: "tools-stdio",
    name: "tools-stdio",
    image: "mcp-portal-test/mcp-stdio",
    tag: "1",
    transport: "stdio",
    resources: { memory_mb: 128, cpu_shares: 64, pids_limit: 64 },
  },
  {
    id: "tools-http",
    name: "tools-http",
    image: "mcp-portal-test/mcp-http",
    tag: "1",
    transport: "streamable-http",
    ports: [{ container_port: 8080 }],
    resources: { memory_mb: 128, cpu_shares: 64, pids_limit: 64 },
  },
];

type Service = Docker.Service & {
  ID: string;
  Version: { Index: number };
  Spec: {
    Name: string;
    Labels: Record<string, string>;
    TaskTemplate: {
      ContainerSpec: { Labels?: Record<string, string>; Env?: string[] };
      Placement?: { Constraints?: string[] };
    };
  };
};
interface Task {
  ServiceID: string;
  NodeID?: string;
  DesiredState: string;
  Status: { State: string };
}

const describeSwarm = swarmLabWanted() ? describe : describe.skip;

describeSwarm("Swarm backend on a three-node lab", () => {
  const installation = newTestInstallation();
  let lab: SwarmLab;
  let data: TestDataDir;
  let env: Record<string, string>;
  let controller: ReturnType<typeof spawnDaemon> | undefined;
  let entry: ChildProcess | undefined;
  let entryOutput = "";
  const tokens: Record<string, string> = {};
  const clients: Client[] = [];

  const manager = (): Docker => lab.nodes[0]!.docker;
  const services = async (): Promise<Service[]> =>
    (await manager().listServices({
      filters: { label: [`${LABELS.installation}=${installation}`] },
    })) as unknown as Service[];
  const runningTasks = async (): Promise<Task[]> =>
    ((await manager().listTasks({ filters: { "desired-state": ["running"] } })) as Task[]).filter(
      (t) => t.Status.State === "running",
    );
  const nodeIds = async (): Promise<Map<string, string>> =>
    new Map(
      ((await manager().listNodes()) as { ID: string; Description: { Hostname: string } }[]).map((n) => [
        n.ID,
        n.Description.Hostname,
      ]),
    );
  const placementOf = (s: Service): string | undefined =>
    s.Spec.TaskTemplate.Placement?.Constraints?.find((c) => c.startsWith("node.id=="))?.slice(
      "node.id==".length,
    );
  /** Each user's node (hostname), once every one of its services has exactly one running task there. */
  const userNodes = async (): Promise<Map<string, string> | undefined> => {
    const [list, tasks, names] = await Promise.all([services(), runningTasks(), nodeIds()]);
    const out = new Map<string, string>();
    for (const s of list) {
      const user = s.Spec.Labels[LABELS.userId]!;
      const running = tasks.filter((t) => t.ServiceID === s.ID);
      if (running.length !== 1 || running[0]!.NodeID !== placementOf(s)) return undefined;
      const node = names.get(running[0]!.NodeID!)!;
      if (out.has(user) && out.get(user) !== node) return undefined;
      out.set(user, node);
    }
    return out;
  };
  const converged = async (users = USERS): Promise<Map<string, string> | undefined> => {
    const list = await services();
    if (list.length !== users.length * SERVERS.length) return undefined;
    const nodes = await userNodes();
    if (!nodes || !users.every((u) => nodes.has(u))) return undefined;
    for (const u of users) {
      const status = await readStatus(data.stateDir, u);
      if (!status?.servers.every((s) => s.phase === "Running" && s.node === nodes.get(u))) return undefined;
      if (status.servers.length !== SERVERS.length) return undefined;
    }
    return nodes;
  };
  const status = async (user: string): Promise<UserStatus> => (await readStatus(data.stateDir, user))!;
  const text = (result: unknown): string =>
    (result as { content: { type: string; text: string }[] }).content[0]?.text ?? "";
  /** An MCP session through the entry, at the URL status gives; retried while the route is being set up. */
  const echoThrough = async (url: string, token: string, message: string): Promise<string> =>
    waitFor(
      `echo through ${url}`,
      async () => {
        const client = new Client({ name: "swarm-test", version: "1.0.0" });
        const transport = new StreamableHTTPClientTransport(new URL(url), {
          requestInit: { headers: { Authorization: `Bearer ${token}` } },
        });
        try {
          await client.connect(transport);
          clients.push(client);
          return text(await client.callTool({ name: "echo", arguments: { text: message } }));
        } catch (error) {
          await client.close().catch(() => undefined);
          throw error;
        }
      },
      REPLACE_WITHIN_MS,
    );

  async function startNodeGateway(node: LabNode, gatewayEnv: Record<string, string>): Promise<void> {
    const name = `${installation}-gateway`;
    const container = await node.docker.createContainer({
      name,
      Image: TEST_NODE_IMAGE,
      User: "0:0",
      WorkingDir: REPO,
      Cmd: ["node", "--import", "tsx", "src/cli.ts", "gateway"],
      Env: Object.entries({
        ...gatewayEnv,
        MCP_PORTAL_GATEWAY_ROLE: "node",
        MCP_PORTAL_GATEWAY_CONTAINER: name,
        MCP_PORTAL_GATEWAY_RELAY_PORT: String(RELAY_PORT),
        MCP_PORTAL_PUBLISH_HOST: "127.0.0.1",
        LOG_LEVEL: "info",
      }).map(([k, v]) => `${k}=${v}`),
      ExposedPorts: { [`${RELAY_PORT}/tcp`]: {} },
      HostConfig: {
        // All nodes share this machine's files: the repo (read-only), the data dir, and the node's own socket.
        Binds: [`${REPO}:${REPO}:ro`, `${data.root}:${data.root}`, `${node.sock}:/var/run/docker.sock`],
        PortBindings: { [`${RELAY_PORT}/tcp`]: [{ HostIp: node.addr, HostPort: String(RELAY_PORT) }] },
        RestartPolicy: { Name: "always" },
      },
    });
    await container.start();
  }

  beforeAll(async () => {
    lab = await startSwarmLab();
    data = await TestDataDir.create();
    await data.baseCatalog("swarm", SERVERS);
    for (const u of USERS) {
      await data.enable(u, ["tools-stdio", "tools-http"]);
      tokens[u] = (await createToken(data.stateDir, u)).token;
    }
    const shared = testEnv(data.root, installation, {
      MCP_PORTAL_BACKEND: "swarm",
      MCP_PORTAL_GATEWAY: "on",
      MCP_PORTAL_PUBLIC_URL: `http://${lab.nodes[0]!.addr}`,
      MCP_PORTAL_SWARM_POLL_SECONDS: "2",
      MCP_PORTAL_SWARM_RESTART_DELAY_SECONDS: "1",
      MCP_PORTAL_RESYNC_SECONDS: "30",
      MCP_PORTAL_ADMIN_TOKEN: ADMIN,
    });
    env = { ...shared, DOCKER_HOST: lab.managerHost };
    for (const node of lab.nodes) await startNodeGateway(node, shared);
    // The entry: in node 1's network namespace, on the address the public URL names.
    entry = spawn(
      "nsenter",
      [`--net=${lab.nodes[0]!.netns}`, process.execPath, "--import", "tsx", "src/cli.ts", "gateway"],
      {
        cwd: REPO,
        env: {
          ...process.env,
          ...env,
          MCP_PORTAL_GATEWAY_ROLE: "entry",
          MCP_PORTAL_GATEWAY_RELAY_PORT: String(RELAY_PORT),
          MCP_PORTAL_PUBLISH_HOST: lab.nodes[0]!.addr,
          LOG_LEVEL: "info",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    entry.stdout?.on("data", (d: Buffer) => (entryOutput += d.toString("utf8")));
    entry.stderr?.on("data", (d: Buffer) => (entryOutput += d.toString("utf8")));
    controller = spawnDaemon(env);
  }, LAB_UP_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    controller?.child.kill("SIGKILL");
    await controller?.exited;
    if (entry && entry.exitCode === null) {
      const exited = new Promise((resolve) => entry!.once("exit", resolve));
      entry.kill("SIGKILL");
      await exited;
    }
    // The lab's teardown removes every service, container and network the run made.
    await lab?.down();
    await data?.dispose();
  }, 120_000);

  it("converges 4 users x 2 servers: every service labelled, users spread, status gives node and url", async () => {
    const nodes = await waitFor("4 users converged", converged, 180_000);
    expect(new Set(nodes.values()).size).toBeGreaterThan(1);
    for (const s of await services()) {
      const labels = s.Spec.Labels;
      expect(labels[LABELS.managedBy]).toBe(MANAGED_BY);
      expect(labels[LABELS.installation]).toBe(installation);
      expect(USERS).toContain(labels[LABELS.userId]);
      expect(["tools-stdio", "tools-http"]).toContain(labels[LABELS.serverId]);
      expect(labels[LABELS.specHash]).toMatch(/^[0-9a-f]{32,64}$/);
      expect(Number(labels[LABELS.hostPort])).toBeGreaterThan(0);
      // The task containers carry the same labels: the node gateways find local servers by them.
      for (const key of [LABELS.installation, LABELS.userId, LABELS.serverId, LABELS.hostPort])
        expect(s.Spec.TaskTemplate.ContainerSpec.Labels?.[key]).toBe(labels[key]);
    }
    const cli = await runCli(statusCommand, ["--output", "json"], env);
    expect(cli.code).toBe(0);
    const view = JSON.parse(cli.stdout) as {
      users: {
        user_id: string;
        servers: { id: string; node?: string; url?: string; host_port?: number }[];
      }[];
    };
    for (const u of USERS) {
      const user = view.users.find((x) => x.user_id === u)!;
      expect(user.servers).toHaveLength(2);
      for (const s of user.servers) {
        expect(s.node).toBe(nodes.get(u));
        expect(s.url).toBe(`http://${lab.nodes[0]!.addr}:${s.host_port}/mcp`);
      }
    }
  }, 240_000);

  it("drains a node holding users: they run elsewhere within 60 s, status and the gateway follow", async () => {
    const before = (await converged())!;
    // A node other than the one the public URL names (node 1) that holds users.
    const counts = new Map<string, number>();
    for (const node of before.values()) counts.set(node, (counts.get(node) ?? 0) + 1);
    const drained = lab.nodes.slice(1).find((n) => counts.has(n.name));
    expect(drained).toBeDefined();
    const moving = USERS.filter((u) => before.get(u) === drained!.name);
    const user = moving[0]!;
    const urls = Object.fromEntries((await status(user)).servers.map((s) => [s.id, s.url!]));
    // Through the entry before the move: the stdio and the HTTP server.
    for (const id of ["tools-stdio", "tools-http"])
      expect(await echoThrough(urls[id]!, tokens[user]!, `before ${id}`)).toBe(`before ${id}`);
    const ports = (await services()).map((s) => [s.ID, s.Spec.Labels[LABELS.hostPort]]);

    const started = Date.now();
    const drainedId = [...(await nodeIds())].find(([, name]) => name === drained!.name)![0];
    const node = manager().getNode(drainedId);
    const info = (await node.inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
    await node.update({ version: info.Version.Index, ...info.Spec, Availability: "drain" });
    const after = await waitFor(
      "users re-placed off the drained node",
      async () => {
        const nodes = await converged();
        return nodes && moving.every((u) => nodes.get(u) !== drained!.name) ? nodes : undefined;
      },
      REPLACE_WITHIN_MS,
    );
    expect(Date.now() - started).toBeLessThan(REPLACE_WITHIN_MS);
    expect(after.get(user)).not.toBe(drained!.name);
    // Moved in place: same services, same ports; status names the new node, the URL is the same.
    expect((await services()).map((s) => [s.ID, s.Spec.Labels[LABELS.hostPort]])).toEqual(ports);
    for (const s of (await status(user)).servers) {
      expect(s.node).toBe(after.get(user));
      expect(s.url).toBe(urls[s.id]);
    }
    for (const id of ["tools-stdio", "tools-http"])
      expect(await echoThrough(urls[id]!, tokens[user]!, `after ${id}`)).toBe(`after ${id}`);

    const back = (await node.inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
    await node.update({ version: back.Version.Index, ...back.Spec, Availability: "active" });
  }, 180_000);

  it("kill -9 of a worker's dockerd: its users are re-placed, nothing is duplicated when it returns", async () => {
    const before = (await converged())!;
    const victim = lab.nodes.slice(1).find((n) => [...before.values()].includes(n.name));
    expect(victim).toBeDefined();
    const moving = USERS.filter((u) => before.get(u) === victim!.name);
    const ids = (await services()).map((s) => s.ID).sort();
    await lab.killNode(victim!.index);
    // Swarm notices a silent node after its heartbeats stop (seconds), then the controller moves its users.
    await waitFor(
      "users re-placed off the dead node",
      async () => {
        const nodes = await converged();
        return nodes && moving.every((u) => nodes.get(u) !== victim!.name) ? nodes : undefined;
      },
      REPLACE_WITHIN_MS + 30_000,
    );
    await lab.startNode(victim!.index);
    await waitFor(
      "the node Ready again",
      async () =>
        (
          (await manager().listNodes()) as { Description: { Hostname: string }; Status: { State: string } }[]
        ).some((n) => n.Description.Hostname === victim!.name && n.Status.State === "ready"),
      60_000,
    );
    // Give the returned node time to report what it still had, then look for duplicates.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    await waitFor("converged after the node returned", converged, 60_000);
    expect((await services()).map((s) => s.ID).sort()).toEqual(ids);
    const tasks = await runningTasks();
    for (const id of ids) expect(tasks.filter((t) => t.ServiceID === id)).toHaveLength(1);
    const leftovers = (await victim!.docker.listContainers({
      filters: { label: [`${LABELS.installation}=${installation}`], status: ["running"] },
    })) as { Labels: Record<string, string> }[];
    const nodes = (await converged())!;
    for (const c of leftovers) expect(nodes.get(c.Labels[LABELS.userId]!)).toBe(victim!.name);
  }, 240_000);

  it("controller kill -9 and restart: no service recreated or updated, ports kept", async () => {
    await waitFor("converged", converged, 60_000);
    const snapshot = async () =>
      (await services())
        .map((s) => `${s.ID} v${s.Version.Index} port ${s.Spec.Labels[LABELS.hostPort]}`)
        .sort();
    const before = await snapshot();
    controller!.child.kill("SIGKILL");
    await controller!.exited;
    controller = spawnDaemon(env);
    const restarted = controller;
    // "controller running" comes after the first full sync (every user reconciled); then a few watcher polls.
    await waitFor("controller running", () => restarted.output().includes("controller running"), 60_000);
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(await snapshot()).toEqual(before);
  }, 120_000);

  it("heals a removed service and an edited one; leaves a foreign service with our name alone", async () => {
    await waitFor("converged", converged, 60_000);
    const byKey = async (user: string, server: string) =>
      (await services()).find(
        (s) => s.Spec.Labels[LABELS.userId] === user && s.Spec.Labels[LABELS.serverId] === server,
      );
    // Removed: it comes back, with its port.
    const removed = (await byKey("u1", "tools-stdio"))!;
    await manager().getService(removed.ID).remove();
    const back = await waitFor(
      "removed service back",
      async () => {
        const s = await byKey("u1", "tools-stdio");
        return s && s.ID !== removed.ID ? s : undefined;
      },
      60_000,
    );
    expect(back.Spec.Name).toBe(removed.Spec.Name);
    expect(back.Spec.Labels[LABELS.hostPort]).toBe(removed.Spec.Labels[LABELS.hostPort]);
    // Edited behind our back (our labels kept): put back in place.
    const edited = (await byKey("u2", "tools-http"))!;
    const full = (await manager().getService(edited.ID).inspect()) as {
      Version: { Index: number };
      Spec: Service["Spec"] & Record<string, unknown>;
    };
    full.Spec.TaskTemplate.ContainerSpec.Env = [
      ...(full.Spec.TaskTemplate.ContainerSpec.Env ?? []),
      "EDITED=1",
    ];
    await manager()
      .getService(edited.ID)
      .update({ version: full.Version.Index, ...full.Spec });
    await waitFor(
      "edited service put back",
      async () => {
        const s = (await manager().getService(edited.ID).inspect()) as Service;
        return !(s.Spec.TaskTemplate.ContainerSpec.Env ?? []).includes("EDITED=1") || undefined;
      },
      60_000,
    );
    // Foreign: a service under the name our next user's server would get, not ours.
    const name = containerName(installation, "u5", "tools-stdio");
    const foreignLabels = { "example.owner": "someone-else" };
    const created = (await manager().createService({
      Name: name,
      Labels: foreignLabels,
      TaskTemplate: { ContainerSpec: { Image: TEST_BUSYBOX_IMAGE, Command: ["sleep", "3600"] } },
      Mode: { Replicated: { Replicas: 1 } },
    })) as { id?: string; ID?: string };
    const foreignId = created.ID ?? created.id!;
    const foreignBefore = (await manager().getService(foreignId).inspect()) as Service;
    await data.enable("u5", ["tools-stdio"]);
    await waitFor(
      "u5 blocked by the name conflict",
      async () =>
        (await readStatus(data.stateDir, "u5"))?.servers.find(
          (s) => s.id === "tools-stdio" && s.reason === "NameConflict",
        ),
      60_000,
    );
    const foreignAfter = (await manager().getService(foreignId).inspect()) as Service;
    expect(foreignAfter.Version.Index).toBe(foreignBefore.Version.Index);
    expect(foreignAfter.Spec.Labels).toEqual(foreignLabels);
  }, 180_000);
});
