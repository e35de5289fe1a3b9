// The gateway's side of scale to zero, without an engine: the gate in front of a server that a test marks idle
// (idle.json) and "starts" itself when a wake request appears, as the controller would.
import http from "node:http";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { idleStatePath } from "../../../src/contracts/idle-state.js";
import { gatewayTrafficPath } from "../../../src/contracts/gateway-traffic.js";
import { wakeRequestPath } from "../../../src/contracts/wake-request.js";
import type { ToolAccess, ToolCallOutcome } from "../../../src/gateway/handler.js";
import { IdleGate } from "../../../src/gateway/idle-gate.js";
import { createLogger } from "../../../src/observability/logger.js";
import { writeJsonAtomic } from "../../../src/util/atomic-write.js";
import { systemClock } from "../../../src/util/clock.js";
import { waitFor } from "../../helpers/daemon.js";

const quiet = createLogger({
  level: "silent",
  destination: new Writable({ write: (_c, _e, done) => done() }),
});

interface Harness {
  url: string;
  stateDir: string;
  gate: IdleGate;
  registry: Registry;
  target: { userId: string; serverId: string; transport: string; running: boolean };
  /** Calls of the served handler (what reached "the server"). */
  served: string[];
  /** Resolvers of requests waiting for the container to run. */
  start(): void;
  close(): Promise<void>;
}

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

