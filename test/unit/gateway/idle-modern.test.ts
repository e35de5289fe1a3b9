// MCP 2026-07-28 (stateless) clients of an idle server, over real loopback HTTP: the endpoint with its idle gate,
// the era router and the modern front onto a multiplexer, the server a real SDK v1 McpServer that "runs" only
// while the test's controller has started it (a new process, so a new initialize, at every start). A modern
// request must be held, wake the server through the same wake request as a 2025-era one, complete, and count as
// traffic.
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from "@modelcontextprotocol/client";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import type { AuthResult } from "../../../src/auth/authenticate.js";
import { GatewayTrafficFile, gatewayTrafficPath } from "../../../src/contracts/gateway-traffic.js";
import { idleStatePath } from "../../../src/contracts/idle-state.js";
import { wakeRequestPath } from "../../../src/contracts/wake-request.js";
import { Endpoint, type ServerTarget, type Upstream } from "../../../src/gateway/endpoint.js";
import type { ToolAccess, ToolCallOutcome } from "../../../src/gateway/handler.js";
import { IdleGate } from "../../../src/gateway/idle-gate.js";
import { createGatewayMetrics } from "../../../src/gateway/metrics.js";
import { EraRouter } from "../../../src/gateway/modern/era-router.js";
import { ModernFront } from "../../../src/gateway/modern/front.js";
import { MuxBackend } from "../../../src/gateway/modern/mux-backend.js";
import { parseAllowedOrigins } from "../../../src/gateway/origin.js";
import { StdioHttpHandler } from "../../../src/gateway/stdio-http.js";
import { StdioMultiplexer } from "../../../src/gateway/stdio-mux.js";
import { createLogger } from "../../../src/observability/logger.js";
import { writeJsonAtomic } from "../../../src/util/atomic-write.js";
import { systemClock } from "../../../src/util/clock.js";
import { waitFor } from "../../helpers/daemon.js";
import { freePort } from "../../helpers/net.js";
import { connectPipedServer } from "../../fixtures/mcp-servers/mux-pipe.js";

const quiet = createLogger({
  level: "silent",
  destination: new Writable({ write: (_c, _e, done) => done() }),
});

/**
 * A stdio server's upstream as the gateway builds it (era router, legacy handler and modern front on one
 * multiplexer), whose "container" is a fresh McpServer attached while the target runs.
 */
class PipedStdioUpstream implements Upstream {
  readonly mux = new StdioMultiplexer({
    clock: systemClock,
    serverUserId: "alice",
    clientInfo: { name: "gw", version: "0" },
    readyWaitMs: 5000,
  });
  readonly handler = new EraRouter(
    new StdioHttpHandler(this.mux, { keepAliveMs: 0 }),
    () => new ModernFront(new MuxBackend(this.mux, { clock: systemClock, readyWaitMs: 5000 })),
  );
  /** Server processes started so far. */
  starts = 0;
  /** The process exits before it answers anything (a crash on start). */
  crashes = false;
  private server: Promise<McpServer> | undefined;

  update(target: ServerTarget): void {
    if (target.state === "running" && !this.server) {
      this.starts += 1;
      if (this.crashes) return;
      this.server = connectPipedServer(this.mux);
    } else if (target.state !== "running" && this.server) {
      const server = this.server;
      this.server = undefined;
      this.mux.disconnect("container stopped");
      void server.then((s) => s.close());
    }
  }
  probe(): Promise<void> {
    return Promise.resolve();
  }
  ready(timeoutMs: number): Promise<boolean> {
    return this.mux.whenReady(timeoutMs).then(
      () => true,
      () => false,
    );
  }
  async close(): Promise<void> {
    this.mux.closeAll("test over");
    await (await this.server)?.close();
  }
}

const ALICE: AuthResult = { ok: true, caller: { kind: "user", userId: "alice", tokenId: "a" } };

interface Harness {
  url: URL;
  stateDir: string;
  gate: IdleGate;
  registry: Registry;
  upstream: PipedStdioUpstream;
  endpoint: Endpoint;
  target: ServerTarget;
}

const open: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close().catch(() => undefined);
});

