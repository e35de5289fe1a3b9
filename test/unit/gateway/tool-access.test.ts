// The tool policy, rate limits and tool-call audit at the gateway, end to end in one process: real MCP servers of the
// official SDK (streamable HTTP with SSE or JSON answers, the older SSE transport, and stdio over an in-memory
// attach) behind an Endpoint, the policy read from gateway-access.json files, SDK clients in front.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Writable } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AuthResult } from "../../../src/auth/authenticate.js";
import { gatewayAccessPath } from "../../../src/contracts/gateway-access.js";
import type { AttachedStdio } from "../../../src/docker/attach.js";
import { AccessControl } from "../../../src/gateway/access-control.js";
import { AccessStore } from "../../../src/gateway/access-store.js";
import { Endpoint, type ServerTarget, type Upstream } from "../../../src/gateway/endpoint.js";
import { GATEWAY_CLIENT_INFO } from "../../../src/gateway/gateway.js";
import { DEFAULT_HEALTH_POLICY } from "../../../src/gateway/health.js";
import { HttpServerUpstream } from "../../../src/gateway/http-server.js";
import { type GatewayMetrics, createGatewayMetrics } from "../../../src/gateway/metrics.js";
import { parseAllowedOrigins } from "../../../src/gateway/origin.js";
import { RateLimiter } from "../../../src/gateway/rate-limit.js";
import { StdioServerUpstream } from "../../../src/gateway/stdio-server.js";
import type { AuditEventInput, AuditWriter } from "../../../src/observability/audit.js";
import { createLogger } from "../../../src/observability/logger.js";
import { systemClock } from "../../../src/util/clock.js";
import { registerTestTools } from "../../fixtures/mcp-servers/tools.js";
import { freePort } from "../../helpers/net.js";

const logger = createLogger({
  level: "silent",
  destination: new Writable({ write: (_c, _e, done) => done() }),
});
const CANARY = "canary-d41d8cd98f00b204e9800998ecf8427e";

class MemoryAudit implements AuditWriter {
  readonly events: AuditEventInput[] = [];
  write(event: AuditEventInput): Promise<boolean> {
    this.events.push(event);
    return Promise.resolve(true);
  }
}

/** Every tools/call that reached a server, by tool name. */
const reached: string[] = [];

function mcpServer(): McpServer {
  const server = new McpServer({ name: "tools", version: "1.0.0" });
  registerTestTools(server);
  return server;
}

