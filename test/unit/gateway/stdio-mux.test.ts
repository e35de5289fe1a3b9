import { describe, expect, it } from "vitest";
import type { JsonRpcResponse } from "../../../src/gateway/jsonrpc.js";
import { GATEWAY_CLIENT_CAPABILITIES, type MuxSession } from "../../../src/gateway/stdio-mux.js";
import { settle } from "../../helpers/fake-clock.js";
import { FakeServer, INIT_RESULT, RecordingSink, harness, initializeRequest } from "./fake-stdio.js";

async function open(h: Awaited<ReturnType<typeof harness>>, owner = "user:alice", capabilities = {}) {
  const { session, response } = await h.mux.openSession(owner, initializeRequest(1, capabilities));
  if (!session) throw new Error(`no session: ${JSON.stringify(response)}`);
  return { session, response };
}

describe("StdioMultiplexer: the gateway's own session with the server", () => {
  it("initializes the server once per attach and answers every client's initialize from the cache", async () => {
    const h = await harness();
    const init = h.server.last("initialize");
    expect(init.params).toMatchObject({
      protocolVersion: "2025-06-18",
      capabilities: GATEWAY_CLIENT_CAPABILITIES,
      clientInfo: { name: "gateway-test" },
    });
    await h.initialize();
    expect(h.server.notifications("notifications/initialized")).toHaveLength(1);
    const a = await open(h);
    const b = await h.mux.openSession("user:alice", initializeRequest("x", {}, "2025-03-26"));
    expect(a.session.id).not.toBe(b.session?.id);
    expect(a.response).toEqual({ jsonrpc: "2.0", id: 1, result: INIT_RESULT });
    // An older version the gateway knows is granted; the server's result is otherwise the same.
    expect(b.response).toEqual({
      jsonrpc: "2.0",
      id: "x",
      result: { ...INIT_RESULT, protocolVersion: "2025-03-26" },
    });
    const c = await h.mux.openSession("user:alice", initializeRequest(3, {}, "2099-01-01"));
    expect((c.response as { result: { protocolVersion: string } }).result.protocolVersion).toBe("2025-06-18");
    expect(h.server.requests("initialize")).toHaveLength(1);
    // Clients' notifications/initialized never reach the server: the gateway sent its own.
    h.mux.notify(a.session, { jsonrpc: "2.0", method: "notifications/initialized" });
    expect(h.server.notifications("notifications/initialized")).toHaveLength(1);
  });

  it("answers the server's ping itself", async () => {
    const h = await harness();
    await h.initialize();
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id: "srv-1", method: "ping" }));
    expect(h.server.received.at(-1)).toEqual({ jsonrpc: "2.0", id: "srv-1", result: {} });
  });

  it("ignores stdout lines that are not JSON-RPC", async () => {
    const dropped: string[] = [];
    const h = await harness({ onEvent: (e) => e.type === "dropped" && dropped.push(e.reason) });
    h.mux.receive("Server starting on stdio...");
    h.mux.receive('{"hello": 1}');
    await h.initialize();
    expect(h.mux.ready).toBe(true);
    expect(dropped).toHaveLength(2);
  });
});

