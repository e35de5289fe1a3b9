// The gateway against a real engine: the real controller (in-process) runs two MCP servers built from the test
// images (scripts/build-mcp-test-images.sh); the gateway (in-process, a separate object graph as in production)
// serves them on the users' host ports; MCP clients from the official SDK talk to it.
//
// Until the controller stops publishing HTTP servers' ports when the gateway is on, the controller here runs with
// MCP_PORTAL_PUBLISH_HOST=127.0.0.2 (its published ports land there) and the gateway with 127.0.0.1, so both can
// hold the same host port number.
import { execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createToken } from "../../src/auth/token-store.js";
import type { HealthFileContent, HealthFileServer } from "../../src/gateway/health-file.js";
import type { GatewayProcess } from "../../src/gateway/process.js";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";
import { startTestGateway } from "../helpers/gateway.js";
import { freePort } from "../helpers/net.js";

const docker = new Docker();
const REPO = path.resolve(import.meta.dirname, "../..");
const ADMIN = "gateway-admin-token-0123456789abcdef";
const HEALTH = { interval_seconds: 1, timeout_seconds: 3, retries: 2 };

const SERVERS = [
  {
    id: "tools-stdio",
    name: "tools-stdio",
    image: "mcp-portal-test/mcp-stdio",
    tag: "1",
    transport: "stdio",
    resources: { memory_mb: 128, cpu_shares: 64, pids_limit: 64 },
    health_check: HEALTH,
  },
  {
    id: "tools-http",
    name: "tools-http",
    image: "mcp-portal-test/mcp-http",
    tag: "1",
    transport: "streamable-http",
    ports: [{ container_port: 8080 }],
    resources: { memory_mb: 128, cpu_shares: 64, pids_limit: 64 },
    health_check: HEALTH,
  },
];

