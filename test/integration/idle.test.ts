// Scale to zero against a real engine (README, "Idle servers"): the controller and the gateway in-process (two
// object graphs, as in production), the official MCP SDK client, servers built from the test images. Short idle
// timeouts; the whole file stays well under two minutes.
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createToken } from "../../src/auth/token-store.js";
import { UserStatus, statusFilePath } from "../../src/contracts/status-file.js";
import type { GatewayProcess } from "../../src/gateway/process.js";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir } from "../helpers/data-dir.js";
import {
  TEST_BUSYBOX_IMAGE,
  cleanupInstallation,
  describeDocker,
  newTestInstallation,
} from "../helpers/docker.js";
import { startTestGateway } from "../helpers/gateway.js";

const docker = new Docker();
const REPO = path.resolve(import.meta.dirname, "../..");
const HEALTH = { interval_seconds: 1, timeout_seconds: 3, retries: 2 };
const IDLE_SECONDS = 3;
const common = {
  resources: { memory_mb: 128, cpu_shares: 64, pids_limit: 64 },
  health_check: HEALTH,
  idle_timeout_seconds: IDLE_SECONDS,
};
const SERVERS = [
  {
    id: "tools-stdio",
    name: "tools-stdio",
    image: "mcp-portal-test/mcp-stdio",
    tag: "1",
    transport: "stdio",
    ...common,
  },
  {
    id: "tools-http",
    name: "tools-http",
    image: "mcp-portal-test/mcp-http",
    tag: "1",
    transport: "streamable-http",
    ports: [{ container_port: 8080 }],
    ...common,
  },
  // Runs until /data/crash exists (the test puts it there while the server is idle): then it exits at once.
  {
    id: "crashy",
    name: "crashy",
    image: TEST_BUSYBOX_IMAGE.split(":")[0],
    tag: TEST_BUSYBOX_IMAGE.split(":")[1],
    transport: "stdio",
    command: ["sh", "-c", '[ -e /data/crash ] && exit 3; while read -r line; do echo "$line"; done'],
    ...common,
  },
];