describe("StdioMultiplexer: client requests", () => {
  it("rewrites ids so two clients using the same id never collide, and maps answers back", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    const b = await open(h);
    const sinkA = new RecordingSink();
    const sinkB = new RecordingSink();
    const call = (text: string) => ({ name: "echo", arguments: { text } });
    const pa = h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: call("a") },
      sinkA,
    );
    const pb = h.mux.forward(
      b.session,
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: call("b") },
      sinkB,
    );
    await settle();
    const sent = h.server.requests("tools/call");
    expect(sent).toHaveLength(2);
    expect(sent[0]!.id).not.toEqual(sent[1]!.id);
    expect(sent.map((r) => r.params)).toEqual([call("a"), call("b")]);
    // The server answers in the opposite order.
    h.reply(sent[1]!.id, { content: [{ type: "text", text: "b" }] });
    h.reply(sent[0]!.id, { content: [{ type: "text", text: "a" }] });
    expect(await pa).toEqual({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text: "a" }] } });
    expect(await pb).toEqual({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text: "b" }] } });
    expect(a.session.inflight.size + b.session.inflight.size).toBe(0);
  });

  it("keeps many concurrent requests of many clients apart", async () => {
    const h = await harness();
    await h.initialize();
    const sessions: MuxSession[] = [];
    for (let i = 0; i < 8; i++) sessions.push((await open(h)).session);
    const pending: Promise<JsonRpcResponse | undefined>[] = [];
    for (const [s, session] of sessions.entries()) {
      for (let id = 0; id < 25; id++) {
        pending.push(
          h.mux.forward(
            session,
            { jsonrpc: "2.0", id, method: "tools/call", params: { s, id } },
            new RecordingSink(),
          ),
        );
      }
    }
    await settle();
    const sent = h.server.requests("tools/call");
    expect(new Set(sent.map((r) => r.id)).size).toBe(200);
    for (const request of [...sent].reverse()) h.reply(request.id, { echo: request.params });
    const responses = await Promise.all(pending);
    let i = 0;
    for (const [s] of sessions.entries()) {
      for (let id = 0; id < 25; id++) {
        expect(responses[i++]).toEqual({ jsonrpc: "2.0", id, result: { echo: { s, id } } });
      }
    }
  });

  it("routes progress to the client whose request carried the token, under that client's token", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    const b = await open(h);
    const sinkA = new RecordingSink();
    const sinkB = new RecordingSink();
    const meta = (token: number) => ({ name: "slow", _meta: { progressToken: token, other: "kept" } });
    const pa = h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 7, method: "tools/call", params: meta(7) },
      sinkA,
    );
    const pb = h.mux.forward(
      b.session,
      { jsonrpc: "2.0", id: 7, method: "tools/call", params: meta(7) },
      sinkB,
    );
    await settle();
    const [ra, rb] = h.server.requests("tools/call");
    const tokenA = (ra!.params as { _meta: { progressToken: number; other: string } })._meta;
    const tokenB = (rb!.params as { _meta: { progressToken: number } })._meta;
    expect(tokenA.progressToken).not.toBe(tokenB.progressToken);
    expect(tokenA.other).toBe("kept");
    const progress = (token: number, n: number) =>
      h.mux.receive(
        JSON.stringify({
          jsonrpc: "2.0",
          method: "notifications/progress",
          params: { progressToken: token, progress: n },
        }),
      );
    progress(tokenB.progressToken, 1);
    progress(tokenA.progressToken, 1);
    progress(tokenA.progressToken, 2);
    progress(9999, 1); // unknown token: dropped
    expect(sinkA.messages).toEqual([
      { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 7, progress: 1 } },
      { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 7, progress: 2 } },
    ]);
    expect(sinkB.messages).toEqual([
      { jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 7, progress: 1 } },
    ]);
    h.reply(ra!.id, {});
    h.reply(rb!.id, {});
    await Promise.all([pa, pb]);
    // After the answer the token means nothing any more.
    progress(tokenA.progressToken, 3);
    expect(sinkA.messages).toHaveLength(2);
  });

  it("translates a client's cancellation to the gateway id and ends the request without an answer", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    const pending = h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: "c1", method: "tools/call" },
      new RecordingSink(),
    );
    await settle();
    const sent = h.server.last("tools/call");
    h.mux.notify(a.session, {
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: "c1", reason: "user" },
    });
    expect(await pending).toBeUndefined();
    expect(h.server.notifications("notifications/cancelled").at(-1)).toEqual({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: sent.id, reason: "user" },
    });
    // A late answer is dropped.
    h.reply(sent.id, {});
  });

  it("refuses a second request with an id still in flight in the same session", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    void h.mux.forward(a.session, { jsonrpc: "2.0", id: 5, method: "tools/list" }, new RecordingSink());
    await settle();
    const second = await h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 5, method: "tools/list" },
      new RecordingSink(),
    );
    expect(second).toMatchObject({ id: 5, error: { code: -32600 } });
  });

  it("cancels a session's requests at the server when the session is deleted", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    const pending = h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 1, method: "tools/call" },
      new RecordingSink(),
    );
    await settle();
    const sent = h.server.last("tools/call");
    h.mux.closeSession(a.session.id);
    expect(await pending).toBeUndefined();
    expect(h.server.notifications("notifications/cancelled").at(-1)).toMatchObject({
      params: { requestId: sent.id },
    });
    expect(h.mux.session(a.session.id, "user:alice")).toBeUndefined();
  });

  it("binds a session to the caller that opened it", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h, "user:alice");
    expect(h.mux.session(a.session.id, "user:alice")).toBe(a.session);
    expect(h.mux.session(a.session.id, "admin")).toBeUndefined();
  });

  it("refuses requests when the server does not read its input", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    h.server.accept = false;
    const response = await h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 1, method: "tools/list" },
      new RecordingSink(),
    );
    expect(response).toMatchObject({ id: 1, error: { code: -32000 } });
    expect(a.session.inflight.size).toBe(0);
  });
});

