// Streamable HTTP in front of the multiplexer, over real loopback HTTP, with a fake stdio server that answers.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JsonRpcMessage } from "../../../src/gateway/jsonrpc.js";
import { StdioHttpHandler } from "../../../src/gateway/stdio-http.js";
import { StdioMultiplexer, type UpstreamLink } from "../../../src/gateway/stdio-mux.js";
import { systemClock } from "../../../src/util/clock.js";
import { INIT_RESULT } from "./fake-stdio.js";

/** Answers like a tiny MCP server: initialize, ping, tools/call echoing its params; "notify" emits a notification. */
class AnsweringServer implements UpstreamLink {
  readonly received: JsonRpcMessage[] = [];
  constructor(private readonly mux: () => StdioMultiplexer) {}

  send(message: JsonRpcMessage): boolean {
    this.received.push(message);
    if (!("id" in message) || !("method" in message)) return true;
    const reply = (result: unknown) =>
      setImmediate(() => this.mux().receive(JSON.stringify({ jsonrpc: "2.0", id: message.id, result })));
    if (message.method === "initialize") reply(INIT_RESULT);
    else if (message.method === "tools/call") reply({ echo: message.params });
    else reply({});
    return true;
  }
}

const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } },
};

describe("StdioHttpHandler", () => {
  let server: http.Server;
  let base: string;
  let mux: StdioMultiplexer;
  let upstream: AnsweringServer;

  beforeAll(async () => {
    mux = new StdioMultiplexer({
      clock: systemClock,
      serverUserId: "alice",
      clientInfo: { name: "gw", version: "0" },
      readyWaitMs: 2000,
    });
    upstream = new AnsweringServer(() => mux);
    mux.connect(upstream);
    const handler = new StdioHttpHandler(mux, { keepAliveMs: 0 });
    server = http.createServer(
      (req, res) => void handler.handle(req, res, { owner: String(req.headers["x-owner"] ?? "admin") }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });

  afterAll(async () => {
    mux.closeAll("test over");
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(base, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...headers,
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  const initialize = async (owner = "admin"): Promise<string> => {
    const res = await post(INIT, { "x-owner": owner });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    expect(await res.json()).toEqual({ jsonrpc: "2.0", id: 1, result: INIT_RESULT });
    return res.headers.get("mcp-session-id")!;
  };

  it("answers initialize with a new session id each time", async () => {
    const a = await initialize();
    const b = await initialize();
    expect(a).toMatch(/^[0-9a-f-]{36}$/);
    expect(a).not.toBe(b);
  });

  it("answers a request as an SSE stream when the client accepts one, else as JSON", async () => {
    const session = await initialize();
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo" } };
    const sse = await post(call, { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" });
    expect(sse.status).toBe(200);
    expect(sse.headers.get("content-type")).toBe("text/event-stream");
    const text = await sse.text();
    expect(text).toBe(
      `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: 2, result: { echo: { name: "echo" } } })}\n\n`,
    );
    const json = await post(call, { "mcp-session-id": session, accept: "application/json" });
    expect(json.headers.get("content-type")).toMatch(/application\/json/);
    expect(await json.json()).toEqual({ jsonrpc: "2.0", id: 2, result: { echo: { name: "echo" } } });
  });

  it("answers a batch with an array, and notifications alone with 202", async () => {
    const session = await initialize();
    const batch = [
      { jsonrpc: "2.0", id: "a", method: "tools/call", params: { n: 1 } },
      { jsonrpc: "2.0", method: "notifications/roots/list_changed" },
      { jsonrpc: "2.0", id: "b", method: "ping" },
    ];
    const res = await post(batch, { "mcp-session-id": session, accept: "application/json" });
    expect(await res.json()).toEqual([
      { jsonrpc: "2.0", id: "a", result: { echo: { n: 1 } } },
      { jsonrpc: "2.0", id: "b", result: {} },
    ]);
    const accepted = await post(
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { "mcp-session-id": session },
    );
    expect(accepted.status).toBe(202);
  });

  it("refuses a batch over 100 messages whole: one JSON-RPC error per request, under its id", async () => {
    const session = await initialize();
    const before = upstream.received.length;
    const batch = Array.from({ length: 101 }, (_, i) =>
      i === 50
        ? { jsonrpc: "2.0", method: "notifications/roots/list_changed" }
        : { jsonrpc: "2.0", id: `r${i}`, method: "tools/call", params: { i } },
    );
    const res = await post(batch, { "mcp-session-id": session, accept: "application/json" });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { id: string; error: { code: number; message: string } }[];
    expect(body).toHaveLength(100);
    expect(body.map((r) => r.id)).toEqual(batch.flatMap((m) => ("id" in m ? [m.id] : [])));
    expect(body[0]!.error).toEqual({
      code: -32600,
      message: "batch of 101 messages refused: at most 100 per batch",
    });
    // Nothing of it reached the server; a batch at the limit does.
    expect(upstream.received.length).toBe(before);
    const limit = await post(batch.slice(0, 100), { "mcp-session-id": session, accept: "application/json" });
    expect(limit.status).toBe(200);
    const answers = (await limit.json()) as ({ result: unknown } | { error: { code: number } })[];
    expect(answers).toHaveLength(99);
    // Each request of a batch counts against the session's in-flight cap (64).
    expect(answers.filter((a) => "result" in a)).toHaveLength(64);
    expect(answers.filter((a) => "error" in a && a.error.code === -32003)).toHaveLength(35);
  });

  it("refuses what the transport does not allow", async () => {
    const session = await initialize("user:alice");
    const call = { jsonrpc: "2.0", id: 1, method: "tools/list" };
    expect((await post(call)).status).toBe(400); // no session header
    expect((await post(call, { "mcp-session-id": "nope" })).status).toBe(404);
    expect((await post(call, { "mcp-session-id": session, "x-owner": "user:bob" })).status).toBe(404);
    expect(
      (
        await post(call, {
          "mcp-session-id": session,
          "x-owner": "user:alice",
          "mcp-protocol-version": "1999-01-01",
        })
      ).status,
    ).toBe(400);
    const parse = await post("{not json", { "mcp-session-id": session });
    expect(parse.status).toBe(400);
    expect(await parse.json()).toMatchObject({ error: { code: -32700 } });
    expect((await post({ hello: "world" }, { "mcp-session-id": session })).status).toBe(400);
    expect((await post(call, { "content-type": "text/plain" })).status).toBe(415);
    expect((await post([INIT, call])).status).toBe(400); // initialize must be alone
    expect((await fetch(base, { method: "PUT" })).status).toBe(405);
    expect((await fetch(base.replace("/mcp", "/other"), { method: "POST" })).status).toBe(404);
  });

  it("opens one GET stream per session for server-initiated messages, and DELETE ends the session", async () => {
    const session = await initialize();
    const controller = new AbortController();
    const stream = await fetch(base, {
      headers: { accept: "text/event-stream", "mcp-session-id": session },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toBe("text/event-stream");
    const second = await fetch(base, { headers: { accept: "text/event-stream", "mcp-session-id": session } });
    expect(second.status).toBe(409);
    const noAccept = await fetch(base, {
      headers: { accept: "application/json", "mcp-session-id": session },
    });
    expect(noAccept.status).toBe(406);

    mux.receive(JSON.stringify({ jsonrpc: "2.0", method: "notifications/tools/list_changed" }));
    const reader = stream.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain('"method":"notifications/tools/list_changed"');
    controller.abort();

    const deleted = await fetch(base, { method: "DELETE", headers: { "mcp-session-id": session } });
    expect(deleted.status).toBe(200);
    const after = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { "mcp-session-id": session });
    expect(after.status).toBe(404);
  });
});
