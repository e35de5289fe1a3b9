import { randomBytes } from "node:crypto";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { readTokens, revokeToken } from "../../../src/auth/token-store.js";
import type { PortalEvent } from "../../../src/events/event-bus.js";
import { type ApiFixture, type FixtureOptions, apiFixture } from "./api-fixture.js";
import { openSse } from "../../helpers/net.js";

const fixtures: ApiFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
});

async function listening(
  options: FixtureOptions = {},
): Promise<{ f: ApiFixture; base: string; port: number }> {
  const f = await apiFixture(options);
  fixtures.push(f);
  await f.http.listen({ host: "127.0.0.1", port: 0 });
  const address = f.http.server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return { f, base: `http://127.0.0.1:${port}/api/v1`, port };
}

function statusEvent(userId: string, extra = ""): PortalEvent {
  return {
    event: "SERVER_STATUS_CHANGED",
    data: {
      user_id: userId,
      server_id: "time",
      old_status: "Pending",
      new_status: "Running",
      container_id: "c1",
      timestamp: new Date().toISOString(),
      ...(extra ? { reason: extra } : {}),
    },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("server-sent events", () => {
  it("streams each caller's events: a user its own, the admin all or one user's", async () => {
    const { f, base } = await listening();
    const alice = await f.tokenFor("alice");
    const aliceStream = await openSse(`${base}/events`, alice);
    const adminStream = await openSse(`${base}/events`, f.admin);
    const bobOnly = await openSse(`${base}/events?user_id=bob`, f.admin);
    expect(aliceStream.status).toBe(200);
    expect(aliceStream.contentType).toMatch(/^text\/event-stream/);
    await until("three subscribers", () => f.api.hub.size === 3);
    f.bus.publish(statusEvent("bob"));
    f.bus.publish(statusEvent("alice"));
    await until(
      "events",
      () => adminStream.events.length === 2 && aliceStream.events.length === 1 && bobOnly.events.length === 1,
    );
    expect(aliceStream.events).toEqual([
      { event: "SERVER_STATUS_CHANGED", data: expect.objectContaining({ user_id: "alice" }) as unknown },
    ]);
    expect(bobOnly.events.map((e) => e.data.user_id)).toEqual(["bob"]);
    expect(adminStream.events.map((e) => e.data.user_id)).toEqual(["bob", "alice"]);
    expect(aliceStream.text()).toContain("event: SERVER_STATUS_CHANGED\ndata: {");
    for (const s of [aliceStream, adminStream, bobOnly]) s.close();
    await until("unsubscribed", () => f.api.hub.size === 0);
  });

  it("refuses another user's stream and missing tokens with HTTP errors", async () => {
    const { f, base } = await listening();
    const alice = await f.tokenFor("alice");
    const other = await openSse(`${base}/events?user_id=bob`, alice);
    expect(other.status).toBe(403);
    const none = await openSse(`${base}/events`, {});
    expect(none.status).toBe(401);
    const bad = await openSse(`${base}/events?user_id=no.t`, f.admin);
    expect(bad.status).toBe(400);
    expect(f.api.hub.size).toBe(0);
  });

  it("sends heartbeats", async () => {
    const { f, base } = await listening({ limits: { heartbeatMs: 30 } });
    const stream = await openSse(`${base}/events`, f.admin);
    await until("a heartbeat", () => stream.text().includes(": heartbeat\n\n"));
    stream.close();
  });

  it("drops a client that stops reading instead of buffering without bound", async () => {
    const logLines: string[] = [];
    const { f, port } = await listening({ limits: { streamBufferBytes: 64 * 1024 }, logLines });
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    socket.write(`GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: ${f.admin.authorization}\r\n\r\n`);
    await until("subscribed", () => f.api.hub.size === 1);
    socket.pause();
    const big = "x".repeat(16 * 1024);
    for (let i = 0; i < 20_000 && f.api.hub.size > 0; i++) {
      f.bus.publish(statusEvent("alice", big));
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(f.api.hub.size).toBe(0);
    expect(f.api.hub.dropped).toBe(1);
    expect(logLines.join("")).toMatch(/live-event client too slow: connection dropped/);
    socket.destroy();
  });
});

describe("WebSocket events", () => {
  function connect(
    url: string,
    headers: Record<string, string>,
  ): Promise<{ ws: WebSocket; messages: PortalEvent[] }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const messages: PortalEvent[] = [];
      ws.on("message", (data: Buffer) => messages.push(JSON.parse(data.toString("utf8")) as PortalEvent));
      ws.once("open", () => resolve({ ws, messages }));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode ?? 0}`)));
      ws.once("error", reject);
    });
  }

  it("streams the same events, filtered per caller", async () => {
    const { f, base } = await listening();
    const wsBase = base.replace("http:", "ws:");
    const alice = await connect(`${wsBase}/ws`, await f.tokenFor("alice"));
    const admin = await connect(`${wsBase}/ws`, f.admin);
    await until("subscribed", () => f.api.hub.size === 2);
    f.bus.publish(statusEvent("bob"));
    f.bus.publish(statusEvent("alice"));
    await until("messages", () => admin.messages.length === 2 && alice.messages.length === 1);
    expect(alice.messages[0]).toMatchObject({ event: "SERVER_STATUS_CHANGED", data: { user_id: "alice" } });
    alice.ws.close();
    admin.ws.close();
    await until("unsubscribed", () => f.api.hub.size === 0);
  });

  it("refuses the upgrade without a token, or for another user's events", async () => {
    const { f, base } = await listening();
    const wsBase = base.replace("http:", "ws:");
    await expect(connect(`${wsBase}/ws`, {})).rejects.toThrow("HTTP 401");
    await expect(connect(`${wsBase}/ws?user_id=bob`, await f.tokenFor("alice"))).rejects.toThrow("HTTP 403");
    expect(f.api.hub.size).toBe(0);
  });

  it("drops a client that stops reading", async () => {
    const { f, port } = await listening({ limits: { streamBufferBytes: 64 * 1024 } });
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    socket.write(
      "GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
        `Authorization: ${f.admin.authorization}\r\n\r\n`,
    );
    await until("subscribed", () => f.api.hub.size === 1);
    socket.pause();
    const big = "x".repeat(16 * 1024);
    for (let i = 0; i < 20_000 && f.api.hub.size > 0; i++) {
      f.bus.publish(statusEvent("alice", big));
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(f.api.hub.size).toBe(0);
    expect(f.api.hub.dropped).toBe(1);
    socket.destroy();
  });

  it("does not hold up the server's shutdown", async () => {
    const { f, base } = await listening();
    const sse = await openSse(`${base}/events`, f.admin);
    const ws = await connect(`${base.replace("http:", "ws:")}/ws`, f.admin);
    const closed = new Promise((r) => ws.ws.once("close", r));
    await until("subscribed", () => f.api.hub.size === 2);
    const started = Date.now();
    await f.http.close();
    expect(Date.now() - started).toBeLessThan(2000);
    await sse.ended;
    await closed;
    expect(f.api.hub.size).toBe(0);
  });
});

describe("live events and their tokens", () => {
  function connectWs(
    url: string,
    headers: Record<string, string>,
  ): Promise<{ ws: WebSocket; messages: PortalEvent[]; closed: Promise<{ code: number; reason: string }> }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const messages: PortalEvent[] = [];
      const closed = new Promise<{ code: number; reason: string }>((done) =>
        ws.once("close", (code, reason) => done({ code, reason: reason.toString("utf8") })),
      );
      ws.on("message", (data: Buffer) => messages.push(JSON.parse(data.toString("utf8")) as PortalEvent));
      ws.once("open", () => resolve({ ws, messages, closed }));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode ?? 0}`)));
      ws.once("error", reject);
    });
  }

  function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
    return Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms),
      ),
    ]);
  }

  async function revokeAll(f: ApiFixture, userId: string): Promise<void> {
    for (const t of await readTokens(f.stateDir))
      if (t.user_id === userId) await revokeToken(f.stateDir, t.id);
  }

  it("closes a stream (SSE and WebSocket) promptly when its token is revoked, and sends nothing after", async () => {
    const { f, base } = await listening({ limits: { tokenRecheckMs: 50 } });
    const alice = await f.tokenFor("alice");
    const bob = await f.tokenFor("bob");
    const sse = await openSse(`${base}/events`, alice);
    const ws = await connectWs(`${base.replace("http:", "ws:")}/ws`, alice);
    const bobStream = await openSse(`${base}/events`, bob);
    await until("subscribed", () => f.api.hub.size === 3);
    await revokeAll(f, "alice");
    const revokedAt = Date.now();
    await within(2000, "SSE closed", sse.ended);
    expect(await within(2000, "WebSocket closed", ws.closed)).toEqual({
      code: 1008,
      reason: "token revoked",
    });
    expect(Date.now() - revokedAt).toBeLessThan(2000);
    f.bus.publish(statusEvent("alice"));
    f.bus.publish(statusEvent("bob"));
    await until("bob's event", () => bobStream.events.length === 1);
    expect(sse.events).toEqual([]);
    expect(ws.messages).toEqual([]);
    expect(f.api.hub.size).toBe(1);
    // The same token cannot open a new one either.
    expect((await openSse(`${base}/events`, alice)).status).toBe(401);
    bobStream.close();
  });

  it("caps the live connections of one token (429 with a JSON error), for SSE and WebSocket alike", async () => {
    const { f, base } = await listening({ limits: { liveConnectionsPerToken: 2 } });
    const wsBase = base.replace("http:", "ws:");
    const alice = await f.tokenFor("alice");
    const first = await openSse(`${base}/events`, alice);
    const second = await connectWs(`${wsBase}/ws`, alice);
    await until("two", () => f.api.hub.size === 2);
    const third = await fetch(`${base}/events`, { headers: alice });
    expect(third.status).toBe(429);
    expect(await third.json()).toMatchObject({ statusCode: 429, code: "TOO_MANY_STREAMS" });
    await expect(connectWs(`${wsBase}/ws`, alice)).rejects.toThrow("HTTP 429");
    // Per token: another token (of the same user, or the admin) is counted apart.
    const otherToken = await openSse(`${base}/events`, await f.tokenFor("alice"));
    expect(otherToken.status).toBe(200);
    await until("three", () => f.api.hub.size === 3);
    // A freed slot can be used again.
    first.close();
    await until("freed", () => f.api.hub.size === 2);
    const again = await openSse(`${base}/events`, alice);
    expect(again.status).toBe(200);
    for (const s of [again, otherToken]) s.close();
    second.ws.close();
    await until("all closed", () => f.api.hub.size === 0);
  });
});
