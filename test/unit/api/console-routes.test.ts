// The console's endpoints over HTTP (fastify inject): session and info, the engine views (containers with restart
// counts, container logs with the user's secret values redacted), enabled entries, catalog files for editing.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ConsoleApiDeps } from "../../../src/api/api.js";
import { LOG_LIMITS } from "../../../src/api/console-deps.js";
import type { ContainerInfo, ContainerReader, LogRead } from "../../../src/api/engine/container-reader.js";
import { RuntimeError } from "../../../src/docker/runtime.js";
import { PORTAL_VERSION } from "../../../src/version.js";
import { type ApiFixture, type FixtureOptions, apiFixture, server } from "./api-fixture.js";

const fixtures: ApiFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
});

/** A fake engine: containers per user and the bytes each container's log holds; records what was read. */
class FakeReader implements ContainerReader {
  containers = new Map<string, ContainerInfo[]>();
  logText = new Map<string, string>();
  logReads: { id: string; lines: number; maxBytes: number }[] = [];
  failWith: RuntimeError | undefined;

  list(userId: string): Promise<ContainerInfo[]> {
    if (this.failWith) return Promise.reject(this.failWith);
    return Promise.resolve(this.containers.get(userId) ?? []);
  }

  logs(id: string, options: { lines: number; maxBytes: number }): Promise<LogRead> {
    this.logReads.push({ id, ...options });
    const bytes = Buffer.from(this.logText.get(id) ?? "");
    const truncated = bytes.length > options.maxBytes;
    return Promise.resolve({
      bytes: truncated ? bytes.subarray(bytes.length - options.maxBytes) : bytes,
      truncated,
    });
  }
}

function container(serverId: string, extra: Partial<ContainerInfo> = {}): ContainerInfo {
  return {
    id: `id-${serverId}`,
    name: `mcp-alice-${serverId}-abc123`,
    serverId,
    state: "running",
    createdAt: "2026-01-01T10:00:00.000Z",
    startedAt: "2026-01-01T10:00:01.000Z",
    finishedAt: null,
    exitCode: null,
    oomKilled: false,
    error: null,
    ...extra,
  };
}

async function fixture(options: FixtureOptions = {}): Promise<{ f: ApiFixture; reader: FakeReader }> {
  const reader = new FakeReader();
  const consoleDeps: ConsoleApiDeps = {
    installation: "test",
    publishHost: "127.0.0.1",
    gateway: true,
    containers: reader,
  };
  const f = await apiFixture({ console: consoleDeps, ...options });
  fixtures.push(f);
  await f.write("catalogs/base/main.json", {
    version: "1",
    source: "base",
    metadata: { name: "main" },
    servers: [server("echo"), server("conf", { user_configurable: true, required_secrets: ["API_KEY"] })],
  });
  return { f, reader };
}