describeDocker("gateway", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let env: Record<string, string>;
  let controller: StartedDaemon | undefined;
  let gateway: GatewayProcess;
  let gatewayLogs: string[];
  let aliceToken: string;
  let bobToken: string;
  const clients: Client[] = [];

  const healthFile = async (): Promise<HealthFileContent | undefined> => {
    try {
      return JSON.parse(
        await readFile(path.join(data.stateDir, "gateway", "health.json"), "utf8"),
      ) as HealthFileContent;
    } catch {
      return undefined;
    }
  };
  const health = async (serverId: string, userId = "alice"): Promise<HealthFileServer | undefined> =>
    (await healthFile())?.servers.find((s) => s.user_id === userId && s.server_id === serverId);
  const containerOf = async (serverId: string, userId = "alice") => {
    const list = await docker.listContainers({
      all: true,
      filters: {
        label: [
          `${LABELS.installation}=${installation}`,
          `${LABELS.userId}=${userId}`,
          `${LABELS.serverId}=${serverId}`,
        ],
      },
    });
    return list[0];
  };
  const urlOf = async (serverId: string, userId = "alice"): Promise<URL> => {
    const ready = await waitFor(
      `${userId}/${serverId} Ready`,
      async () => {
        const h = await health(serverId, userId);
        return h?.state === "Ready" && h;
      },
      60_000,
    );
    return new URL(`http://127.0.0.1:${ready.host_port}/mcp`);
  };
  const connect = async (
    serverId: string,
    token: string,
    name = "test-client",
    userId = "alice",
  ): Promise<Client> => {
    const transport = new StreamableHTTPClientTransport(await urlOf(serverId, userId), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name, version: "1.0.0" });
    await client.connect(transport);
    clients.push(client);
    return client;
  };
  const text = (result: unknown): string =>
    (result as { content: { type: string; text: string }[] }).content[0]?.text ?? "";

  beforeAll(async () => {
    await promisify(execFile)("bash", [path.join(REPO, "scripts/build-mcp-test-images.sh")], { cwd: REPO });
    data = await TestDataDir.create();
    await data.baseCatalog("gateway", SERVERS);
    await data.enable("alice", ["tools-stdio", "tools-http"]);
    await data.enable("bob", ["tools-stdio"]);
    aliceToken = (await createToken(data.stateDir, "alice")).token;
    bobToken = (await createToken(data.stateDir, "bob")).token;
    env = testEnv(data.root, installation, {
      MCP_PORTAL_PUBLISH_HOST: "127.0.0.2",
      MCP_PORTAL_ADMIN_TOKEN: ADMIN,
    });
    controller = await startDaemon(env);
    gatewayLogs = [];
    const gatewayEnv = { ...env, MCP_PORTAL_PUBLISH_HOST: "127.0.0.1" };
    gateway = await startTestGateway(gatewayEnv, { logs: gatewayLogs });
  });

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await gateway?.stop();
    await controller?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("serves the stdio and the HTTP server over MCP with the user's token", async () => {
    for (const serverId of ["tools-stdio", "tools-http"]) {
      const client = await connect(serverId, aliceToken);
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name).sort()).toEqual(["add", "echo", "slow"]);
      expect(text(await client.callTool({ name: "echo", arguments: { text: `hello ${serverId}` } }))).toBe(
        `hello ${serverId}`,
      );
      expect(text(await client.callTool({ name: "add", arguments: { a: 2, b: 40 } }))).toBe("42");
      const progress: number[] = [];
      const slow = await client.callTool({ name: "slow", arguments: { steps: 3, delay_ms: 20 } }, undefined, {
        onprogress: (p) => progress.push(p.progress),
      });
      expect(text(slow)).toBe("slow done after 3 steps");
      expect(progress).toEqual([1, 2, 3]);
    }
    const file = await healthFile();
    expect(file?.servers.map((s) => `${s.user_id}/${s.server_id}:${s.state}`).sort()).toEqual([
      "alice/tools-http:Ready",
      "alice/tools-stdio:Ready",
      "bob/tools-stdio:Ready",
    ]);
    const stdio = await containerOf("tools-stdio");
    expect(
      file?.servers.find((s) => s.server_id === "tools-stdio" && s.user_id === "alice")?.container_id,
    ).toBe(stdio?.Id);
    // The stdio server's stderr reaches the gateway's log (as the server's own lines, not as protocol).
    await waitFor("stderr in the gateway's log", () =>
      gatewayLogs.join("").includes("tool slow started (slow)"),
    );
  });

  it("refuses other users' tokens (403) and missing or wrong tokens (401) before the server", async () => {
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
    });
    const post = (url: URL, headers: Record<string, string>) =>
      fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...headers,
        },
        body,
      });
    for (const serverId of ["tools-stdio", "tools-http"]) {
      const url = await urlOf(serverId);
      const none = await post(url, {});
      expect(none.status).toBe(401);
      expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
      const wrong = await post(url, { authorization: "Bearer mcpp_0123456789abcdef_nottherightsecret" });
      expect(wrong.status).toBe(401);
      expect((await post(url, { authorization: `Bearer ${bobToken}` })).status).toBe(403);
      const evil = await post(url, { authorization: `Bearer ${aliceToken}`, origin: "http://evil.example" });
      expect(evil.status).toBe(403);
      const admin = await post(url, { authorization: `Bearer ${ADMIN}` });
      expect(admin.status).toBe(200);
      expect(admin.headers.get("mcp-session-id")).toBeTruthy();
      await admin.body?.cancel();
    }
    // Bob's token works on bob's own server.
    const bob = await connect("tools-stdio", bobToken, "bob", "bob");
    expect(text(await bob.callTool({ name: "echo", arguments: { text: "bob" } }))).toBe("bob");
  });

  it("multiplexes two clients on one stdio server: same request ids, each gets its own answers", async () => {
    const a = await connect("tools-stdio", aliceToken, "client-a");
    const b = await connect("tools-stdio", ADMIN, "client-b");
    const progressA: string[] = [];
    const progressB: string[] = [];
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 20; i += 1) {
      calls.push(
        a
          .callTool({ name: "echo", arguments: { text: `a-${i}` } })
          .then((r) => expect(text(r)).toBe(`a-${i}`)),
        b
          .callTool({ name: "echo", arguments: { text: `b-${i}` } })
          .then((r) => expect(text(r)).toBe(`b-${i}`)),
      );
    }
    calls.push(
      a
        .callTool({ name: "slow", arguments: { steps: 4, delay_ms: 30, label: "A" } }, undefined, {
          onprogress: (p) => progressA.push(p.message ?? ""),
        })
        .then((r) => expect(text(r)).toBe("A done after 4 steps")),
      b
        .callTool({ name: "slow", arguments: { steps: 4, delay_ms: 30, label: "B" } }, undefined, {
          onprogress: (p) => progressB.push(p.message ?? ""),
        })
        .then((r) => expect(text(r)).toBe("B done after 4 steps")),
    );
    await Promise.all(calls);
    expect(progressA).toEqual(["A 1/4", "A 2/4", "A 3/4", "A 4/4"]);
    expect(progressB).toEqual(["B 1/4", "B 2/4", "B 3/4", "B 4/4"]);
  });

  it("keeps client sessions working while the controller restarts", async () => {
    const client = await connect("tools-stdio", aliceToken, "steady");
    const http = await connect("tools-http", aliceToken, "steady-http");
    let calls = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        expect(text(await client.callTool({ name: "echo", arguments: { text: `n${calls}` } }))).toBe(
          `n${calls}`,
        );
        expect(text(await http.callTool({ name: "add", arguments: { a: calls, b: 1 } }))).toBe(
          String(calls + 1),
        );
        calls += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await controller!.stop();
    controller = undefined;
    await new Promise((r) => setTimeout(r, 500));
    controller = await startDaemon(env);
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await loop;
    expect(calls).toBeGreaterThan(5);
  });

  it("reports a killed server Unhealthy, then Ready again once it is restarted; sessions survive", async () => {
    const client = await connect("tools-stdio", aliceToken, "survivor");
    expect(text(await client.callTool({ name: "echo", arguments: { text: "before" } }))).toBe("before");
    const before = (await containerOf("tools-stdio"))!;
    // Stop the controller so nothing restarts the server while we look at the Unhealthy state.
    await controller!.stop();
    controller = undefined;
    await docker.getContainer(before.Id).kill();
    const unhealthy = await waitFor("Unhealthy in health.json", async () => {
      const h = await health("tools-stdio");
      return h?.state === "Unhealthy" && h;
    });
    expect(unhealthy.container_id).toBe(before.Id);
    expect(unhealthy.message).toMatch(/exited/);
    controller = await startDaemon(env);
    const ready = await waitFor(
      "Ready again",
      async () => {
        const h = await health("tools-stdio");
        return h?.state === "Ready" && h;
      },
      60_000,
    );
    expect(ready.container_id).toBe((await containerOf("tools-stdio"))?.Id);
    // The same client session: the gateway re-attached and re-initialized the server behind it.
    expect(text(await client.callTool({ name: "echo", arguments: { text: "after" } }))).toBe("after");
    const metrics = await gateway.metrics.registry.metrics();
    expect(metrics).toMatch(/mcp_portal_gateway_attach_reconnects_total [1-9]/);
  });

  it("stops serving a server the user disabled: port released, health entry gone", async () => {
    const url = await urlOf("tools-stdio", "bob");
    await data.enable("bob", []);
    await waitFor(
      "bob's server gone from health.json",
      async () => (await health("tools-stdio", "bob")) === undefined,
    );
    await expect(fetch(url, { method: "POST" })).rejects.toThrow();
  });

  it("runs as its own process: mcp-portal gateway serves, reports health and metrics, and stops on SIGTERM", async () => {
    await gateway.stop();
    const listen = await freePort();
    const child = spawn(process.execPath, ["--import", "tsx", path.join(REPO, "src/cli.ts"), "gateway"], {
      cwd: REPO,
      env: {
        ...process.env,
        ...env,
        MCP_PORTAL_PUBLISH_HOST: "127.0.0.1",
        MCP_PORTAL_GATEWAY_LISTEN: `127.0.0.1:${listen}`,
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      await waitFor(
        "the gateway process ready",
        async () => (await fetch(`http://127.0.0.1:${listen}/readyz`)).ok,
      );
      await waitFor("its own log line", () => output.includes('"msg":"gateway running"'));
      const client = await connect("tools-http", aliceToken, "separate-process");
      expect(text(await client.callTool({ name: "echo", arguments: { text: "from afar" } }))).toBe(
        "from afar",
      );
      const metrics = await (await fetch(`http://127.0.0.1:${listen}/metrics`)).text();
      expect(metrics).toMatch(/mcp_portal_gateway_servers\{state="Ready"\} 2/);
      expect(metrics).toMatch(
        /mcp_portal_gateway_requests_total\{transport="streamable-http",result="success"\} [1-9]/,
      );
      const promtool = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const check = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        check.stdout.on("data", (d: Buffer) => (out += d.toString()));
        check.stderr.on("data", (d: Buffer) => (out += d.toString()));
        check.on("error", () => resolve({ code: 0, out: "promtool not installed" }));
        check.on("exit", (code) => resolve({ code, out }));
        check.stdin.end(metrics);
      });
      expect(promtool.code, promtool.out).toBe(0);
      await client.close();
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    expect(output).toContain('"msg":"gateway stopped"');
    // Its ports are released.
    const port = (await health("tools-http"))!.host_port;
    await expect(fetch(`http://127.0.0.1:${port}/mcp`)).rejects.toThrow();
  });
});
