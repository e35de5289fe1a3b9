// MCP protocol eras through the real gateway on a real engine: clients on 2026-07-28 (the SDK v2 client pinned,
// and in auto mode) and on 2025 revisions (the SDK v1 client) against a legacy stdio server, a legacy
// streamable-HTTP server and a modern (SDK v2) server, built by scripts/build-mcp-test-images.sh (eras). The controller
// runs in-process as in test/integration/gateway.test.ts (published ports on 127.0.0.2, the gateway on 127.0.0.1).
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from "@modelcontextprotocol/client";
import { Client as LegacyClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as LegacyTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createToken } from "../../src/auth/token-store.js";
import type { HealthFileContent } from "../../src/gateway/health-file.js";
import type { GatewayProcess } from "../../src/gateway/process.js";
import { type StartedDaemon, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";
import { startTestGateway } from "../helpers/gateway.js";

const REPO = path.resolve(import.meta.dirname, "../..");
const HEALTH = { interval_seconds: 1, timeout_seconds: 3, retries: 2 };
const RESOURCES = { memory_mb: 128, cpu_shares: 64, pids_limit: 64 };
const SERVERS = [
  {
    id: "eras-stdio",
    name: "eras-stdio",
    image: "mcp-portal-test/mcp-stdio-eras",
    tag: "1",
    transport: "stdio",
  },
  {
    id: "eras-http",
    name: "eras-http",
    image: "mcp-portal-test/mcp-http-eras",
    tag: "1",
    transport: "streamable-http",
    ports: [{ container_port: 8080 }],
  },
  {
    id: "eras-modern",
    name: "eras-modern",
    image: "mcp-portal-test/mcp-modern",
    tag: "1",
    transport: "streamable-http",
    ports: [{ container_port: 8080 }],
  },
].map((s) => ({ ...s, resources: RESOURCES, health_check: HEALTH }));
const LEGACY_SERVERS = ["eras-stdio", "eras-http"];
const ALL_SERVERS = [...LEGACY_SERVERS, "eras-modern"];
const PINNED = { pin: "2026-07-28" } as const;

describeDocker("gateway: MCP 2026-07-28 and 2025 clients", () => {
  const docker = new Docker();
  const installation = newTestInstallation();
  let data: TestDataDir;
  let controller: StartedDaemon | undefined;
  let gateway: GatewayProcess;
  const gatewayLogs: string[] = [];
  let token: string;
  const closers: (() => Promise<unknown>)[] = [];

  const urlOf = async (serverId: string): Promise<URL> => {
    const ready = await waitFor(
      `alice/${serverId} Ready`,
      async () => {
        try {
          const file = JSON.parse(
            await readFile(path.join(data.stateDir, "gateway", "health.json"), "utf8"),
          ) as HealthFileContent;
          const h = file.servers.find((s) => s.user_id === "alice" && s.server_id === serverId);
          return h?.state === "Ready" && h;
        } catch {
          return false;
        }
      },
      90_000,
    );
    return new URL(`http://127.0.0.1:${ready.host_port}/mcp`);
  };
  const auth = () => ({ requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const modern = async (serverId: string, mode: "auto" | typeof PINNED, elicit?: string) => {
    const client = new ModernClient(
      { name: "modern-test", version: "2" },
      { capabilities: elicit ? { elicitation: {} } : {}, versionNegotiation: { mode } },
    );
    if (elicit)
      client.setRequestHandler("elicitation/create", () => ({ action: "accept", content: { word: elicit } }));
    await client.connect(new ModernTransport(await urlOf(serverId), auth()));
    closers.push(() => client.close());
    return client;
  };
  const legacy = async (serverId: string) => {
    const client = new LegacyClient({ name: "legacy-test", version: "1" });
    await client.connect(new LegacyTransport(await urlOf(serverId), auth()));
    closers.push(() => client.close());
    return client;
  };
  const text = (result: unknown): string =>
    (result as { content: { type: string; text: string }[] }).content[0]?.text ?? "";

  beforeAll(async () => {
    await promisify(execFile)("bash", [path.join(REPO, "scripts/build-mcp-test-images.sh"), "eras"], {
      cwd: REPO,
    });
    data = await TestDataDir.create();
    await data.baseCatalog("eras", SERVERS);
    await data.enable("alice", ALL_SERVERS);
    token = (await createToken(data.stateDir, "alice")).token;
    const env = testEnv(data.root, installation, { MCP_PORTAL_PUBLISH_HOST: "127.0.0.2" });
    controller = await startDaemon(env);
    const gatewayEnv = { ...env, MCP_PORTAL_PUBLISH_HOST: "127.0.0.1" };
    gateway = await startTestGateway(gatewayEnv, { logs: gatewayLogs });
  }, 240_000);

  afterAll(async () => {
    for (const close of closers) await close().catch(() => undefined);
    await gateway?.stop();
    await controller?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("pinned, auto and v1 clients list and call tools of every server; the modern server is probed by server/discover", async () => {
    for (const serverId of ALL_SERVERS) {
      const clients = [await modern(serverId, PINNED), await modern(serverId, "auto")];
      for (const client of clients) expect(client.getNegotiatedProtocolVersion()).toBe("2026-07-28");
      const v1 = await legacy(serverId);
      for (const client of [...clients, v1]) {
        const tools = await client.listTools();
        expect(tools.tools.map((t) => t.name)).toEqual(expect.arrayContaining(["add", "echo", "grow"]));
        expect(text(await client.callTool({ name: "add", arguments: { a: 2, b: 40 } }))).toBe("42");
      }
    }
    const eras = gatewayLogs
      .filter((l) => l.includes("server protocol era"))
      .map((l) => JSON.parse(l) as { server_id: string; era: string });
    expect(eras).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ server_id: "eras-http", era: "legacy" }),
        expect.objectContaining({ server_id: "eras-modern", era: "modern" }),
      ]),
    );
  });

  it("a tools list_changed reaches a subscriptions/listen stream, from every server", async () => {
    for (const serverId of ALL_SERVERS) {
      const client = await modern(serverId, PINNED);
      const changed = new Promise<void>((resolve) =>
        client.setNotificationHandler("notifications/tools/list_changed", () => resolve()),
      );
      const subscription = await client.listen({ toolsListChanged: true });
      expect(subscription.honoredFilter).toEqual({ toolsListChanged: true });
      await client.callTool({ name: "grow", arguments: {} });
      await changed;
      await subscription.close();
    }
  });

  it("an elicitation from a legacy server completes as a multi-round-trip exchange", async () => {
    for (const serverId of LEGACY_SERVERS) {
      const client = await modern(serverId, PINNED, `word-of-${serverId}`);
      const result = await client.callTool({ name: "ask", arguments: { question: "a word?" } });
      expect(text(result)).toBe(`answer: word-of-${serverId}`);
    }
  });

  it("clients of both eras share one stdio server: a change made by the v1 client reaches the modern listener", async () => {
    const v1 = await legacy("eras-stdio");
    const pinned = await modern("eras-stdio", PINNED);
    const changed = new Promise<void>((resolve) =>
      pinned.setNotificationHandler("notifications/tools/list_changed", () => resolve()),
    );
    const subscription = await pinned.listen({ toolsListChanged: true });
    const grown = text(await v1.callTool({ name: "grow", arguments: {} }));
    await changed;
    // The tool the v1 client's call added exists for the modern client: one server process, one session.
    expect((await pinned.listTools()).tools.map((t) => t.name)).toContain(grown);
    const [a, b] = await Promise.all([
      v1.callTool({ name: "echo", arguments: { text: "v1" } }),
      pinned.callTool({ name: "echo", arguments: { text: "2026" } }),
    ]);
    expect([text(a), text(b)]).toEqual(["v1", "2026"]);
    await subscription.close();
  });

  it("a revision nobody supports gets -32022 with the supported list", async () => {
    for (const serverId of LEGACY_SERVERS) {
      const res = await fetch(await urlOf(serverId), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${token}`,
          "mcp-protocol-version": "2099-01-01",
          "mcp-method": "tools/list",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "tools/list",
          params: {
            _meta: {
              "io.modelcontextprotocol/protocolVersion": "2099-01-01",
              "io.modelcontextprotocol/clientCapabilities": {},
            },
          },
        }),
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as {
        error: { code: number; data: { supported: string[]; requested: string } };
      };
      expect(body.error.code).toBe(-32022);
      expect(body.error.data).toEqual({
        supported: expect.arrayContaining(["2026-07-28", "2025-11-25", "2025-06-18"]) as unknown,
        requested: "2099-01-01",
      });
    }
  });
});