describe("GET /info and /session", () => {
  it("tells anyone how to sign in, and only a signed-in caller the mode and version", async () => {
    const { f } = await fixture();
    const info = await f.http.inject({ method: "GET", url: "/api/v1/info" });
    expect(info.statusCode).toBe(200);
    expect(info.json()).toEqual({ api: "mcp-portal/v1", sign_in: { token: true, oidc: null } });
    expect(info.body).not.toContain(PORTAL_VERSION);

    expect((await f.http.inject({ method: "GET", url: "/api/v1/session" })).statusCode).toBe(401);
    const wrong = await f.http.inject({
      method: "GET",
      url: "/api/v1/session",
      headers: { authorization: "Bearer mcp_0123456789abcdef_wrongwrongwrongwrongwrong" },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toMatchObject({ code: "UNAUTHENTICATED" });

    const admin = await f.http.inject({ method: "GET", url: "/api/v1/session", headers: f.admin });
    expect(admin.json()).toEqual({
      caller: { kind: "admin" },
      version: PORTAL_VERSION,
      read_only: false,
      mcp: { publish_host: "127.0.0.1", gateway: true },
    });
    expect(admin.headers["cache-control"]).toBe("no-store");
    const alice = await f.http.inject({
      method: "GET",
      url: "/api/v1/session",
      headers: await f.tokenFor("alice"),
    });
    expect(alice.json()).toMatchObject({ caller: { kind: "user", user_id: "alice" }, read_only: false });
  });

  it("says read-only when the API is", async () => {
    const { f } = await fixture({ readOnly: true });
    const session = await f.http.inject({ method: "GET", url: "/api/v1/session", headers: f.admin });
    expect(session.json()).toMatchObject({ read_only: true });
  });
});

describe("GET /users/{user_id}/containers", () => {
  it("lists the user's containers with restarts counted from the audit log, and keeps users apart", async () => {
    const { f, reader } = await fixture();
    reader.containers.set("alice", [container("echo")]);
    const start = (timestamp: string, resource = "mcp-alice-echo-abc123", user = "alice") =>
      JSON.stringify({
        timestamp,
        event_type: "CONTAINER_OPERATION",
        user_id: user,
        action: "start_container",
        resource,
        result: "success",
        details: {},
        severity: "info",
      });
    await writeFile(
      path.join(f.stateDir, "audit.log"),
      [
        start("2025-12-31T09:00:00.000Z"), // an earlier container of the same name: not this one
        start("2026-01-01T10:00:01.000Z"),
        start("2026-01-01T10:05:00.000Z"),
        start("2026-01-01T10:06:00.000Z"),
        start("2026-01-01T10:07:00.000Z", "mcp-alice-other-abc123"),
        start("2026-01-01T10:08:00.000Z", "mcp-alice-echo-abc123", "bob"),
        "",
      ].join("\n"),
    );
    const alice = await f.tokenFor("alice");
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/containers",
      headers: alice,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      user_id: "alice",
      containers: [
        {
          server_id: "echo",
          id: "id-echo",
          name: "mcp-alice-echo-abc123",
          state: "running",
          created_at: "2026-01-01T10:00:00.000Z",
          started_at: "2026-01-01T10:00:01.000Z",
          finished_at: null,
          exit_code: null,
          oom_killed: false,
          error: null,
          restarts: 2,
          restarts_exact: true,
        },
      ],
    });
    const bob = await f.tokenFor("bob");
    const denied = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/containers",
      headers: bob,
    });
    expect(denied.statusCode).toBe(403);
  });

  it("answers 503 when the engine does not, and when the API has no engine access", async () => {
    const { f, reader } = await fixture();
    reader.failWith = new RuntimeError("Unavailable", "list containers: connect ECONNREFUSED");
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/containers",
      headers: f.admin,
    });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ code: "ENGINE_UNAVAILABLE" });

    const bare = await apiFixture();
    fixtures.push(bare);
    const none = await bare.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/containers",
      headers: bare.admin,
    });
    expect(none.statusCode).toBe(503);
  });
});

