// MCP 2026-07-28 clients in front of a legacy server's one session, in-process: the official SDK v2 client (pinned
// and auto) and the v1 client over real loopback HTTP, the legacy server a real SDK v1 McpServer whose messages
// travel through the multiplexer as they would over a container's stdio.
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from "@modelcontextprotocol/client";
import { Client as LegacyClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as LegacyTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EraRouter } from "../../../src/gateway/modern/era-router.js";
import { ModernFront } from "../../../src/gateway/modern/front.js";
import { MuxBackend } from "../../../src/gateway/modern/mux-backend.js";
import type { ToolAccess } from "../../../src/gateway/handler.js";
import { StdioHttpHandler } from "../../../src/gateway/stdio-http.js";
import { StdioMultiplexer } from "../../../src/gateway/stdio-mux.js";
import { systemClock } from "../../../src/util/clock.js";
import { connectPipedServer } from "../../fixtures/mcp-servers/mux-pipe.js";

const PINNED = { mode: { pin: "2026-07-28" } } as const;

describe("MCP 2026-07-28 in front of a legacy server", () => {
  let httpServer: http.Server;
  let url: URL;
  let mux: StdioMultiplexer;
  let backend: MuxBackend;
  const bodies: string[] = [];
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    mux = new StdioMultiplexer({
      clock: systemClock,
      serverUserId: "alice",
      clientInfo: { name: "gw", version: "0" },
      readyWaitMs: 2000,
    });
    await connectPipedServer(mux);
    backend = new MuxBackend(mux, { clock: systemClock, readyWaitMs: 2000 });
    const router = new EraRouter(
      new StdioHttpHandler(mux, { keepAliveMs: 0 }),
      () => new ModernFront(backend),
    );
    httpServer = http.createServer((req, res) => void router.handle(req, res, { owner: "user:alice" }));
    await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    url = new URL(`http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/mcp`);
  });

  afterAll(async () => {
    for (const close of closers) await close().catch(() => undefined);
    mux.closeAll("test over");
    httpServer.closeAllConnections();
    await new Promise((resolve) => httpServer.close(resolve));
  });

  /** Records every answer body the modern client reads. */
  const recordingFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (!(res.headers.get("content-type") ?? "").includes("application/json")) return res;
    const text = await res.text();
    bodies.push(text);
    return new Response(text, { status: res.status, headers: res.headers });
  };

  const modern = async (mode: "auto" | typeof PINNED.mode, elicit?: string) => {
    const client = new ModernClient(
      { name: "modern-test", version: "2" },
      { capabilities: elicit ? { elicitation: {} } : {}, versionNegotiation: { mode } },
    );
    if (elicit) {
      client.setRequestHandler("elicitation/create", () => ({ action: "accept", content: { word: elicit } }));
    }
    await client.connect(new ModernTransport(url, { fetch: recordingFetch }));
    closers.push(() => client.close());
    return client;
  };

  it("a pinned 2026-07-28 client discovers, lists and calls tools of the legacy server", async () => {
    const client = await modern(PINNED.mode);
    expect(client.getNegotiatedProtocolVersion()).toBe("2026-07-28");
    expect(client.getServerVersion()).toMatchObject({ name: "legacy-under-test", version: "1.2.3" });
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toEqual(expect.arrayContaining(["echo", "add", "ask", "grow"]));
    const result = await client.callTool({ name: "add", arguments: { a: 2, b: 40 } });
    expect(result.content).toEqual([{ type: "text", text: "42" }]);
    // No session was left behind: each request's session ended with it.
    expect(mux.sessions.size).toBe(0);
  });

  it("holds 2026-07-28 requests to the caller's tool policy: hidden tools are not listed, not called, and audited", async () => {
    const records: { tool: string | undefined; outcome: string }[] = [];
    const tools: ToolAccess = {
      filter: { visible: (name) => name !== "add" },
      restricted: true,
      refusal: (name) => `tool ${name ?? "(none)"} is not available to you`,
      begin: (tool) => ({ finish: (outcome) => void records.push({ tool, outcome }) }),
    };
    const router = new EraRouter(
      new StdioHttpHandler(mux, { keepAliveMs: 0 }),
      () => new ModernFront(backend),
    );
    const held = http.createServer(
      (req, res) => void router.handle(req, res, { owner: "user:alice", tools }),
    );
    await new Promise<void>((resolve) => held.listen(0, "127.0.0.1", resolve));
    closers.push(async () => {
      held.closeAllConnections();
      await new Promise((resolve) => held.close(resolve));
    });
    const heldUrl = new URL(`http://127.0.0.1:${(held.address() as AddressInfo).port}/mcp`);
    const client = new ModernClient(
      { name: "modern-held", version: "2" },
      { capabilities: {}, versionNegotiation: { mode: PINNED.mode } },
    );
    await client.connect(new ModernTransport(heldUrl));
    closers.push(() => client.close());
    expect(client.getNegotiatedProtocolVersion()).toBe("2026-07-28");
    const listed = (await client.listTools()).tools.map((t) => t.name);
    expect(listed).toContain("echo");
    expect(listed).not.toContain("add");
    await expect(client.callTool({ name: "add", arguments: { a: 1, b: 2 } })).rejects.toThrow(
      /not available/,
    );
    const echoed = await client.callTool({ name: "echo", arguments: { text: "held" } });
    expect(echoed.content).toEqual([{ type: "text", text: "held" }]);
    expect(records).toEqual([
      { tool: "add", outcome: "refused" },
      { tool: "echo", outcome: "success" },
    ]);
  });

  it("an auto client picks 2026-07-28 and a v1 client keeps its session, on the same server", async () => {
    const auto = await modern("auto");
    expect(auto.getNegotiatedProtocolVersion()).toBe("2026-07-28");
    const legacy = new LegacyClient({ name: "legacy-test", version: "1" });
    await legacy.connect(new LegacyTransport(url));
    closers.push(() => legacy.close());
    const [a, b] = await Promise.all([
      auto.callTool({ name: "echo", arguments: { text: "modern" } }),
      legacy.callTool({ name: "echo", arguments: { text: "legacy" } }),
    ]);
    expect(a.content).toEqual([{ type: "text", text: "modern" }]);
    expect(b.content).toEqual([{ type: "text", text: "legacy" }]);
    expect(legacy.getServerVersion()?.name).toBe("legacy-under-test");
  });

  it("an elicitation of the legacy server completes as an input_required round trip", async () => {
    const client = await modern(PINNED.mode, "blue");
    bodies.length = 0;
    const result = await client.callTool({ name: "ask", arguments: { question: "favourite colour?" } });
    expect(result.content).toEqual([{ type: "text", text: "answer: blue" }]);
    const answers = bodies.map((b) => JSON.parse(b) as { result?: Record<string, unknown> });
    const asked = answers.find((a) => a.result?.resultType === "input_required")?.result;
    expect(asked).toMatchObject({
      inputRequests: {
        "elicitation/create#1": { method: "elicitation/create", params: { message: "favourite colour?" } },
      },
    });
    expect(typeof asked?.requestState).toBe("string");
    expect(backend.waitingCount).toBe(0);
    expect(mux.sessions.size).toBe(1); // the v1 client's session of the test before
  });

  it("an elicitation for a client that declared no elicitation capability is refused to the server", async () => {
    const client = await modern(PINNED.mode);
    const result = await client.callTool({ name: "ask", arguments: { question: "?" } });
    expect(result.isError).toBe(true);
  });

  it("a tools list_changed of the legacy server reaches a subscriptions/listen stream", async () => {
    const client = await modern(PINNED.mode);
    const changed = new Promise<void>((resolve) =>
      client.setNotificationHandler("notifications/tools/list_changed", () => resolve()),
    );
    const subscription = await client.listen({ toolsListChanged: true, promptsListChanged: true });
    expect(subscription.honoredFilter).toEqual({ toolsListChanged: true });
    await client.callTool({ name: "grow", arguments: {} });
    await changed;
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain("grown-1");
    await subscription.close();
  });

  it("a revision nobody supports gets -32022 with the supported list", async () => {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "mcp-protocol-version": "2099-01-01",
        "mcp-method": "tools/list",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 7,
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
      id: unknown;
      error: { code: number; data: { supported: string[]; requested: string } };
    };
    expect(body.id).toBe(7);
    expect(body.error.code).toBe(-32022);
    expect(body.error.data.requested).toBe("2099-01-01");
    expect(body.error.data.supported).toEqual(
      expect.arrayContaining(["2026-07-28", "2025-11-25", "2025-06-18"]),
    );
  });
});
