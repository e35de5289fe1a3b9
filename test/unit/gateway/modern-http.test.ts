// MCP 2026-07-28 clients of HTTP servers through HttpServerUpstream, in-process over loopback: a legacy SDK v1
// streamable-HTTP server (translated onto a gateway-owned session) and a modern SDK v2 server (passed through),
// each detected by the server/discover probe; v1 clients keep going through the reverse proxy.
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from "@modelcontextprotocol/client";
import { Client as LegacyClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as LegacyTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerTarget } from "../../../src/gateway/endpoint.js";
import { HttpServerUpstream } from "../../../src/gateway/http-server.js";
import { createGatewayMetrics } from "../../../src/gateway/metrics.js";
import { createLogger } from "../../../src/observability/logger.js";
import { legacyHttpListener } from "../../fixtures/mcp-servers/era-http.js";
import { registerEraTools } from "../../fixtures/mcp-servers/era-tools.js";
import { createModernHandler, nodeListener } from "../../fixtures/mcp-servers/modern-handler.js";

const PINNED = { pin: "2026-07-28" } as const;

async function listen(listener: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function stop(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

function target(port: number): ServerTarget {
  return {
    key: "alice/s",
    userId: "alice",
    serverId: "s",
    hostPort: port,
    transport: "streamable-http",
    containerId: "c1",
    state: "running",
    policy: { intervalMs: 1000, timeoutMs: 3000, retries: 2, startPeriodMs: 0 },
    containerPort: port,
  };
}

describe.each([
  { era: "legacy", start: () => listen(legacyHttpListener("legacy-http-under-test", registerEraTools)) },
  {
    era: "modern",
    start: () => {
      const handler = createModernHandler("modern-under-test");
      return listen(nodeListener((request) => handler.fetch(request)));
    },
  },
])("a $era HTTP server behind the gateway", ({ era, start }) => {
  let backend: { server: http.Server; port: number };
  let front: { server: http.Server; port: number };
  let upstream: HttpServerUpstream;
  let url: URL;
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    backend = await start();
    upstream = new HttpServerUpstream(target(backend.port), {
      resolve: () => Promise.resolve({ host: "127.0.0.1", port: backend.port }),
      logger: createLogger({ level: "silent" }),
      metrics: createGatewayMetrics(),
      clientInfo: { name: "gw", version: "0" },
    });
    front = await listen((req, res) => void upstream.handler.handle(req, res, { owner: "user:alice" }));
    url = new URL(`http://127.0.0.1:${front.port}/mcp`);
  });

  afterAll(async () => {
    for (const close of closers) await close().catch(() => undefined);
    await upstream.close();
    await stop(front.server);
    await stop(backend.server);
  });

  const modern = async (mode: "auto" | typeof PINNED, elicit?: string) => {
    const client = new ModernClient(
      { name: "modern-test", version: "2" },
      { capabilities: elicit ? { elicitation: {} } : {}, versionNegotiation: { mode } },
    );
    if (elicit)
      client.setRequestHandler("elicitation/create", () => ({ action: "accept", content: { word: elicit } }));
    await client.connect(new ModernTransport(url));
    closers.push(() => client.close());
    return client;
  };

  it("the probe tells the era by server/discover and passes", async () => {
    expect(upstream.era).toBe("unknown");
    await upstream.probe(3000);
    expect(upstream.era).toBe(era);
    await upstream.probe(3000);
    expect(upstream.era).toBe(era);
  });

  it("pinned, auto and v1 clients list and call tools", async () => {
    const pinned = await modern(PINNED);
    const auto = await modern("auto");
    expect(pinned.getNegotiatedProtocolVersion()).toBe("2026-07-28");
    expect(auto.getNegotiatedProtocolVersion()).toBe("2026-07-28");
    const legacy = new LegacyClient({ name: "legacy-test", version: "1" });
    await legacy.connect(new LegacyTransport(url));
    closers.push(() => legacy.close());
    expect((await pinned.listTools()).tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(["echo", "add", "grow"]),
    );
    const [a, b, c] = await Promise.all([
      pinned.callTool({ name: "add", arguments: { a: 1, b: 2 } }),
      auto.callTool({ name: "echo", arguments: { text: "auto" } }),
      legacy.callTool({ name: "echo", arguments: { text: "v1" } }),
    ]);
    expect(a.content).toEqual([{ type: "text", text: "3" }]);
    expect(b.content).toEqual([{ type: "text", text: "auto" }]);
    expect(c.content).toEqual([{ type: "text", text: "v1" }]);
  });

  it("a tools list_changed reaches a subscriptions/listen stream", async () => {
    const client = await modern(PINNED);
    const changed = new Promise<void>((resolve) =>
      client.setNotificationHandler("notifications/tools/list_changed", () => resolve()),
    );
    const subscription = await client.listen({ toolsListChanged: true });
    expect(subscription.honoredFilter).toEqual({ toolsListChanged: true });
    await client.callTool({ name: "grow", arguments: {} });
    await changed;
    await subscription.close();
  });

  it.runIf(era === "legacy")("an elicitation completes as an input_required round trip", async () => {
    const client = await modern(PINNED, "green");
    const result = await client.callTool({ name: "ask", arguments: { question: "colour?" } });
    expect(result.content).toEqual([{ type: "text", text: "answer: green" }]);
  });
});