async function harness(
  transport = "streamable-http",
  wakeTimeoutMs = 5000,
  tools?: ToolAccess,
): Promise<Harness> {
  const stateDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-idle-gate-"));
  const registry = new Registry();
  const gate = new IdleGate({
    stateDir,
    clock: systemClock,
    logger: quiet,
    registry,
    wakeTimeoutMs,
    tuning: { viewPollMs: 50, wakeRetryMs: 200, trafficWriteMs: 50 },
  });
  await gate.start();
  const target = { userId: "alice", serverId: "s", transport, running: false };
  const served: string[] = [];
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    void (async () => {
      const admitted = await gate.admit(
        req,
        res,
        { ...target },
        {
          running: (ms) =>
            new Promise<boolean>((resolve) => {
              if (target.running) return resolve(true);
              const done = () => {
                clearTimeout(timer);
                waiters.delete(done);
                resolve(target.running);
              };
              const timer = setTimeout(done, ms);
              waiters.add(done);
            }),
        },
        tools,
      );
      if (!admitted) return;
      let body = "";
      for await (const chunk of admitted.req) body += String(chunk);
      served.push(`${req.method} ${body}${admitted.withoutContainer ? " (without container)" : ""}`);
      res.writeHead(200, { "content-type": "application/json" }).end('{"served":true}');
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const h: Harness = {
    url: `http://127.0.0.1:${port}/mcp`,
    stateDir,
    gate,
    registry,
    target,
    served,
    start: () => {
      target.running = true;
      for (const w of [...waiters]) w();
    },
    close: async () => {
      await gate.stop();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(stateDir, { recursive: true, force: true });
    },
  };
  open.push(h);
  return h;
}

async function markIdle(h: Harness, refused?: { at: string; reason: string; message: string }) {
  await writeJsonAtomic(idleStatePath(h.stateDir), {
    version: 1,
    updated_at: new Date().toISOString(),
    servers: [
      {
        user_id: "alice",
        server_id: "s",
        container_id: "c1",
        since: new Date().toISOString(),
        ...(refused ? { wake_refused: refused } : {}),
      },
    ],
  });
  await h.gate.view.refresh();
}

const rpc = (id: number, method: string) => JSON.stringify({ jsonrpc: "2.0", id, method, params: {} });
const post = (h: Harness, body: string) =>
  fetch(h.url, { method: "POST", headers: { "content-type": "application/json" }, body });
const exists = (file: string) =>
  readFile(file).then(
    () => true,
    () => false,
  );

describe("the idle gate", () => {
  it("answers a tools/call the caller's tool policy refuses without waking the server, and audits it refused", async () => {
    const outcomes: [string | undefined, ToolCallOutcome][] = [];
    const tools: ToolAccess = {
      filter: { visible: (name) => name === "allowed" },
      restricted: true,
      refusal: (name) => `tool ${name ?? "(none)"} is not allowed for this caller`,
      begin: (tool) => ({ finish: (outcome) => void outcomes.push([tool, outcome]) }),
    };
    const h = await harness("streamable-http", 5000, tools);
    await markIdle(h);
    const call = (id: number, name: string) =>
      JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: {} } });
    const res = await post(h, call(4, "secret"));
    expect(res.status).toBe(200);
    const refusal = (await res.json()) as { id: number; error: { message: string } };
    expect(refusal.id).toBe(4);
    expect(refusal.error.message).toMatch(/secret is not allowed/);
    // A batch of pings and refused calls is answered whole, in order.
    const batch = await post(h, `[${rpc(5, "ping")},${call(6, "other")}]`);
    expect(((await batch.json()) as { id: number }[]).map((a) => a.id)).toEqual([5, 6]);
    expect(outcomes).toEqual([
      ["secret", "refused"],
      ["other", "refused"],
    ]);
    expect(h.served).toEqual([]);
    expect(await exists(wakeRequestPath(h.stateDir, "alice", "s"))).toBe(false);
    await new Promise((r) => setTimeout(r, 120));
    expect(await exists(gatewayTrafficPath(h.stateDir))).toBe(false);
    // A call it may make wakes the server as before.
    // (Left waiting: the harness closes under it.)
    void post(h, call(7, "allowed")).catch(() => undefined);
    await waitFor("wake requested", () => exists(wakeRequestPath(h.stateDir, "alice", "s")), 3000);
  });

  it("answers a ping (and notifications) for an idle server itself: no wake, no traffic", async () => {
    const h = await harness();
    await markIdle(h);
    const res = await post(h, rpc(7, "ping"));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ jsonrpc: "2.0", id: 7, result: {} });
    const note = await post(h, JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled" }));
    expect(note.status).toBe(202);
    expect(h.served).toEqual([]);
    expect(await exists(wakeRequestPath(h.stateDir, "alice", "s"))).toBe(false);
    await new Promise((r) => setTimeout(r, 120));
    expect(await exists(gatewayTrafficPath(h.stateDir))).toBe(false);
  });

  it("does not wake an idle HTTP server for an event stream (405); a stdio server's stream is the gateway's", async () => {
    const h = await harness();
    await markIdle(h);
    const get = await fetch(h.url, { headers: { accept: "text/event-stream" } });
    expect(get.status).toBe(405);
    const stdio = await harness("stdio");
    await markIdle(stdio);
    await fetch(stdio.url, { headers: { accept: "text/event-stream" } });
    expect(stdio.served).toEqual(["GET  (without container)"]);
  });

  it("holds a request while the controller wakes the server; concurrent requests share one wake", async () => {
    const h = await harness();
    await markIdle(h);
    const calls = [post(h, rpc(1, "tools/list")), post(h, rpc(2, "tools/call"))];
    const file = wakeRequestPath(h.stateDir, "alice", "s");
    await waitFor("wake requested", () => exists(file), 3000);
    const request = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    expect(request).toMatchObject({ version: 1, user_id: "alice", server_id: "s" });
    expect(h.served).toEqual([]);
    // The controller: consumes the request, clears idle.json, starts the container.
    await rm(file);
    await writeJsonAtomic(idleStatePath(h.stateDir), {
      version: 1,
      updated_at: new Date().toISOString(),
      servers: [],
    });
    h.start();
    const answers = await Promise.all(calls);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    expect(h.served.sort()).toEqual([`POST ${rpc(1, "tools/list")}`, `POST ${rpc(2, "tools/call")}`]);
    const metrics = await h.registry.metrics();
    expect(metrics).toMatch(/mcp_portal_gateway_wakes_total\{result="success"\} 1/);
    expect(metrics).toMatch(/mcp_portal_gateway_wake_duration_seconds_count 1/);
    // Requests were traffic: the controller learns of them.
    await waitFor("traffic written", () => exists(gatewayTrafficPath(h.stateDir)), 3000);
  });

  it("a refused wake answers at once with the limit's reason, under the request's id", async () => {
    const h = await harness();
    await markIdle(h);
    const pending = post(h, rpc(3, "tools/call"));
    await waitFor("wake requested", () => exists(wakeRequestPath(h.stateDir, "alice", "s")), 3000);
    await markIdle(h, {
      at: new Date(Date.now() + 10).toISOString(),
      reason: "LimitExceeded",
      message: "max_containers 1 reached",
    });
    const res = await pending;
    expect(res.status).toBe(503);
    const body = (await res.json()) as { id: number; error: { code: number; message: string } };
    expect(body.id).toBe(3);
    expect(body.error.code).toBe(-32000);
    expect(body.error.message).toMatch(/LimitExceeded: max_containers 1 reached/);
    expect(await h.registry.metrics()).toMatch(/mcp_portal_gateway_wakes_total\{result="refused"\} 1/);
  });

  it("past the bound the client gets a clear JSON-RPC error, and the request file is withdrawn", async () => {
    const h = await harness("streamable-http", 600);
    await markIdle(h);
    const res = await post(h, rpc(4, "tools/call"));
    expect(res.status).toBe(503);
    const body = (await res.json()) as { id: number; error: { message: string } };
    expect(body.id).toBe(4);
    expect(body.error.message).toMatch(/is idle and could not be woken: not back within 1 s/);
    expect(await exists(wakeRequestPath(h.stateDir, "alice", "s"))).toBe(false);
    expect(await h.registry.metrics()).toMatch(/mcp_portal_gateway_wakes_total\{result="timeout"\} 1/);
  });

  it("writes the controller a request again when it took one but the server is not back (a lost wake)", async () => {
    const h = await harness();
    await markIdle(h);
    const pending = post(h, rpc(5, "tools/call"));
    const file = wakeRequestPath(h.stateDir, "alice", "s");
    await waitFor("wake requested", () => exists(file), 3000);
    await rm(file);
    await waitFor("asked again", () => exists(file), 3000);
    // The controller acts on it: clears idle.json, then starts the container.
    await writeJsonAtomic(idleStatePath(h.stateDir), {
      version: 1,
      updated_at: new Date().toISOString(),
      servers: [],
    });
    h.start();
    expect((await pending).status).toBe(200);
  });

  it("holds a request for a server idle.json lists while its container still runs (being stopped): served only once idle.json lets go", async () => {
    const h = await harness();
    h.start();
    // The controller wrote idle.json and is stopping the container: the gateway still sees it running.
    await markIdle(h);
    const pending = post(h, rpc(6, "tools/call"));
    const file = wakeRequestPath(h.stateDir, "alice", "s");
    await waitFor("wake requested", () => exists(file), 3000);
    await new Promise((r) => setTimeout(r, 300));
    expect(h.served).toEqual([]);
    // The stop ends; the controller then acts on the wake: clears idle.json and starts the container again.
    h.target.running = false;
    await rm(file);
    await writeJsonAtomic(idleStatePath(h.stateDir), {
      version: 1,
      updated_at: new Date().toISOString(),
      servers: [],
    });
    await new Promise((r) => setTimeout(r, 100));
    h.start();
    expect((await pending).status).toBe(200);
    expect(h.served).toEqual([`POST ${rpc(6, "tools/call")}`]);
  });

  it("a held request for a running server goes on when the controller takes the server out of idle.json without stopping it", async () => {
    const h = await harness();
    h.start();
    await markIdle(h);
    const pending = post(h, rpc(7, "tools/call"));
    await waitFor("wake requested", () => exists(wakeRequestPath(h.stateDir, "alice", "s")), 3000);
    expect(h.served).toEqual([]);
    // The controller saw the request's traffic and called the stop off.
    await writeJsonAtomic(idleStatePath(h.stateDir), {
      version: 1,
      updated_at: new Date().toISOString(),
      servers: [],
    });
    expect((await pending).status).toBe(200);
    expect(h.served).toEqual([`POST ${rpc(7, "tools/call")}`]);
  });
});