describeDocker("idle servers (scale to zero)", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let env: Record<string, string>;
  let controller: StartedDaemon | undefined;
  let gateway: GatewayProcess;
  let token: string;
  const clients: { close(): Promise<void> }[] = [];

  const container = async (serverId: string) => {
    const list = await docker.listContainers({
      all: true,
      filters: {
        label: [
          `${LABELS.installation}=${installation}`,
          `${LABELS.userId}=alice`,
          `${LABELS.serverId}=${serverId}`,
        ],
      },
    });
    expect(list.length).toBeLessThanOrEqual(1);
    return list[0];
  };
  const status = async () =>
    UserStatus.parse(JSON.parse(await readFile(statusFilePath(data.stateDir, "alice"), "utf8")));
  const serverStatus = async (serverId: string) => (await status()).servers.find((s) => s.id === serverId);
  const urlOf = async (serverId: string) =>
    new URL(`http://127.0.0.1:${(await serverStatus(serverId))?.host_port}/mcp`);
  const connect = async (serverId: string): Promise<Client> => {
    const transport = new StreamableHTTPClientTransport(await urlOf(serverId), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name: "idle-test", version: "1.0.0" });
    await client.connect(transport);
    clients.push(client);
    return client;
  };
  const echo = async (client: Client, text: string) => {
    const result = (await client.callTool({ name: "echo", arguments: { text } })) as {
      content: { text: string }[];
    };
    return result.content[0]?.text;
  };
  const waitIdle = (serverId: string) =>
    waitFor(
      `${serverId} idle`,
      async () =>
        (await serverStatus(serverId))?.phase === "Idle" && (await container(serverId))?.State === "exited",
      120_000,
    );
  const audit = async () =>
    (await readFile(path.join(data.stateDir, "audit.log"), "utf8"))
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { action: string; resource: string; details: Record<string, unknown> });
  const gatewayLogs: string[] = [];
  const controllerLogs: string[][] = [];
  const startController = async () => {
    controller = await startDaemon(env);
    controllerLogs.push(controller.logs);
  };

  beforeAll(async () => {
    await promisify(execFile)("bash", [path.join(REPO, "scripts/build-mcp-test-images.sh")], { cwd: REPO });
    data = await TestDataDir.create();
    await data.baseCatalog("idle", SERVERS);
    await data.enable("alice", ["tools-stdio", "tools-http", "crashy"]);
    token = (await createToken(data.stateDir, "alice")).token;
    env = testEnv(data.root, installation, {
      MCP_PORTAL_GATEWAY: "on",
      MCP_PORTAL_PUBLISH_HOST: "127.0.0.1",
      // Generous: on a shared, loaded engine a start alone has taken 14 s.
      MCP_PORTAL_GATEWAY_WAKE_TIMEOUT_SECONDS: "120",
    });
    await startController();
    gateway = await startTestGateway(env, {
      logs: gatewayLogs,
      level: "debug",
      tuning: { readyWaitMs: 60_000, bindRetryMs: 500, idle: { viewPollMs: 100, trafficWriteMs: 200 } },
    });
  }, 300_000);

  afterAll(async () => {
    // IDLE_TEST_LOGS=DIR keeps both processes' logs for a look after a failure.
    const logDir = process.env.IDLE_TEST_LOGS;
    if (logDir) {
      await writeFile(path.join(logDir, "controller.log"), controllerLogs.map((l) => l.join("")).join(""));
      await writeFile(path.join(logDir, "gateway.log"), gatewayLogs.join(""));
    }
    // Each step runs whatever the one before did: a failed stop leaves no container, network or process behind.
    const errors: unknown[] = [];
    const step = (p: Promise<unknown> | undefined) => p?.catch((error: unknown) => void errors.push(error));
    for (const client of clients) await step(client.close());
    await step(gateway?.stop());
    await step(controller?.stop());
    await step(cleanupInstallation(docker, installation));
    await step(data?.dispose());
    if (errors.length > 0) throw new AggregateError(errors, "idle test clean-up failed");
  }, 120_000);

  it("stops idle servers; a client connected before and a new client both succeed on the same container", async () => {
    const before: Record<string, { client: Client; id: string }> = {};
    for (const serverId of ["tools-stdio", "tools-http"]) {
      // Connect after the first idle stop (the timeout is short: the first stop comes while the test starts), so
      // the client's first requests wake the server; a request racing a stop is the unit tests' job.
      await waitIdle(serverId);
      const client = await connect(serverId);
      expect(await echo(client, `before ${serverId}`)).toBe(`before ${serverId}`);
      before[serverId] = { client, id: (await container(serverId))!.Id };
    }
    for (const serverId of ["tools-stdio", "tools-http"]) await waitIdle(serverId);
    const idleFile = JSON.parse(await readFile(path.join(data.stateDir, "idle.json"), "utf8")) as {
      servers: { server_id: string }[];
    };
    expect(idleFile.servers.map((s) => s.server_id)).toEqual(
      expect.arrayContaining(["tools-http", "tools-stdio"]),
    );
    for (const serverId of ["tools-stdio", "tools-http"]) {
      const { client, id } = before[serverId]!;
      const started = Date.now();
      expect(await echo(client, `after ${serverId}`)).toBe(`after ${serverId}`);
      console.log(`wake latency ${serverId}: ${Date.now() - started} ms`);
      const woken = await container(serverId);
      expect(woken?.Id).toBe(id);
      expect(woken?.State).toBe("running");
    }
    // Idle again; now a client that never saw the server wakes it with its initialize.
    for (const serverId of ["tools-stdio", "tools-http"]) await waitIdle(serverId);
    for (const serverId of ["tools-stdio", "tools-http"]) {
      const fresh = await connect(serverId);
      expect(await echo(fresh, `new ${serverId}`)).toBe(`new ${serverId}`);
      expect((await container(serverId))?.Id).toBe(before[serverId]!.id);
      // And the old client still works on the same server.
      expect(await echo(before[serverId]!.client, `old ${serverId}`)).toBe(`old ${serverId}`);
    }
    const metrics = await gateway.metrics.registry.metrics();
    expect(metrics).toMatch(/mcp_portal_gateway_wakes_total\{result="success"\} [4-9]/);
  }, 400_000);

  it("a client pinned to MCP 2026-07-28 (SDK v2) wakes an idle HTTP server: one start, the same container", async () => {
    await waitIdle("tools-http");
    const id = (await container("tools-http"))!.Id;
    const wakeStarts = async () =>
      (await audit()).filter(
        (l) =>
          l.action === "start_container" &&
          l.details.server_id === "tools-http" &&
          l.details.cause === "woken by a request",
      ).length;
    const before = await wakeStarts();
    const client = new ModernClient(
      { name: "idle-modern-test", version: "2" },
      { capabilities: {}, versionNegotiation: { mode: { pin: "2026-07-28" } } },
    );
    clients.push(client);
    // Its first request (server/discover) needs the server: held while the controller starts it.
    await client.connect(
      new ModernTransport(await urlOf("tools-http"), {
        requestInit: { headers: { Authorization: `Bearer ${token}` } },
      }),
    );
    expect(client.getNegotiatedProtocolVersion()).toBe("2026-07-28");
    const result = (await client.callTool({ name: "echo", arguments: { text: "modern" } })) as {
      content: { text: string }[];
    };
    expect(result.content[0]?.text).toBe("modern");
    const woken = await container("tools-http");
    expect(woken?.Id).toBe(id);
    expect(woken?.State).toBe("running");
    expect((await wakeStarts()) - before).toBe(1);
  }, 300_000);

  it("two clients hit an idle server at once: one start, both succeed", async () => {
    await waitIdle("tools-http");
    const a = await connect("tools-stdio");
    const b = await connect("tools-stdio");
    await waitIdle("tools-stdio");
    const startsBefore = (await audit()).filter(
      (l) => l.action === "start_container" && l.details.server_id === "tools-stdio",
    ).length;
    const [x, y] = await Promise.all([echo(a, "x"), echo(b, "y")]);
    expect([x, y]).toEqual(["x", "y"]);
    const starts = (await audit()).filter(
      (l) => l.action === "start_container" && l.details.server_id === "tools-stdio",
    ).length;
    expect(starts - startsBefore).toBe(1);
  }, 300_000);

  it("a controller restart keeps an idle server idle (nothing re-created); a wake during it succeeds", async () => {
    const client = await connect("tools-stdio");
    await waitIdle("tools-stdio");
    const id = (await container("tools-stdio"))!.Id;
    const creates = (await audit()).filter((l) => l.action === "create_container").length;
    await controller!.stop();
    controller = undefined;
    // While the controller is away, a request waits (bounded) for the wake.
    const pending = echo(client, "during restart");
    await new Promise((r) => setTimeout(r, 1500));
    expect((await container("tools-stdio"))?.State).toBe("exited");
    await startController();
    expect(await pending).toBe("during restart");
    expect((await container("tools-stdio"))?.Id).toBe(id);
    // The other idle servers stayed idle; nothing was re-created.
    expect((await container("tools-http"))?.State).toBe("exited");
    expect((await audit()).filter((l) => l.action === "create_container")).toHaveLength(creates);
  }, 300_000);

  it("a server that crashes on wake: a clear error, CrashLoopBackOff, one wake start however many requests", async () => {
    await waitIdle("crashy");
    // Make the next start fail: a file in the user's data volume (written as root by a helper container).
    const volume = (
      await docker.listVolumes({
        filters: { label: [`${LABELS.installation}=${installation}`, `${LABELS.volumeArea}=data`] },
      })
    ).Volumes[0]!;
    await promisify(execFile)("docker", [
      "run",
      "--rm",
      "--user",
      "0:0",
      "-v",
      `${volume.Name}:/data`,
      TEST_BUSYBOX_IMAGE,
      "touch",
      "/data/crash",
    ]);
    const url = await urlOf("crashy");
    const call = (id: number) =>
      fetch(url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id,
          method: "initialize",
          params: {
            protocolVersion: "2025-06-18",
            capabilities: {},
            clientInfo: { name: "c", version: "1" },
          },
        }),
      });
    const answers = await Promise.all([call(1), call(2), call(3)]);
    for (const res of answers) {
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { code: number; message: string } };
      expect(body.error.code).toBe(-32000);
      expect(body.error.message).toMatch(/unavailable|could not be woken/);
    }
    await waitFor(
      "CrashLoopBackOff",
      async () => (await serverStatus("crashy"))?.reason === "CrashLoopBackOff",
      20_000,
    );
    const wakeStarts = (await audit()).filter(
      (l) =>
        l.action === "start_container" &&
        l.details.server_id === "crashy" &&
        l.details.cause === "woken by a request",
    );
    expect(wakeStarts).toHaveLength(1);
  }, 300_000);
});