/** `tools`: the caller's tool policy, as the gateway's access control admits requests with it. */
async function harness(tools?: ToolAccess): Promise<Harness> {
  const stateDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-idle-modern-"));
  open.push(() => rm(stateDir, { recursive: true, force: true }));
  const registry = new Registry();
  const gate = new IdleGate({
    stateDir,
    clock: systemClock,
    logger: quiet,
    registry,
    wakeTimeoutMs: 10_000,
    tuning: { viewPollMs: 50, wakeRetryMs: 200, trafficWriteMs: 50 },
  });
  await gate.start();
  open.push(() => gate.stop());
  const upstream = new PipedStdioUpstream();
  const target: ServerTarget = {
    key: "alice/s",
    userId: "alice",
    serverId: "s",
    hostPort: await freePort(),
    transport: "stdio",
    containerId: "c1",
    state: "exited",
    policy: { intervalMs: 60_000, timeoutMs: 1000, retries: 2, startPeriodMs: 60_000 },
    containerPort: undefined,
  };
  const endpoint = new Endpoint(target, {
    upstream,
    listenHost: "127.0.0.1",
    authenticate: () => Promise.resolve(ALICE),
    origins: { allowed: parseAllowedOrigins(""), publishHost: "127.0.0.1" },
    clock: systemClock,
    logger: quiet,
    metrics: createGatewayMetrics(registry, { defaultMetrics: false }),
    onHealth: () => undefined,
    readyWaitMs: 500,
    idle: gate,
    ...(tools ? { admit: () => Promise.resolve({ ok: true as const, tools }) } : {}),
  });
  endpoint.open();
  open.push(async () => {
    await endpoint.close();
    await upstream.close();
  });
  await waitFor("listening", () => endpoint.isListening, 5000);
  return {
    url: new URL(`http://127.0.0.1:${target.hostPort}/mcp`),
    stateDir,
    gate,
    registry,
    upstream,
    endpoint,
    target,
  };
}

