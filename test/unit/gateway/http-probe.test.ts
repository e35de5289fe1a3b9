// The gateway's MCP probes against real MCP servers from the official SDK (in-process, loopback).
import { randomUUID } from "node:crypto";
import http, { type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { afterEach, describe, expect, it } from "vitest";
import { SseTransportProbe, StreamableHttpProbe } from "../../../src/gateway/http-probe.js";

const CLIENT = { name: "gateway-probe-test", version: "0" };

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

describe("MCP probes of HTTP servers", () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  async function listen(handler: http.RequestListener): Promise<number> {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  }

  /** A stateful streamable-HTTP server; `sessions` counts initializes, `forget()` drops every session. */
  async function streamableServer() {
    const transports = new Map<string, StreamableHTTPServerTransport>();
    const methods: string[] = [];
    let sessions = 0;
    const port = await listen((req, res) => {
      void (async () => {
        const body = req.method === "POST" ? await readJson(req) : undefined;
        if (body && typeof body === "object" && "method" in body) methods.push(String(body.method));
        const id = req.headers["mcp-session-id"];
        const existing = typeof id === "string" ? transports.get(id) : undefined;
        if (existing) return existing.handleRequest(req, res, body);
        if (id !== undefined) {
          res.writeHead(404).end();
          return;
        }
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (sid) => {
            sessions += 1;
            transports.set(sid, transport);
          },
        });
        await new McpServer({ name: "probe-target", version: "1" }).connect(transport);
        await transport.handleRequest(req, res, body);
      })();
    });
    return { port, methods, sessions: () => sessions, forget: () => transports.clear() };
  }

  it("streamable HTTP: initialize + initialized once, then ping per probe; re-initializes when the session is gone", async () => {
    const server = await streamableServer();
    const probe = new StreamableHttpProbe({
      target: () => Promise.resolve({ host: "127.0.0.1", port: server.port }),
      clientInfo: CLIENT,
    });
    await probe.probe(2000);
    expect(server.methods).toEqual(["initialize", "notifications/initialized", "ping"]);
    await probe.probe(2000);
    expect(server.methods.slice(3)).toEqual(["ping"]);
    server.forget();
    await probe.probe(2000);
    expect(server.methods.slice(4)).toEqual(["ping", "initialize", "notifications/initialized", "ping"]);
    expect(server.sessions()).toBe(2);
    await probe.close();
  });

  it("streamable HTTP: fails with the reason when nothing answers or the answer is no MCP", async () => {
    const closed = await listen((_req, res) => res.writeHead(500).end());
    const probe = new StreamableHttpProbe({
      target: () => Promise.resolve({ host: "127.0.0.1", port: closed }),
      clientInfo: CLIENT,
    });
    await expect(probe.probe(2000)).rejects.toThrow(/initialize: HTTP 500/);
    const silent = await listen(() => undefined);
    const hanging = new StreamableHttpProbe({
      target: () => Promise.resolve({ host: "127.0.0.1", port: silent }),
      clientInfo: CLIENT,
    });
    await expect(hanging.probe(300)).rejects.toThrow(/no answer within 300 ms/);
  });

  it("HTTP+SSE (2024-11-05): endpoint event, initialize, initialized, ping over the event stream", async () => {
    const transports = new Map<string, SSEServerTransport>();
    const port = await listen((req, res) => {
      void (async () => {
        const url = new URL(req.url ?? "/", "http://localhost");
        if (req.method === "GET" && url.pathname === "/sse") {
          const transport = new SSEServerTransport("/messages", res);
          transports.set(transport.sessionId, transport);
          await new McpServer({ name: "sse-target", version: "1" }).connect(transport);
          return;
        }
        const transport = transports.get(url.searchParams.get("sessionId") ?? "");
        if (req.method === "POST" && url.pathname === "/messages" && transport) {
          await transport.handlePostMessage(req, res, await readJson(req));
          return;
        }
        res.writeHead(404).end();
      })();
    });
    const probe = new SseTransportProbe({
      target: () => Promise.resolve({ host: "127.0.0.1", port }),
      clientInfo: CLIENT,
    });
    await probe.probe(3000);
    await probe.probe(3000);
    expect(transports.size).toBe(2);
  });
});
