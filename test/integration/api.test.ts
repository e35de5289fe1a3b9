// The HTTP API and live events over real HTTP against a running daemon and a real engine.
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { registerApi } from "../../src/api/api.js";
import { createToken } from "../../src/auth/token-store.js";
import { loadConfig } from "../../src/config.js";
import { type Daemon, createDaemon } from "../../src/daemon.js";
import { LABELS } from "../../src/labels.js";
import { createLogger } from "../../src/observability/logger.js";
import { generateKey } from "../../src/secrets/key-ring.js";
import { readStatus, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";
import type { AddressInfo } from "node:net";
import { type SseStream, openSse } from "../helpers/net.js";

const docker = new Docker();
const ADMIN = "integration-admin-token-0123456789";

/** The daemon with its HTTP listener; registers the API itself until createDaemon does. */
async function startApiDaemon(env: Record<string, string>): Promise<Daemon> {
  const config = loadConfig(env);
  const logger = createLogger({
    level: "info",
    destination: new Writable({ write: (_chunk, _enc, done) => done() }),
  });
  const daemon = await createDaemon({
    config,
    env,
    logger,
    listen: true,
    startBackoff: { baseMs: 500, maxMs: 5_000, healthyAfterMs: 3_000 },
  });
  const server = daemon.http!;
  if (!server.hasRoute({ method: "GET", url: "/api/v1/openapi.json" })) {
    await registerApi(server, {
      config,
      env,
      events: daemon.events,
      global: daemon.global,
      statuses: daemon.statuses,
      secrets: daemon.secrets,
      audit: daemon.audit,
      controller: daemon.controller,
      logger,
    });
  }
  await daemon.start();
  return daemon;
}

describeDocker("HTTP API against a running daemon", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let daemon: Daemon;
  let base: string;
  let alice: Record<string, string>;
  let bob: Record<string, string>;
  const admin = { authorization: `Bearer ${ADMIN}` };
  const streams: SseStream<Record<string, unknown>>[] = [];

  beforeAll(async () => {
    data = await TestDataDir.create();
    await data.baseCatalog("main", [
      stdioServer("echo"),
      stdioServer("conf", { user_configurable: true }),
      ...Array.from({ length: 20 }, (_, i) => stdioServer(`s${i}`)),
    ]);
    await data.enable("alice", []);
    await data.enable("bob", []);
    // carol takes the 20 concurrent enables; suspended, so they stay files and start no containers.
    await data.enable("carol", [], { suspend: true });
    alice = { authorization: `Bearer ${(await createToken(data.stateDir, "alice")).token}` };
    bob = { authorization: `Bearer ${(await createToken(data.stateDir, "bob")).token}` };
    daemon = await startApiDaemon(
      testEnv(data.root, installation, {
        MCP_PORTAL_ADMIN_TOKEN: ADMIN,
        MCP_PORTAL_SECRET_KEYS: generateKey("k1"),
      }),
    );
    base = `http://127.0.0.1:${(daemon.http!.server.address() as AddressInfo).port}/api/v1`;
  });

  afterAll(async () => {
    for (const stream of streams) stream.close();
    await daemon?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  const readData = (rel: string) => readFile(path.join(data.root, rel), "utf8").catch(() => undefined);

  const call = (method: string, url: string, headers: Record<string, string>, body?: unknown) =>
    fetch(`${base}${url}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });

  it("enables a server through the API, the container runs, and the event stream reports it within a second", async () => {
    const aliceEvents = await openSse(`${base}/events`, alice);
    const bobEvents = await openSse(`${base}/events`, bob);
    streams.push(aliceEvents, bobEvents);
    expect(aliceEvents.status).toBe(200);

    const response = await call("POST", "/users/alice/servers/echo/enable", alice);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ enabled: true, changed: true });

    const container = await waitFor("alice's echo container running", async () => {
      const list = await docker.listContainers({
        filters: {
          label: [
            `${LABELS.installation}=${installation}`,
            `${LABELS.userId}=alice`,
            `${LABELS.serverId}=echo`,
          ],
        },
      });
      return list.find((c) => c.State === "running");
    });
    const event = await waitFor("SERVER_STATUS_CHANGED Running for echo", () =>
      aliceEvents.events.find(
        (e) =>
          e.event === "SERVER_STATUS_CHANGED" &&
          e.data.server_id === "echo" &&
          e.data.new_status === "Running",
      ),
    );
    expect(event.data).toMatchObject({ user_id: "alice", container_id: container.Id });
    // Measured from the container's start (engine clock, same host): the status write that records it
    // publishes the event, and the stream delivers it.
    const startedAt = Date.parse((await docker.getContainer(container.Id).inspect()).State.StartedAt);
    const receivedAt = aliceEvents.receivedAt(event);
    expect(receivedAt - startedAt).toBeLessThan(1000);
    const writtenAt = (await stat(path.join(data.stateDir, "users", "alice", "status.json"))).mtimeMs;
    console.info(
      `SSE latency: ${receivedAt - startedAt} ms after the container started ` +
        `(status.json last written ${Math.round(receivedAt - writtenAt)} ms before receipt)`,
    );

    const status = await call("GET", "/users/alice/status", alice);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({
      user_id: "alice",
      servers: [expect.objectContaining({ id: "echo", phase: "Running" })],
    });
    expect((await readStatus(data.stateDir, "alice"))?.servers[0]?.phase).toBe("Running");
    // Bob's stream saw none of it.
    expect(bobEvents.events).toEqual([]);
  });

  it("keeps users apart: bob's token reaches none of alice's catalog, status, secrets or events", async () => {
    const aliceEnabled = await readData("users/alice/enabled-servers.json");
    for (const [method, url, body] of [
      ["GET", "/users/alice/catalog", undefined],
      ["GET", "/users/alice/catalog/servers", undefined],
      ["GET", "/users/alice/status", undefined],
      ["GET", "/users/alice/secrets", undefined],
      ["POST", "/users/alice/servers/conf/enable", undefined],
      ["POST", "/users/alice/servers/echo/disable", undefined],
      ["POST", "/users/alice/secrets", { secrets: { STOLEN: "x" } }],
      ["DELETE", "/users/alice/secrets/ANY", undefined],
      ["GET", "/admin/users", undefined],
    ] as const) {
      const response = await call(method, url, bob, body);
      expect(response.status, `${method} ${url}`).toBe(403);
    }
    const spy = await openSse(`${base}/events?user_id=alice`, bob);
    streams.push(spy);
    expect(spy.status).toBe(403);
    expect(await readData("users/alice/enabled-servers.json")).toBe(aliceEnabled);
    expect(await readData("users/alice/secrets.env")).toBeUndefined();
    // Bob's own paths work, and the admin reaches alice's.
    expect((await call("GET", "/users/bob/catalog", bob)).status).toBe(200);
    expect((await call("GET", "/users/alice/status", admin)).status).toBe(200);
  });

  it("answers bad bodies with 4xx and leaves the file byte for byte as it was", async () => {
    const file = "users/alice/enabled-servers.json";
    const before = await readData(file);
    const cases: [string, unknown, number][] = [
      ["/users/alice/servers/conf/enable", "{ not json", 400],
      ["/users/alice/servers/conf/enable", { environment: { "1BAD": "x" } }, 400],
      ["/users/alice/servers/conf/enable", { unknown_field: true }, 400],
      ["/users/alice/servers/nope/enable", undefined, 422],
      ["/users/alice/servers/s1/enable", { environment: { A: "b" } }, 422],
      ["/users/alice/servers/conf/enable", { volumes: [{ host_path: "/etc", container_path: "/etc" }] }, 422],
      ["/users/alice/servers/conf/enable", { environment: { BIG: "x".repeat(2 * 1024 * 1024) } }, 413],
    ];
    for (const [url, body, expected] of cases) {
      const response = await call("POST", url, alice, body);
      expect(response.status, `${url} ${JSON.stringify(body)?.slice(0, 60)}`).toBe(expected);
      const answer = (await response.json()) as { problems?: string[] };
      if (expected === 422)
        expect(answer.problems?.[0]).toMatch(/^users\/alice\/enabled-servers\.json: \$\.servers\[\d+\]/);
    }
    expect(await readData(file)).toBe(before);
  });

  it("loses no update when 20 enables for one user run at once", async () => {
    const carol = { authorization: `Bearer ${(await createToken(data.stateDir, "carol")).token}` };
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call("POST", `/users/carol/servers/s${i}/enable`, carol)),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    const file = JSON.parse((await readData("users/carol/enabled-servers.json")) ?? "{}") as {
      servers: { id: string }[];
      suspend: boolean;
    };
    expect(file.servers.map((s) => s.id).sort()).toEqual(
      Array.from({ length: 20 }, (_, i) => `s${i}`).sort(),
    );
    expect(file.suspend).toBe(true);
  });

  it("stores secrets by name, and the admin overview lists every user", async () => {
    const set = await call("POST", "/users/bob/secrets", bob, { secrets: { API_KEY: "v3ry-s3cret" } });
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ user_id: "bob", set: ["API_KEY"], secrets: ["API_KEY"] });
    expect(await readData("users/bob/secrets.env")).not.toContain("v3ry-s3cret");
    const overview = (await (await call("GET", "/admin/users", admin)).json()) as {
      users: { user_id: string }[];
    };
    expect(overview.users.map((u) => u.user_id)).toEqual(["alice", "bob", "carol"]);
  });
});
