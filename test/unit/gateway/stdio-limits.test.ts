// One tenant against the shared gateway's stdio multiplexer: in-flight caps per session and per server, a bounded
// request timeout that progress resets, bounded server-to-client requests and subscriptions.
import { describe, expect, it } from "vitest";
import { ERROR_CODES, type JsonRpcResponse } from "../../../src/gateway/jsonrpc.js";
import { DEFAULT_MUX_LIMITS, type MuxSession } from "../../../src/gateway/stdio-mux.js";
import { settle } from "../../helpers/fake-clock.js";
import { RecordingSink, harness, initializeRequest } from "./fake-stdio.js";

type Harness = Awaited<ReturnType<typeof harness>>;

async function open(h: Harness, owner = "user:alice", capabilities = {}): Promise<MuxSession> {
  const { session, response } = await h.mux.openSession(owner, initializeRequest(1, capabilities));
  if (!session) throw new Error(`no session: ${JSON.stringify(response)}`);
  return session;
}

const call = (id: number | string) => ({ jsonrpc: "2.0" as const, id, method: "tools/call", params: {} });

describe("StdioMultiplexer limits", () => {
  it("documents its defaults: 64 in flight per session, 256 per server, 300 s per request", () => {
    expect(DEFAULT_MUX_LIMITS).toMatchObject({
      maxInflightPerSession: 64,
      maxInflightPerServer: 256,
      requestTimeoutMs: 300_000,
    });
  });

  it("answers requests beyond the session's in-flight cap with a JSON-RPC error echoing their ids", async () => {
    const h = await harness({ maxInflightPerSession: 4 });
    await h.initialize();
    const a = await open(h);
    const sink = new RecordingSink();
    const pending = [1, 2, 3, 4].map((id) => h.mux.forward(a, call(id), sink));
    const over = await Promise.all(["x", 6].map((id) => h.mux.forward(a, call(id), sink)));
    expect(over).toEqual([
      {
        jsonrpc: "2.0",
        id: "x",
        error: {
          code: ERROR_CODES.limitExceeded,
          message: "too many requests in flight on this session (limit 4)",
        },
      },
      {
        jsonrpc: "2.0",
        id: 6,
        error: {
          code: ERROR_CODES.limitExceeded,
          message: "too many requests in flight on this session (limit 4)",
        },
      },
    ]);
    await settle();
    expect(h.server.requests("tools/call")).toHaveLength(4);
    // Another session of the same server is not affected, and an answer frees a slot.
    const b = await open(h);
    const other = h.mux.forward(b, call(1), sink);
    await settle();
    expect(h.server.requests("tools/call")).toHaveLength(5);
    h.reply(h.server.requests("tools/call")[0]!.id, {});
    expect(await pending[0]).toMatchObject({ id: 1, result: {} });
    void h.mux.forward(a, call(7), sink);
    await settle();
    expect(h.server.requests("tools/call")).toHaveLength(6);
    void other;
  });

  it("caps what one server has in flight over all its sessions", async () => {
    const h = await harness({ maxInflightPerSession: 3, maxInflightPerServer: 5 });
    await h.initialize();
    const sessions = [await open(h), await open(h), await open(h)];
    const results: Promise<JsonRpcResponse | undefined>[] = [];
    for (const session of sessions)
      for (const id of [1, 2, 3]) results.push(h.mux.forward(session, call(id), new RecordingSink()));
    await settle();
    expect(h.server.requests("tools/call")).toHaveLength(5);
    const refused = (await Promise.all(results.slice(5))) as JsonRpcResponse[];
    expect(refused.map((r) => ("error" in r ? r.error : undefined))).toEqual(
      Array(4).fill({
        code: ERROR_CODES.limitExceeded,
        message: "too many requests in flight to this server (limit 5)",
      }),
    );
  });

  it("counts requests waiting for the server to be ready against the caps (no unbounded waiters)", async () => {
    const h = await harness({ maxInflightPerSession: 3, readyWaitMs: 10_000 });
    await h.initialize();
    const a = await open(h);
    h.mux.disconnect("attach dropped");
    const waiting = [1, 2, 3, 4, 5].map((id) => h.mux.forward(a, call(id), new RecordingSink()));
    await settle();
    const fourth = await waiting[3];
    expect(fourth).toMatchObject({ id: 4, error: { code: ERROR_CODES.limitExceeded } });
    // Timers: the waiters of 3 requests, not of 5.
    expect(h.clock.pendingDelays().filter((d) => d === 10_000)).toHaveLength(3);
  });

  it("times a request out after 300 s without an answer, cancelling it at the server", async () => {
    const h = await harness();
    await h.initialize();
    const a = await open(h);
    const pending = h.mux.forward(a, call("slow"), new RecordingSink());
    await settle();
    const sent = h.server.last("tools/call");
    // No hour-long timers: every timer of the multiplexer is bounded by the request timeout.
    expect(Math.max(...h.clock.pendingDelays())).toBeLessThanOrEqual(300_000);
    h.clock.advance(299_999);
    await settle();
    expect(a.inflight.size).toBe(1);
    h.clock.advance(1);
    expect(await pending).toEqual({
      jsonrpc: "2.0",
      id: "slow",
      error: { code: ERROR_CODES.requestTimeout, message: "no answer or progress within 300000 ms" },
    });
    expect(h.server.notifications("notifications/cancelled").at(-1)).toMatchObject({
      params: { requestId: sent.id },
    });
    expect(a.inflight.size).toBe(0);
  });

  it("restarts a request's timeout on each progress notification and server request it causes", async () => {
    const h = await harness({ requestTimeoutMs: 1000 });
    await h.initialize();
    const a = await open(h, "user:alice", { sampling: {} });
    const sink = new RecordingSink();
    const pending = h.mux.forward(
      a,
      { jsonrpc: "2.0", id: 9, method: "tools/call", params: { _meta: { progressToken: "p" } } },
      sink,
    );
    await settle();
    const sent = h.server.last("tools/call");
    const progress = (n: number) =>
      h.mux.receive(
        JSON.stringify({
          jsonrpc: "2.0",
          method: "notifications/progress",
          params: { progressToken: sent.id, progress: n },
        }),
      );
    for (let n = 1; n <= 5; n++) {
      h.clock.advance(900);
      progress(n);
    }
    // A sampling request during the call, then the client's answer 900 ms later: both count as activity.
    h.clock.advance(900);
    h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id: "s1", method: "sampling/createMessage", params: {} }));
    h.clock.advance(900);
    h.mux.respond(a, { jsonrpc: "2.0", id: "s1", result: {} });
    h.clock.advance(900);
    await settle();
    expect(a.inflight.size).toBe(1);
    h.reply(sent.id, { done: true });
    expect(await pending).toEqual({ jsonrpc: "2.0", id: 9, result: { done: true } });
    expect(sink.messages.filter((m) => "method" in m && m.method === "notifications/progress")).toHaveLength(
      5,
    );
  });

  it("bounds the server's own requests waiting for clients", async () => {
    const h = await harness({ maxInflightPerServer: 2 });
    await h.initialize();
    const a = await open(h, "user:alice", { roots: {} });
    const stream = new RecordingSink();
    h.mux.setStream(a, stream);
    for (const id of ["r1", "r2", "r3"])
      h.mux.receive(JSON.stringify({ jsonrpc: "2.0", id, method: "roots/list" }));
    expect(stream.messages).toHaveLength(2);
    expect(h.server.received.at(-1)).toMatchObject({ id: "r3", error: { code: ERROR_CODES.limitExceeded } });
  });

  it("bounds a session's resource subscriptions", async () => {
    const h = await harness({ maxSubscriptionsPerSession: 2 });
    await h.initialize();
    const a = await open(h);
    const subscribe = (id: number, uri: string) =>
      h.mux.forward(
        a,
        { jsonrpc: "2.0", id, method: "resources/subscribe", params: { uri } },
        new RecordingSink(),
      );
    const first = [subscribe(1, "u:1"), subscribe(2, "u:2")];
    await settle();
    for (const request of h.server.requests("resources/subscribe")) h.reply(request.id, {});
    await Promise.all(first);
    expect(await subscribe(3, "u:3")).toMatchObject({ id: 3, error: { code: ERROR_CODES.limitExceeded } });
    expect(a.subscriptions.size).toBe(2);
    // Subscribing again to a URI it already has is no new subscription.
    const again = subscribe(4, "u:1");
    await settle();
    h.reply(h.server.last("resources/subscribe").id, {});
    expect(await again).toMatchObject({ id: 4, result: {} });
  });
});