describe("GET /users/{user_id}/servers/{server_id}/logs", () => {
  it("replaces every secret value of the user (as written and JSON-escaped) before the lines leave", async () => {
    const { f, reader } = await fixture();
    const alice = await f.tokenFor("alice");
    await f.write("users/alice/enabled-servers.json", { servers: [] });
    const secret = 'p@ss "word"\\1';
    const set = await f.http.inject({
      method: "POST",
      url: "/api/v1/users/alice/secrets",
      headers: alice,
      payload: { secrets: { API_KEY: secret, OTHER: "second-value" } },
    });
    expect(set.statusCode).toBe(200);
    reader.containers.set("alice", [container("conf")]);
    reader.logText.set(
      "id-conf",
      [
        "starting",
        `env API_KEY=${secret}`,
        `{"jsonrpc":"2.0","result":{"text":${JSON.stringify(secret)}}}`,
        "other=second-value and again second-value",
        "",
      ].join("\n"),
    );
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/servers/conf/logs",
      headers: alice,
    });
    expect(response.statusCode).toBe(200);
    expect(response.body).not.toContain("p@ss");
    expect(response.body).not.toContain("second-value");
    expect(response.json()).toMatchObject({
      user_id: "alice",
      server_id: "conf",
      container: { id: "id-conf", state: "running" },
      lines: [
        "starting",
        "env API_KEY=[redacted API_KEY]",
        '{"jsonrpc":"2.0","result":{"text":"[redacted API_KEY]"}}',
        "other=[redacted OTHER] and again [redacted OTHER]",
      ],
      truncated: false,
      redactions: 4,
    });
    expect(reader.logReads).toEqual([
      { id: "id-conf", lines: LOG_LIMITS.defaultLines, maxBytes: LOG_LIMITS.maxBytes },
    ]);
    expect(response.headers["cache-control"]).toBe("no-store");
  });

  it("keeps to the line and byte caps and drops the partial first line of a cut tail", async () => {
    const { f, reader } = await fixture();
    reader.containers.set("alice", [container("echo")]);
    const long = "x".repeat(LOG_LIMITS.maxLineChars + 10);
    reader.logText.set("id-echo", `${"y".repeat(LOG_LIMITS.maxBytes)}\nline-a\n${long}\nline-b\n`);
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/servers/echo/logs?lines=2",
      headers: f.admin,
    });
    const body = response.json<{ lines: string[]; truncated: boolean }>();
    expect(body.truncated).toBe(true);
    expect(body.lines).toHaveLength(2);
    expect(body.lines[0]).toBe(`${"x".repeat(LOG_LIMITS.maxLineChars)} … [10 more characters]`);
    expect(body.lines[1]).toBe("line-b");
    const tooMany = await f.http.inject({
      method: "GET",
      url: `/api/v1/users/alice/servers/echo/logs?lines=${LOG_LIMITS.maxLines + 1}`,
      headers: f.admin,
    });
    expect(tooMany.statusCode).toBe(400);
  });

  it("withholds the log when the user's secrets cannot be read, without reading it from the engine", async () => {
    const { f, reader } = await fixture();
    reader.containers.set("alice", [container("echo")]);
    reader.logText.set("id-echo", "hello\n");
    await f.write("users/alice/secrets.env", "NOT A SECRETS FILE\n");
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/servers/echo/logs",
      headers: f.admin,
    });
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ code: "SECRETS_UNREADABLE" });
    expect(reader.logReads).toEqual([]);
  });

  it("withholds the log when secrets exist but the controller has no keys", async () => {
    const { f, reader } = await fixture({ secretKeys: false });
    reader.containers.set("alice", [container("echo")]);
    await f.write(
      "users/alice/secrets.env",
      "API_KEY=enc:v1:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
    );
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/servers/echo/logs",
      headers: f.admin,
    });
    expect(response.statusCode).toBe(503);
    expect(reader.logReads).toEqual([]);
  });

  it("answers 404 for a server without a container, and 403 for another user's server", async () => {
    const { f, reader } = await fixture();
    reader.containers.set("alice", [container("echo")]);
    const alice = await f.tokenFor("alice");
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/users/alice/servers/conf/logs", headers: alice }))
        .statusCode,
    ).toBe(404);
    const bob = await f.tokenFor("bob");
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/users/alice/servers/echo/logs", headers: bob }))
        .statusCode,
    ).toBe(403);
    expect(reader.logReads).toEqual([]);
  });

  it("reads the container status names when a replace shows two", async () => {
    const { f, reader } = await fixture();
    reader.containers.set("alice", [
      container("echo", { id: "old", createdAt: "2026-01-01T10:00:00.000Z" }),
      container("echo", { id: "new", createdAt: "2026-01-01T11:00:00.000Z" }),
    ]);
    reader.logText.set("old", "from old\n");
    reader.logText.set("new", "from new\n");
    const newest = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/servers/echo/logs",
      headers: f.admin,
    });
    expect(newest.json()).toMatchObject({ lines: ["from new"] });
    await f.write("../state/users/alice/status.json", {
      api_version: "mcp-portal/v1",
      user_id: "alice",
      phase: "Ready",
      observed_generation: "g",
      network: null,
      port_block: null,
      servers: [{ id: "echo", phase: "Running", container_id: "old" }],
      resources: null,
      conditions: [],
      errors: [],
      last_reconciles: [],
    });
    const named = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/servers/echo/logs",
      headers: f.admin,
    });
    expect(named.json()).toMatchObject({ lines: ["from old"] });
  });
});