describe("StdioMultiplexer: server notifications and requests", () => {
  it("broadcasts list_changed and log messages to every session's GET stream", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    const b = await open(h);
    await open(h); // no GET stream: misses broadcasts
    const streamA = new RecordingSink();
    const streamB = new RecordingSink();
    h.mux.setStream(a.session, streamA);
    h.mux.setStream(b.session, streamB);
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", method: "notifications/tools/list_changed" }));
    h.mux.receive(
      JSON.stringify({
        jsonrpc: "2.0",
        method: "notifications/message",
        params: { level: "info", data: "x" },
      }),
    );
    for (const stream of [streamA, streamB]) {
      expect(stream.messages.map((m) => ("method" in m ? m.method : ""))).toEqual([
        "notifications/tools/list_changed",
        "notifications/message",
      ]);
    }
  });

  it("sends resources/updated only to subscribed sessions; unsubscribes at the server only when the last one leaves", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    const b = await open(h);
    const streamA = new RecordingSink();
    const streamB = new RecordingSink();
    h.mux.setStream(a.session, streamA);
    h.mux.setStream(b.session, streamB);
    const subscribe = (session: MuxSession, id: number, method: string) =>
      h.mux.forward(
        session,
        { jsonrpc: "2.0", id, method, params: { uri: "file:///x" } },
        new RecordingSink(),
      );
    const sa = subscribe(a.session, 1, "resources/subscribe");
    const sb = subscribe(b.session, 1, "resources/subscribe");
    await settle();
    for (const request of h.server.requests("resources/subscribe")) h.reply(request.id, {});
    await Promise.all([sa, sb]);
    h.mux.receive(
      JSON.stringify({
        jsonrpc: "2.0",
        method: "notifications/resources/updated",
        params: { uri: "file:///x" },
      }),
    );
    expect(streamA.messages).toHaveLength(1);
    expect(streamB.messages).toHaveLength(1);
    // a unsubscribes: answered locally, b is still subscribed.
    expect(await subscribe(a.session, 2, "resources/unsubscribe")).toEqual({
      jsonrpc: "2.0",
      id: 2,
      result: {},
    });
    expect(h.server.requests("resources/unsubscribe")).toHaveLength(0);
    h.mux.receive(
      JSON.stringify({
        jsonrpc: "2.0",
        method: "notifications/resources/updated",
        params: { uri: "file:///x" },
      }),
    );
    expect(streamA.messages).toHaveLength(1);
    expect(streamB.messages).toHaveLength(2);
    const last = subscribe(b.session, 2, "resources/unsubscribe");
    await settle();
    h.reply(h.server.last("resources/unsubscribe").id, {});
    expect(await last).toEqual({ jsonrpc: "2.0", id: 2, result: {} });
  });

  it("routes a server request to the session with a request in flight whose client has the capability", async () => {
    const h = await harness();
    await h.initialize();
    const plain = await open(h, "user:alice", {});
    const sampler = await open(h, "user:alice", { sampling: {} });
    const plainSink = new RecordingSink();
    const samplerSink = new RecordingSink();
    void h.mux.forward(plain.session, { jsonrpc: "2.0", id: 1, method: "tools/call" }, plainSink);
    void h.mux.forward(sampler.session, { jsonrpc: "2.0", id: 1, method: "tools/call" }, samplerSink);
    await settle();
    h.clock.advance(10);
    // The most recent in-flight request of an eligible client gets it, on that request's stream.
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id: 900, method: "sampling/createMessage", params: {} }));
    expect(samplerSink.messages).toEqual([
      { jsonrpc: "2.0", id: 900, method: "sampling/createMessage", params: {} },
    ]);
    expect(plainSink.messages).toEqual([]);
    // Only that session may answer; the answer goes to the server unchanged.
    h.mux.respond(plain.session, { jsonrpc: "2.0", id: 900, result: { wrong: true } });
    expect(h.server.received.some((m) => "result" in m && m.id === 900)).toBe(false);
    h.mux.respond(sampler.session, { jsonrpc: "2.0", id: 900, result: { role: "assistant" } });
    expect(h.server.received.at(-1)).toEqual({ jsonrpc: "2.0", id: 900, result: { role: "assistant" } });
  });

  it("falls back to the most recently active GET stream, and answers an error when no client can take it", async () => {
    const h = await harness();
    await h.initialize();
    const older = await open(h, "user:alice", { roots: {} });
    h.clock.advance(100);
    const newer = await open(h, "user:alice", { roots: {} });
    const olderStream = new RecordingSink();
    const newerStream = new RecordingSink();
    h.mux.setStream(older.session, olderStream);
    h.clock.advance(100);
    h.mux.setStream(newer.session, newerStream);
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id: "r1", method: "roots/list" }));
    expect(newerStream.messages).toHaveLength(1);
    expect(olderStream.messages).toHaveLength(0);
    // elicitation: nobody declared it.
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id: "e1", method: "elicitation/create", params: {} }));
    expect(h.server.received.at(-1)).toMatchObject({ id: "e1", error: { code: -32601 } });
    // The server cancels its roots request: the client that has it is told.
    h.mux.receive(
      JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: "r1" } }),
    );
    expect(newerStream.messages.at(-1)).toMatchObject({ method: "notifications/cancelled" });
  });
});

