// The endpoint's checks (origin, token, container state) and the HTTP proxy, over real loopback HTTP.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import type { AuthResult } from "../../../src/auth/authenticate.js";
import { Endpoint, type ServerTarget, type Upstream } from "../../../src/gateway/endpoint.js";
import type { RequestContext } from "../../../src/gateway/handler.js";
import type { HealthState } from "../../../src/gateway/health.js";
import {
  DEFAULT_PROXY_LIMITS,
  HttpProxyHandler,
  type HttpProxyOptions,
} from "../../../src/gateway/http-proxy.js";
import { createGatewayMetrics } from "../../../src/gateway/metrics.js";
import { parseAllowedOrigins } from "../../../src/gateway/origin.js";
import { ProbeError } from "../../../src/gateway/probe-failure.js";
import { createLogger } from "../../../src/observability/logger.js";
import { FakeClock, settle } from "../../helpers/fake-clock.js";
import { freePort } from "../../helpers/net.js";

const logger = createLogger({
  level: "silent",
  destination: new Writable({ write: (_c, _e, done) => done() }),
});

class FakeUpstream implements Upstream {
  readonly calls: RequestContext[] = [];
  probeResult: Error | undefined;
  probes = 0;
  readonly handler = {
    handle: (_req: http.IncomingMessage, res: http.ServerResponse, ctx: RequestContext) => {
      this.calls.push(ctx);
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    },
  };
  update(): void {}
  probe(): Promise<void> {
    this.probes += 1;
    return this.probeResult ? Promise.reject(this.probeResult) : Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const TOKENS: Record<string, AuthResult> = {
  "Bearer alice-token": { ok: true, caller: { kind: "user", userId: "alice", tokenId: "a" } },
  "Bearer bob-token": { ok: true, caller: { kind: "user", userId: "bob", tokenId: "b" } },
  "Bearer admin-token": { ok: true, caller: { kind: "admin" } },
};

describe("Endpoint", () => {
  const opened: Endpoint[] = [];
  afterEach(async () => {
    for (const endpoint of opened.splice(0)) await endpoint.close();
  });

  async function start(state = "running") {
    const clock = new FakeClock();
    const upstream = new FakeUpstream();
    const metrics = createGatewayMetrics(new Registry(), { defaultMetrics: false });
    const healths: HealthState[] = [];
    const target: ServerTarget = {
      key: "alice/time",
      userId: "alice",
      serverId: "time",
      hostPort: await freePort(),
      transport: "stdio",
      containerId: "c1",
      state,
      policy: { intervalMs: 5000, timeoutMs: 1000, retries: 2, startPeriodMs: 0 },
      containerPort: undefined,
    };
    const endpoint = new Endpoint(target, {
      upstream,
      listenHost: "127.0.0.1",
      authenticate: (header) =>
        Promise.resolve(
          TOKENS[header ?? ""] ?? {
            ok: false,
            statusCode: 401,
            code: "UNAUTHENTICATED",
            message: "invalid token",
          },
        ),
      origins: { allowed: parseAllowedOrigins(""), publishHost: "127.0.0.1" },
      clock,
      logger,
      metrics,
      onHealth: (_t, health) => healths.push(health),
      readyWaitMs: 1000,
    });
    opened.push(endpoint);
    endpoint.open();
    for (let i = 0; i < 50 && !endpoint.isListening; i++) await new Promise((r) => setTimeout(r, 10));
    const url = `http://127.0.0.1:${target.hostPort}/mcp`;
    return { clock, upstream, endpoint, healths, url, target, metrics };
  }

  it("checks origin and token before anything reaches the server", async () => {
    const { upstream, url, metrics } = await start();
    const call = (headers: Record<string, string>) => fetch(url, { method: "POST", headers, body: "{}" });
    const none = await call({});
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await call({ authorization: "Bearer wrong" })).status).toBe(401);
    expect((await call({ authorization: "Bearer bob-token" })).status).toBe(403);
    expect((await call({ authorization: "Bearer alice-token", origin: "http://evil.example" })).status).toBe(
      403,
    );
    expect(upstream.calls).toEqual([]);
    expect(
      (await call({ authorization: "Bearer alice-token", origin: "http://localhost:6274" })).status,
    ).toBe(200);
    expect((await call({ authorization: "Bearer admin-token" })).status).toBe(200);
    expect(upstream.calls).toEqual([{ owner: "user:alice" }, { owner: "admin" }]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/mcp_portal_gateway_requests_total\{transport="stdio",result="unauthenticated"\} 2/);
    expect(text).toMatch(/mcp_portal_gateway_requests_total\{transport="stdio",result="forbidden"\} 1/);
    expect(text).toMatch(/mcp_portal_gateway_requests_total\{transport="stdio",result="origin_rejected"\} 1/);
    expect(text).toMatch(/mcp_portal_gateway_requests_total\{transport="stdio",result="success"\} 2/);
  });

  it("probes a running server: Starting, then Ready; Unhealthy after `retries` failures", async () => {
    const { clock, upstream, endpoint } = await start();
    expect(endpoint.currentHealth.state).toBe("Starting");
    clock.advance(0);
    await settle();
    expect(endpoint.currentHealth.state).toBe("Ready");
    upstream.probeResult = new ProbeError("ping", { kind: "timeout", ms: 1000 });
    clock.advance(5000);
    await settle();
    expect(endpoint.currentHealth).toMatchObject({ state: "Ready", consecutiveFailures: 1 });
    clock.advance(5000);
    await settle();
    expect(endpoint.currentHealth).toMatchObject({ state: "Unhealthy", consecutiveFailures: 2 });
    expect(endpoint.currentHealth.message).toBe(
      "MCP probe failed (2 in a row): ping: no answer within 1000 ms",
    );
    upstream.probeResult = undefined;
    clock.advance(5000);
    await settle();
    expect(endpoint.currentHealth.state).toBe("Ready");
    expect(upstream.probes).toBe(4);
  });

  it("keeps the text of an unexpected probe error out of its health message", async () => {
    const { clock, upstream, endpoint } = await start();
    upstream.probeResult = Object.assign(new Error("REMOTE-TEXT-7f3a said no"), { code: "not-an-errno" });
    clock.advance(0);
    await settle();
    expect(endpoint.currentHealth.message).toBe(
      "MCP probe failed (1 in a row): probe failed (unexpected error)",
    );
    upstream.probeResult = Object.assign(new Error("REMOTE-TEXT-7f3a"), { code: "ECONNRESET" });
    clock.advance(1000);
    await settle();
    expect(endpoint.currentHealth.message).toBe("MCP probe failed (2 in a row): probe failed (ECONNRESET)");
  });

  it("marks a stopped container Unhealthy at once, answers 503 after a bounded wait, and serves again once it runs", async () => {
    const { clock, upstream, endpoint, url, target } = await start();
    clock.advance(0);
    await settle();
    endpoint.update({ ...target, state: "exited" });
    expect(endpoint.currentHealth).toMatchObject({ state: "Unhealthy", message: "container is exited" });
    const headers = { authorization: "Bearer alice-token" };
    // The request's bounded wait is a timer on the fake clock: advance it only once the request is waiting (on a
    // loaded machine the request can take longer than any fixed sleep to arrive).
    const timers = clock.pendingDelays().length;
    const waiting = fetch(url, { method: "POST", headers, body: "{}" });
    await until(() => clock.pendingDelays().length > timers);
    clock.advance(1000);
    expect((await waiting).status).toBe(503);
    // A request waiting while the controller restarts the container goes through once it runs.
    const before = clock.pendingDelays().length;
    const second = fetch(url, { method: "POST", headers, body: "{}" });
    await until(() => clock.pendingDelays().length > before);
    endpoint.update({ ...target, state: "running" });
    expect((await second).status).toBe(200);
    expect(upstream.calls).toHaveLength(1);
    expect(endpoint.currentHealth.state).toBe("Starting");
  });

  it("reports a port it cannot listen on as Unhealthy", async () => {
    const blocker = http.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const { clock, endpoint, target } = await start();
      endpoint.update({ ...target, hostPort: port });
      await new Promise((r) => setTimeout(r, 50));
      expect(endpoint.isListening).toBe(false);
      clock.advance(0);
      await settle();
      expect(endpoint.currentHealth).toMatchObject({ state: "Unhealthy" });
      expect(endpoint.currentHealth.message).toMatch(/cannot listen on 127.0.0.1:\d+ \(EADDRINUSE\)/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

/** Polls (real time, bounded) until `ready` holds. */
async function until(ready: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("HttpProxyHandler", () => {
  // The proxy forwards JSON-RPC only (it reads every body for the tool policy).
  const PING = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
  const servers: http.Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  async function serve(handler: http.RequestListener): Promise<number> {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  }

  async function proxyTo(
    port: number,
    options: Partial<Pick<HttpProxyOptions, "responseTimeoutMs" | "maxConcurrent">> = {},
  ) {
    const agent = new http.Agent({ keepAlive: true });
    const proxy = new HttpProxyHandler({
      target: () => Promise.resolve({ host: "127.0.0.1", port }),
      agent,
      ...options,
    });
    return serve((req, res) => void proxy.handle(req, res, { owner: "admin" }));
  }

  it("forwards requests without the client's Authorization, and streams SSE responses unbuffered", async () => {
    let release: () => void = () => undefined;
    const seen: http.IncomingHttpHeaders[] = [];
    const upstream = await serve((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { "content-type": "text/event-stream", "mcp-session-id": "s-1" });
      res.write('event: message\ndata: {"n":1}\n\n');
      release = () => res.end('event: message\ndata: {"n":2}\n\n');
    });
    const port = await proxyTo(upstream);
    const res = await fetch(`http://127.0.0.1:${port}/mcp?x=1`, {
      method: "POST",
      headers: {
        authorization: "Bearer portal-token",
        "content-type": "application/json",
        "mcp-session-id": "s-1",
      },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("mcp-session-id")).toBe("s-1");
    const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    // The first event arrives while the upstream still holds the response open.
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('{"n":1}');
    release();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain('{"n":2}');
    expect(seen[0]?.authorization).toBeUndefined();
    expect(seen[0]?.["mcp-session-id"]).toBe("s-1");
    expect(seen[0]?.host).toBe(`127.0.0.1:${upstream}`);
    expect(seen[0]?.["x-forwarded-host"]).toBe(`127.0.0.1:${port}`);
  });

  it("has documented defaults: a 300 s response timeout, 256 requests at once per server", () => {
    expect(DEFAULT_PROXY_LIMITS).toEqual({ responseTimeoutMs: 300_000, maxConcurrent: 256 });
  });

  it("answers 504 with a JSON-RPC error when the server does not start its answer in time", async () => {
    const upstream = await serve((req) => req.resume());
    const port = await proxyTo(upstream, { responseTimeoutMs: 300 });
    const started = Date.now();
    const res = await fetch(`http://127.0.0.1:${port}/mcp`, {
      method: "POST",
      body: PING,
      signal: AbortSignal.timeout(5000),
    });
    expect(res.status).toBe(504);
    expect(await res.json()).toEqual({
      jsonrpc: "2.0",
      id: null,
      error: { code: -32001, message: "no answer within 300 ms" },
    });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("cuts a streamed answer once it is quiet for the timeout; activity keeps it going; GET streams are exempt", async () => {
    const closed: string[] = [];
    const upstream = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.on("close", () => closed.push(req.method ?? ""));
      res.flushHeaders();
      if (req.method === "GET") return;
      let n = 0;
      const timer = setInterval(() => {
        n += 1;
        res.write(`event: message\ndata: {"n":${n}}\n\n`);
        if (n === 8) clearInterval(timer);
      }, 100);
      res.on("close", () => clearInterval(timer));
    });
    const port = await proxyTo(upstream, { responseTimeoutMs: 400 });
    const get = await fetch(`http://127.0.0.1:${port}/mcp`, { headers: { accept: "text/event-stream" } });
    expect(get.status).toBe(200);
    const res = await fetch(`http://127.0.0.1:${port}/mcp`, { method: "POST", body: PING });
    let text = "";
    const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    let failed = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    } catch {
      failed = true;
    }
    // 8 events 100 ms apart (each restarting the 400 ms timeout) all arrived, then the quiet stream was cut.
    expect(text.match(/event: message/g)).toHaveLength(8);
    expect(failed).toBe(true);
    expect(closed).toEqual(["POST"]);
    // The GET stream, quiet all along for longer than the timeout, is still open.
    await new Promise((r) => setTimeout(r, 200));
    expect(closed).toEqual(["POST"]);
    await get.body?.cancel();
  });

  it("answers 429 with a JSON-RPC error beyond the requests one server may have at once", async () => {
    const hold: http.ServerResponse[] = [];
    const upstream = await serve((req, res) => {
      req.resume();
      hold.push(res);
    });
    const port = await proxyTo(upstream, { maxConcurrent: 2 });
    const url = `http://127.0.0.1:${port}/mcp`;
    const first = [fetch(url, { method: "POST", body: PING }), fetch(url, { method: "POST", body: PING })];
    for (let i = 0; i < 100 && hold.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const third = await fetch(url, { method: "POST", body: PING });
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("1");
    expect(await third.json()).toEqual({
      jsonrpc: "2.0",
      id: null,
      error: { code: -32003, message: "too many requests in flight to this server (limit 2)" },
    });
    hold.shift()!.writeHead(200).end("{}");
    expect((await first[0]!).status).toBe(200);
    const fourth = fetch(url, { method: "POST", body: PING });
    for (let i = 0; i < 100 && hold.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    for (const res of hold.splice(0)) res.writeHead(200).end("{}");
    expect((await fourth).status).toBe(200);
    expect((await first[1]!).status).toBe(200);
  });

  it("answers 502 when the server refuses connections, 404 outside the MCP paths", async () => {
    const closedPort = await freePort();
    const port = await proxyTo(closedPort);
    const res = await fetch(`http://127.0.0.1:${port}/mcp`, { method: "POST", body: PING });
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({
      error: { code: -32000, message: expect.stringContaining("ECONNREFUSED") as unknown },
    });
    expect((await fetch(`http://127.0.0.1:${port}/admin`)).status).toBe(404);
  });
});