function countCalls(body: unknown): void {
  for (const message of [body].flat() as { method?: string; params?: { name?: string } }[]) {
    if (message?.method === "tools/call") reached.push(message.params?.name ?? "?");
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

/** A streamable-HTTP MCP server on 127.0.0.1 (answers as SSE, or as JSON with `json`). */
async function streamableServer(json: boolean): Promise<http.Server> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const server = http.createServer((req, res) => {
    void (async () => {
      const body = req.method === "POST" ? await readJson(req) : undefined;
      countCalls(body);
      const id = req.headers["mcp-session-id"];
      const existing = typeof id === "string" ? transports.get(id) : undefined;
      if (existing) return existing.handleRequest(req, res, body);
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => `s-${Math.random().toString(16).slice(2)}`,
        enableJsonResponse: json,
        onsessioninitialized: (sid) => void transports.set(sid, transport),
      });
      await mcpServer().connect(transport);
      await transport.handleRequest(req, res, body);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** An MCP server of the older SSE transport (GET /sse, POST /messages?sessionId=) on 127.0.0.1. */
async function sseServer(): Promise<http.Server> {
  const transports = new Map<string, SSEServerTransport>();
  const server = http.createServer((req, res) => {
    void (async () => {
      if (req.method === "GET") {
        const transport = new SSEServerTransport("/messages", res);
        transports.set(transport.sessionId, transport);
        await mcpServer().connect(transport);
        return;
      }
      const body = await readJson(req);
      countCalls(body);
      const sid = new URL(req.url ?? "/", "http://x").searchParams.get("sessionId") ?? "";
      await transports.get(sid)?.handlePostMessage(req, res, body);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** A stdio MCP server in this process, reached through an in-memory attach (as the gateway attaches to containers). */
async function stdioAttach(): Promise<AttachedStdio> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let buffered = "";
  stdin.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      countCalls(JSON.parse(buffered.slice(0, newline)));
      buffered = buffered.slice(newline + 1);
    }
  });
  const serverIn = new PassThrough();
  stdin.pipe(serverIn);
  await mcpServer().connect(new StdioServerTransport(serverIn, stdout));
  // `closed` resolves once the gateway closes the attach (a real attach does so too), so closing the endpoint ends.
  let ended: (reason: string) => void = () => undefined;
  const closed = new Promise<string>((resolve) => (ended = resolve));
  return {
    stdin,
    stdout,
    stderr: new PassThrough(),
    closed,
    close: () => {
      stdin.unpipe(serverIn);
      ended("closed");
    },
  };
}

type Kind = "streamable-http (SSE answers)" | "streamable-http (JSON answers)" | "sse" | "stdio";

interface Setup {
  url: string;
  audit: MemoryAudit;
  metrics: GatewayMetrics;
  endpoint: Endpoint;
  store: AccessStore;
  writeAccess(servers: Record<string, unknown>, extra?: Record<string, unknown>): Promise<void>;
  connect(): Promise<Client & { listChanged: number }>;
}

const ALICE: AuthResult = {
  ok: true,
  caller: { kind: "user", userId: "alice", tokenId: "0123456789abcdef" },
};
const authenticate = (header: string | undefined): Promise<AuthResult> =>
  Promise.resolve(
    header === "Bearer alice"
      ? ALICE
      : { ok: false, statusCode: 401, code: "UNAUTHENTICATED", message: "invalid token", invalidToken: true },
  );

describe("tool policy, rate limits and tool-call audit at the gateway", () => {
  let stateDir: string;
  const cleanups: (() => unknown)[] = [];
  beforeEach(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), "tool-access-"));
    reached.length = 0;
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  async function setup(kind: Kind): Promise<Setup> {
    const hostPort = await freePort();
    const transport = kind === "stdio" ? "stdio" : kind === "sse" ? "sse" : "streamable-http";
    const target: ServerTarget = {
      key: "alice/tools",
      userId: "alice",
      serverId: "tools",
      hostPort,
      transport,
      containerId: "c1",
      state: "running",
      policy: { ...DEFAULT_HEALTH_POLICY, intervalMs: 600_000 },
      containerPort: undefined,
    };
    const metrics = createGatewayMetrics(new Registry(), { defaultMetrics: false });
    let upstream: Upstream;
    if (kind === "stdio") {
      upstream = new StdioServerUpstream({
        userId: "alice",
        attach: () => stdioAttach(),
        clock: systemClock,
        logger,
        metrics,
        clientInfo: GATEWAY_CLIENT_INFO,
      });
    } else {
      const server = kind === "sse" ? await sseServer() : await streamableServer(kind.includes("JSON"));
      cleanups.push(
        () =>
          new Promise((resolve) => {
            server.closeAllConnections();
            server.close(resolve);
          }),
      );
      const port = (server.address() as AddressInfo).port;
      upstream = new HttpServerUpstream(target, {
        resolve: () => Promise.resolve({ host: "127.0.0.1", port }),
        logger,
        metrics,
        clientInfo: GATEWAY_CLIENT_INFO,
      });
    }
    const audit = new MemoryAudit();
    const store = new AccessStore(stateDir);
    const control = new AccessControl({ store, limiter: new RateLimiter(() => Date.now()), metrics, audit });
    const endpoint = new Endpoint(target, {
      upstream,
      listenHost: "127.0.0.1",
      authenticate,
      admit: (t, caller, req) => control.admit(t, caller, req),
      origins: { allowed: parseAllowedOrigins(""), publishHost: "127.0.0.1" },
      clock: systemClock,
      logger,
      metrics,
      onHealth: () => undefined,
    });
    endpoint.open();
    cleanups.push(() => endpoint.close());
    for (let i = 0; i < 100 && !endpoint.isListening; i++) await new Promise((r) => setTimeout(r, 10));
    const url = `http://127.0.0.1:${hostPort}${kind === "sse" ? "/sse" : "/mcp"}`;
    return {
      url,
      audit,
      metrics,
      endpoint,
      store,
      async writeAccess(servers, extra = {}) {
        const file = gatewayAccessPath(stateDir, "alice");
        await mkdir(path.dirname(file), { recursive: true });
        await rm(file, { force: true });
        await writeFile(
          file,
          JSON.stringify({ api_version: "mcp-portal/v1", user_id: "alice", servers, ...extra }),
        );
        await store.refresh(["alice"]);
      },
      async connect() {
        const headers = { Authorization: "Bearer alice" };
        const clientTransport =
          kind === "sse"
            ? new SSEClientTransport(new URL(url), {
                requestInit: { headers },
                eventSourceInit: {
                  fetch: (input, init) =>
                    fetch(input, { ...init, headers: { ...init?.headers, ...headers } }),
                },
              })
            : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
        const client = Object.assign(new Client({ name: "test", version: "1" }), { listChanged: 0 });
        client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
          client.listChanged += 1;
        });
        await client.connect(clientTransport);
        cleanups.push(() => client.close());
        return client;
      },
    };
  }

  const names = async (client: Client) => (await client.listTools()).tools.map((t) => t.name).sort();

  for (const kind of [
    "streamable-http (SSE answers)",
    "streamable-http (JSON answers)",
    "sse",
    "stdio",
  ] as const) {
    describe(kind, () => {
      it("lists only allowed tools and refuses a hidden one before it reaches the server; every call is audited without values", async () => {
        const s = await setup(kind);
        await s.writeAccess({ tools: { tools: { deny: ["slow"] } } });
        const client = await s.connect();
        expect(await names(client)).toEqual(["add", "echo"]);
        await expect(client.callTool({ name: "slow", arguments: { label: CANARY } })).rejects.toMatchObject({
          code: -32602,
          message: expect.stringContaining(
            "Unknown tool: slow (not available to this user: tool policy)",
          ) as unknown,
        });
        const echoed = (await client.callTool({ name: "echo", arguments: { text: CANARY } })) as {
          content: { text: string }[];
        };
        expect(echoed.content[0]?.text).toBe(CANARY);
        expect(reached).toEqual(["echo"]);
        await waitUntil(() => s.audit.events.length === 2);
        expect(s.audit.events.map((e) => [e.event_type, e.resource, e.result, e.details?.outcome])).toEqual([
          ["TOOL_CALL", "alice/tools/slow", "blocked", "refused"],
          ["TOOL_CALL", "alice/tools/echo", "success", "success"],
        ]);
        expect(s.audit.events[1]?.details).toMatchObject({
          server_id: "tools",
          tool: "echo",
          caller: "token:0123456789abcdef",
          token_id: "0123456789abcdef",
          transport: kind === "stdio" ? "stdio" : kind === "sse" ? "sse" : "streamable-http",
          bytes_in: expect.any(Number) as unknown,
          bytes_out: expect.any(Number) as unknown,
          duration_ms: expect.any(Number) as unknown,
        });
        expect((s.audit.events[1]?.details?.bytes_out as number) > CANARY.length).toBe(true);
        expect(JSON.stringify(s.audit.events)).not.toContain(CANARY);
        const metrics = await s.metrics.registry.getSingleMetricAsString(
          "mcp_portal_gateway_tool_calls_total",
        );
        expect(metrics).toContain('mcp_portal_gateway_tool_calls_total{result="refused"} 1');
        expect(metrics).toContain('mcp_portal_gateway_tool_calls_total{result="success"} 1');
      });

      it("takes a policy change without a restart: clients are told the list changed and see the new one", async () => {
        const s = await setup(kind);
        await s.writeAccess({ tools: { tools: { deny: [] } } });
        const client = await s.connect();
        expect(await names(client)).toEqual(["add", "echo", "slow"]);
        await s.writeAccess({ tools: { tools: { allow: ["e*"], deny: [] } } });
        s.endpoint.toolsChanged();
        await waitUntil(() => client.listChanged > 0);
        expect(await names(client)).toEqual(["echo"]);
        await expect(client.callTool({ name: "add", arguments: { a: 1, b: 2 } })).rejects.toMatchObject({
          code: -32602,
        });
        expect(reached).toEqual([]);
      });
    });
  }

  it("refuses every tool of a server the access file does not list, and of a user whose file cannot be read", async () => {
    const s = await setup("streamable-http (SSE answers)");
    await s.writeAccess({ other: { tools: { deny: [] } } });
    const client = await s.connect();
    expect(await names(client)).toEqual([]);
    await writeFile(gatewayAccessPath(stateDir, "alice"), "{ broken");
    const fresh = new AccessStore(stateDir);
    expect((await fresh.get("alice")).kind).toBe("unusable");
    await expect(client.callTool({ name: "echo", arguments: { text: "x" } })).rejects.toMatchObject({
      code: -32602,
    });
    expect(reached).toEqual([]);
  });

  it("refuses a batch with a hidden tools/call whole: nothing of it reaches the server", async () => {
    const s = await setup("streamable-http (JSON answers)");
    await s.writeAccess({ tools: { tools: { deny: ["slow"] } } });
    const client = await s.connect();
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId ?? "";
    const res = await fetch(s.url, {
      method: "POST",
      headers: {
        authorization: "Bearer alice",
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": sessionId,
        "mcp-protocol-version": "2025-03-26",
      },
      body: JSON.stringify([
        { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { text: "a" } } },
        { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "slow", arguments: {} } },
      ]),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([
      {
        jsonrpc: "2.0",
        id: 1,
        error: { code: -32600, message: "batch refused: it calls a tool the tool policy hides" },
      },
      {
        jsonrpc: "2.0",
        id: 2,
        error: { code: -32602, message: "Unknown tool: slow (not available to this user: tool policy)" },
      },
    ]);
    expect(reached).toEqual([]);
    // A body that is not JSON-RPC does not reach the server either.
    const junk = await fetch(s.url, {
      method: "POST",
      headers: {
        authorization: "Bearer alice",
        "content-type": "application/json",
        "mcp-session-id": sessionId,
      },
      body: '{"method":"tools/call","params":{"name":"slow"}}',
    });
    expect(junk.status).toBe(400);
    expect(reached).toEqual([]);
  });

  it("answers 429 with Retry-After beyond a rate limit, before the server; counts it", async () => {
    const s = await setup("streamable-http (JSON answers)");
    await s.writeAccess(
      { tools: { tools: { deny: [] }, rate_limit: { requests: 5, window_seconds: 3600 } } },
      { rate_limit: { requests: 100, window_seconds: 60 } },
    );
    const client = await s.connect();
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId ?? "";
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 10; i++) {
      const res = await fetch(s.url, {
        method: "POST",
        headers: {
          authorization: "Bearer alice",
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-session-id": sessionId,
          "mcp-protocol-version": "2025-03-26",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 100 + i,
          method: "tools/call",
          params: { name: "echo", arguments: { text: `n${i}` } },
        }),
      });
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get("retry-after");
      await res.body?.cancel();
    }
    // The client's initialize and initialized notification (and its GET stream, when it opened one) took tokens.
    const admitted = statuses.filter((st) => st === 200).length;
    expect(statuses.slice(admitted).every((st) => st === 429)).toBe(true);
    expect(admitted).toBeLessThanOrEqual(3);
    expect(reached).toHaveLength(admitted);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(600);
    const counted = await s.metrics.registry.getSingleMetricAsString("mcp_portal_gateway_rate_limited_total");
    expect(counted).toContain(`mcp_portal_gateway_rate_limited_total{scope="server"} ${10 - admitted}`);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}