describe("StdioMultiplexer: server requests reach only the server's own user", () => {
  it("never routes a server request to an admin session, even one with the most recent request in flight", async () => {
    const h = await harness({ serverUserId: "alice" });
    await h.initialize();
    const alice = await open(h, "user:alice", { sampling: {}, elicitation: {}, roots: {} });
    const admin = await open(h, "admin", { sampling: {}, elicitation: {}, roots: {} });
    const aliceStream = new RecordingSink();
    h.mux.setStream(alice.session, aliceStream);
    const aliceSink = new RecordingSink();
    const adminSink = new RecordingSink();
    void h.mux.forward(alice.session, { jsonrpc: "2.0", id: 1, method: "tools/call" }, aliceSink);
    h.clock.advance(10);
    // The admin's call is the most recent one in flight: the old rule would have picked it.
    void h.mux.forward(admin.session, { jsonrpc: "2.0", id: 1, method: "tools/call" }, adminSink);
    await settle();
    for (const [id, method] of [
      ["s1", "sampling/createMessage"],
      ["e1", "elicitation/create"],
      ["r1", "roots/list"],
    ] as const) {
      h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id, method, params: {} }));
    }
    expect(adminSink.messages).toEqual([]);
    expect(aliceSink.messages.map((m) => ("id" in m ? m.id : undefined))).toEqual(["s1", "e1", "r1"]);
    // The admin cannot answer them either.
    h.mux.respond(admin.session, { jsonrpc: "2.0", id: "s1", result: { forged: true } });
    expect(h.server.received.some((m) => "result" in m && m.id === "s1")).toBe(false);
  });

  it("answers the server with an error when only an admin session could take the request", async () => {
    const h = await harness({ serverUserId: "alice" });
    await h.initialize();
    const admin = await open(h, "admin", { elicitation: {} });
    const adminStream = new RecordingSink();
    h.mux.setStream(admin.session, adminStream);
    void h.mux.forward(admin.session, { jsonrpc: "2.0", id: 1, method: "tools/call" }, adminStream);
    await settle();
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id: "e1", method: "elicitation/create", params: {} }));
    expect(adminStream.messages).toEqual([]);
    expect(h.server.received.at(-1)).toMatchObject({ id: "e1", error: { code: -32601 } });
  });
});