async function markIdle(h: Harness, idle: boolean): Promise<void> {
  await writeJsonAtomic(idleStatePath(h.stateDir), {
    version: 1,
    updated_at: new Date().toISOString(),
    servers: idle
      ? [{ user_id: "alice", server_id: "s", container_id: "c1", since: new Date().toISOString() }]
      : [],
  });
  await h.gate.view.refresh();
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/** The controller's part, as the wake inbox does it: a wake request starts the container, then idle.json lets go. */
function controllerWakes(h: Harness): { wakes: number; stop(): void } {
  const state = { wakes: 0, stopped: false };
  const file = wakeRequestPath(h.stateDir, "alice", "s");
  void (async () => {
    while (!state.stopped) {
      if (await exists(file)) {
        state.wakes += 1;
        await markIdle(h, false);
        await rm(file, { force: true });
        h.endpoint.update({ ...h.target, state: "running" });
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    get wakes() {
      return state.wakes;
    },
    stop: () => {
      state.stopped = true;
    },
  };
}

const MODERN_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": "2026-07-28",
};
const envelope = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientCapabilities": {},
};

describe("MCP 2026-07-28 requests for an idle server", () => {
  it("an SDK v2 client pinned to 2026-07-28 wakes an idle stdio server through the gate: held, one wake, completed, traffic", async () => {
    const h = await harness();
    await markIdle(h, true);
    const controller = controllerWakes(h);
    open.push(() => Promise.resolve(controller.stop()));
    const client = new ModernClient(
      { name: "modern-idle-test", version: "2" },
      { capabilities: {}, versionNegotiation: { mode: { pin: "2026-07-28" } } },
    );
    // Its first request (server/discover) needs the server: held until the wake, then answered.
    await client.connect(new ModernTransport(h.url));
    open.push(() => client.close());
    expect(client.getNegotiatedProtocolVersion()).toBe("2026-07-28");
    expect(controller.wakes).toBe(1);
    expect(h.upstream.starts).toBe(1);
    const result = await client.callTool({ name: "add", arguments: { a: 2, b: 40 } });
    expect(result.content).toEqual([{ type: "text", text: "42" }]);
    expect(await h.registry.getSingleMetricAsString("mcp_portal_gateway_wakes_total")).toMatch(
      /result="success"\} 1/,
    );
    // Counted as traffic for the controller's idle clock.
    const traffic = await waitFor("traffic.json", async () => {
      const read = await readFile(gatewayTrafficPath(h.stateDir), "utf8").catch(() => undefined);
      return read === undefined ? undefined : GatewayTrafficFile.parse(JSON.parse(read));
    });
    expect(traffic.servers).toMatchObject([{ user_id: "alice", server_id: "s" }]);
  });

  it("a 2026-07-28 ping for an idle server is answered as a complete result without waking it; its notifications wake nothing", async () => {
    const h = await harness();
    await markIdle(h, true);
    const res = await fetch(h.url, {
      method: "POST",
      headers: { ...MODERN_HEADERS, "mcp-method": "ping" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 5, method: "ping", params: { _meta: envelope } }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ jsonrpc: "2.0", id: 5, result: { resultType: "complete" } });
    const note = await fetch(h.url, {
      method: "POST",
      headers: MODERN_HEADERS,
      body: JSON.stringify({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { _meta: envelope },
      }),
    });
    expect(note.status).toBe(202);
    await new Promise((r) => setTimeout(r, 150));
    expect(await exists(wakeRequestPath(h.stateDir, "alice", "s"))).toBe(false);
    expect(await exists(gatewayTrafficPath(h.stateDir))).toBe(false);
    expect(h.upstream.starts).toBe(0);
  });

  it("a 2026-07-28 tools/call the caller's tool policy refuses is answered through the endpoint without waking the server", async () => {
    const outcomes: ToolCallOutcome[] = [];
    const h = await harness({
      filter: { visible: (name) => name === "add" },
      restricted: true,
      refusal: (name) => `tool ${name ?? "(none)"} is not allowed for this caller`,
      begin: () => ({ finish: (outcome) => void outcomes.push(outcome) }),
    });
    await markIdle(h, true);
    const res = await fetch(h.url, {
      method: "POST",
      headers: { ...MODERN_HEADERS, "mcp-method": "tools/call" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 8,
        method: "tools/call",
        params: { name: "secret", arguments: {}, _meta: envelope },
      }),
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { id: number; error: { message: string } };
    expect(answer.id).toBe(8);
    expect(answer.error.message).toMatch(/secret is not allowed/);
    expect(outcomes).toEqual(["refused"]);
    await new Promise((r) => setTimeout(r, 150));
    expect(await exists(wakeRequestPath(h.stateDir, "alice", "s"))).toBe(false);
    expect(await exists(gatewayTrafficPath(h.stateDir))).toBe(false);
    expect(h.upstream.starts).toBe(0);
  });

  it("a 2026-07-28 subscriptions/listen stream is traffic when it opens, yet does not keep the server awake", async () => {
    const h = await harness();
    h.endpoint.update({ ...h.target, state: "running" });
    const listening = new AbortController();
    open.push(() => Promise.resolve(listening.abort()));
    const res = await fetch(h.url, {
      method: "POST",
      headers: { ...MODERN_HEADERS, "mcp-method": "subscriptions/listen" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 9,
        method: "subscriptions/listen",
        params: { notifications: { toolsListChanged: true }, _meta: envelope },
      }),
      signal: listening.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const lastRequest = async () => {
      const read = await readFile(gatewayTrafficPath(h.stateDir), "utf8").catch(() => undefined);
      return read === undefined
        ? undefined
        : GatewayTrafficFile.parse(JSON.parse(read)).servers[0]?.last_request_at;
    };
    const first = await waitFor("traffic.json", lastRequest);
    // A request in progress is re-stamped at every write (50 ms here); the open stream must not be.
    await new Promise((r) => setTimeout(r, 400));
    expect(await lastRequest()).toBe(first);
  });

  it("a server that stops again right after its wake (a crash on start) gets the client a clear error at once, not at the bound", async () => {
    const h = await harness();
    h.upstream.crashes = true;
    await markIdle(h, true);
    const file = wakeRequestPath(h.stateDir, "alice", "s");
    void (async () => {
      await waitFor("wake requested", () => exists(file), 5000);
      await markIdle(h, false);
      await rm(file, { force: true });
      h.endpoint.update({ ...h.target, state: "running" });
      // It exits before it answers its initialize.
      await new Promise((r) => setTimeout(r, 100));
      h.endpoint.update({ ...h.target, state: "exited" });
    })();
    const started = Date.now();
    const res = await fetch(h.url, {
      method: "POST",
      headers: { ...MODERN_HEADERS, "mcp-method": "tools/list" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 11, method: "tools/list", params: { _meta: envelope } }),
    });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { id: number; error: { code: number; message: string } };
    expect(body).toMatchObject({ id: 11, error: { code: -32000 } });
    expect(body.error.message).toMatch(/could not be woken: it stopped again right after its start/);
    // The wake bound is 10 s here.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await h.registry.getSingleMetricAsString("mcp_portal_gateway_wakes_total")).toMatch(
      /result="error"\} 1/,
    );
  });
});