describe("GET /users/{user_id}/enabled", () => {
  it("gives the entries with their config, an empty list without a file, and the problems of an invalid one", async () => {
    const { f } = await fixture();
    const alice = await f.tokenFor("alice");
    const get = async () =>
      (await f.http.inject({ method: "GET", url: "/api/v1/users/alice/enabled", headers: alice })).json<{
        valid: boolean;
        servers: unknown[];
        problems: string[];
      }>();
    expect(await get()).toMatchObject({ valid: true, servers: [], problems: [] });
    await f.write("users/alice/enabled-servers.json", {
      servers: [{ id: "conf", config: { environment: { A: "b" } } }, { id: "echo" }],
    });
    expect(await get()).toMatchObject({
      valid: true,
      servers: [{ id: "conf", config: { environment: { A: "b" } } }, { id: "echo" }],
    });
    await f.write("users/alice/enabled-servers.json", { servers: [{ id: "echo", bogus: 1 }] });
    const invalid = await get();
    expect(invalid).toMatchObject({ valid: false, servers: [] });
    expect(invalid.problems).toEqual(["users/alice/enabled-servers.json: $.servers[0].bogus: unknown field"]);
    const bob = await f.tokenFor("bob");
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/users/alice/enabled", headers: bob })).statusCode,
    ).toBe(403);
  });
});

describe("catalog files for the Catalog Manager", () => {
  it("gives one base catalog byte for byte, with problems when it is invalid; admin only", async () => {
    const { f } = await fixture();
    const text =
      '{ "version": "1", "source": "base", "metadata": { "name": "x" }, "servers": [{ "id": "a" }] }\n';
    await f.write("catalogs/base/broken.json", text);
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/admin/catalogs/base/broken",
      headers: f.admin,
    });
    expect(response.statusCode).toBe(200);
    const body = response.json<{ text: string; valid: boolean; problems: string[]; file: string }>();
    expect(body.text).toBe(text);
    expect(body.valid).toBe(false);
    expect(body.file).toBe("catalogs/base/broken.json");
    expect(body.problems[0]).toMatch(/^catalogs\/base\/broken\.json: \$\.servers\[0\]\./);
    const valid = await f.http.inject({
      method: "GET",
      url: "/api/v1/admin/catalogs/base/main",
      headers: f.admin,
    });
    expect(valid.json()).toMatchObject({ valid: true, problems: [] });
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/admin/catalogs/base/nope", headers: f.admin }))
        .statusCode,
    ).toBe(404);
    expect(
      (
        await f.http.inject({
          method: "GET",
          url: "/api/v1/admin/catalogs/base/..%2Fpolicy",
          headers: f.admin,
        })
      ).statusCode,
    ).toBe(400);
    const alice = await f.tokenFor("alice");
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/admin/catalogs/base/main", headers: alice }))
        .statusCode,
    ).toBe(403);
  });

  it("lists overlays with whether and where they are selected and what each entry changes", async () => {
    const { f } = await fixture({ overlays: ["prod", "gone"] });
    await f.write("catalogs/overlays/prod.json", {
      version: "2",
      source: "overlay",
      metadata: { name: "production" },
      servers: [
        { id: "echo", tag: "2", environment: { A: "b" } },
        { id: "conf", disabled: true },
      ],
    });
    await f.write("catalogs/overlays/staging.json", {
      version: "1",
      source: "overlay",
      metadata: { name: "s" },
      servers: [],
    });
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/admin/catalogs/overlays",
      headers: f.admin,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      overlays: [
        {
          name: "gone",
          file: "catalogs/overlays/gone.json",
          selected: true,
          order: 1,
          missing: true,
          valid: false,
          problems: [],
        },
        {
          name: "prod",
          file: "catalogs/overlays/prod.json",
          selected: true,
          order: 0,
          valid: true,
          version: "2",
          metadata_name: "production",
          servers: [
            { id: "echo", disabled: false, fields: ["environment", "tag"] },
            { id: "conf", disabled: true, fields: [] },
          ],
          problems: [],
        },
        {
          name: "staging",
          file: "catalogs/overlays/staging.json",
          selected: false,
          order: null,
          valid: true,
          version: "1",
          metadata_name: "s",
          servers: [],
          problems: [],
        },
      ],
      problems: [],
    });
  });
});