describe("StdioMultiplexer: attach drops and re-initialize", () => {
  it("fails requests in flight, keeps sessions, re-initializes on the next attach and serves them again", async () => {
    const events: string[] = [];
    const h = await harness({ onEvent: (e) => events.push(e.type) });
    await h.initialize();
    const a = await open(h);
    const stream = new RecordingSink();
    h.mux.setStream(a.session, stream);
    const inflight = h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 1, method: "tools/call" },
      new RecordingSink(),
    );
    await settle();
    h.mux.disconnect("container restarted");
    expect(await inflight).toMatchObject({
      id: 1,
      error: { code: -32000, message: expect.stringContaining("container restarted") as unknown },
    });
    expect(h.mux.ready).toBe(false);

    // A request arriving meanwhile waits for the new attach.
    const waiting = h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 2, method: "tools/list" },
      new RecordingSink(),
    );
    await settle();
    const next = new FakeServer();
    h.mux.connect(next);
    await settle();
    expect(next.requests("initialize")).toHaveLength(1);
    expect(next.requests("tools/list")).toHaveLength(0);
    await h.initialize(next);
    expect(next.notifications("notifications/initialized")).toHaveLength(1);
    const sent = next.last("tools/list");
    next.received.length = 0;
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id: sent.id, result: { tools: [] } }));
    expect(await waiting).toEqual({ jsonrpc: "2.0", id: 2, result: { tools: [] } });
    // Clients learn that the server may have changed.
    expect(stream.messages.map((m) => ("method" in m ? m.method : ""))).toEqual([
      "notifications/tools/list_changed",
      "notifications/resources/list_changed",
    ]);
    expect(events).toContain("disconnected");
    expect(events.filter((e) => e === "initialized")).toHaveLength(2);
  });

  it("ignores the end of an older attach once a newer one is connected", async () => {
    const h = await harness();
    await h.initialize();
    const next = new FakeServer();
    h.mux.connect(next);
    await settle();
    await h.initialize(next);
    h.mux.disconnect("old attach ended", h.server);
    expect(h.mux.ready).toBe(true);
    h.mux.disconnect("new attach ended", next);
    expect(h.mux.ready).toBe(false);
  });

  it("replays resource subscriptions after a re-initialize", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    const sub = h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 1, method: "resources/subscribe", params: { uri: "u:1" } },
      new RecordingSink(),
    );
    await settle();
    h.reply(h.server.last("resources/subscribe").id, {});
    await sub;
    h.mux.disconnect("gone");
    const next = new FakeServer();
    h.mux.connect(next);
    await settle();
    await h.initialize(next);
    expect(next.requests("resources/subscribe").map((r) => r.params)).toEqual([{ uri: "u:1" }]);
  });

  it("answers requests with an error when the server does not come back in time", async () => {
    const h = await harness({ readyWaitMs: 1000 });
    await h.initialize();
    const a = await open(h);
    h.mux.disconnect("attach dropped");
    const pending = h.mux.forward(
      a.session,
      { jsonrpc: "2.0", id: 3, method: "tools/list" },
      new RecordingSink(),
    );
    await settle();
    h.clock.advance(1000);
    expect(await pending).toMatchObject({
      id: 3,
      error: {
        code: -32000,
        message:
          "server unavailable: initialize: server not ready within 1000 ms (last failure: attach: the connection to the server was lost)",
      },
    });
    // New clients cannot initialize either.
    const opened = h.mux.openSession("user:alice", initializeRequest(9));
    await settle();
    h.clock.advance(1000);
    expect((await opened).session).toBeUndefined();
  });

  it("probes with initialize (when needed) and ping, within the timeout", async () => {
    const h = await harness();
    const probe = h.mux.ping(2000);
    await settle();
    await h.initialize();
    h.reply(h.server.last("ping").id, {});
    await expect(probe).resolves.toBeUndefined();
    const silent = h.mux.ping(2000);
    await settle();
    h.clock.advance(2000);
    await expect(silent).rejects.toThrow(/ping: no answer within/);
  });

  it("probe failures name the step and the JSON-RPC code, never the server's error text", async () => {
    const remote = "REMOTE-TEXT-7f3a";
    const h = await harness();
    h.mux.receive(
      JSON.stringify({
        jsonrpc: "2.0",
        id: h.server.last("initialize").id,
        error: { code: -32603, message: remote },
      }),
    );
    await settle();
    expect(h.mux.notReadyReason).toBe("initialize: JSON-RPC error -32603");
    const probe = h.mux.ping(2000);
    await settle();
    await h.initialize();
    h.mux.receive(
      JSON.stringify({ jsonrpc: "2.0", id: h.server.last("ping").id, error: { code: 7, message: remote } }),
    );
    await expect(probe).rejects.toThrow(/^ping: JSON-RPC error 7$/);
    // An initialize result that is no InitializeResult.
    h.mux.disconnect("again");
    const next = new FakeServer();
    h.mux.connect(next);
    await settle();
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id: next.last("initialize").id, result: { remote } }));
    await settle();
    expect(h.mux.notReadyReason).toBe(
      "initialize: the initialize result lacks protocolVersion or capabilities",
    );
  });

  it("retries initialize on the next probe when the server did not answer it", async () => {
    const h = await harness({ initializeTimeoutMs: 500 });
    h.clock.advance(500);
    await settle();
    expect(h.mux.ready).toBe(false);
    expect(h.mux.notReadyReason).toBe("initialize: no answer within 500 ms");
    const probe = h.mux.ping(2000);
    await settle();
    expect(h.server.requests("initialize")).toHaveLength(2);
    await h.initialize();
    h.reply(h.server.last("ping").id, {});
    await expect(probe).resolves.toBeUndefined();
  });
});
