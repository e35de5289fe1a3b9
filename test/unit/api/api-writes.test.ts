import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readSecretsFile } from "../../../src/secrets/store.js";
import { type ApiFixture, type FixtureOptions, answer, apiFixture, server } from "./api-fixture.js";

const fixtures: ApiFixture[] = [];
const BASE = {
  version: "1",
  source: "base",
  metadata: { name: "main" },
  servers: [
    server("time"),
    server("cfg", { user_configurable: true }),
    server("gh", { required_secrets: ["GITHUB_TOKEN"] }),
    ...Array.from({ length: 20 }, (_, i) => server(`s${i}`)),
  ],
};

async function fixture(options: FixtureOptions = {}): Promise<ApiFixture> {
  const f = await apiFixture(options);
  fixtures.push(f);
  await f.write("catalogs/base/main.json", BASE);
  // The API writes only into existing user directories (see api-tree-safety.test.ts).
  await mkdir(path.join(f.dataDir, "users/alice"), { recursive: true });
  return f;
}
afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
});

const ENABLED = "users/alice/enabled-servers.json";
const enable = (f: ApiFixture, headers: Record<string, string>, id: string, payload?: unknown) =>
  f.http.inject({
    method: "POST",
    url: `/api/v1/users/alice/servers/${id}/enable`,
    headers,
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });

describe("enable and disable", () => {
  it("enables with and without config, keeps other fields, disables, and enqueues the user", async () => {
    const f = await fixture();
    const alice = await f.tokenFor("alice");
    await f.write(ENABLED, {
      $schema: "../../schema.json",
      environment: { A: "1" },
      servers: [{ id: "time" }],
      suspend: false,
    });
    const config = {
      environment: { LOG_LEVEL: "debug" },
      volumes: [{ host_path: "{USER_DATA}/cfg", container_path: "/data" }],
    };
    const enabled = await enable(f, alice, "cfg", config);
    expect(enabled.statusCode).toBe(200);
    expect(enabled.json()).toMatchObject({
      user_id: "alice",
      server_id: "cfg",
      enabled: true,
      changed: true,
      file: ENABLED,
    });
    expect(JSON.parse((await f.read(ENABLED)) ?? "")).toEqual({
      $schema: "../../schema.json",
      environment: { A: "1" },
      servers: [{ id: "time" }, { id: "cfg", config }],
      suspend: false,
    });
    // No body: the config stays; an empty body removes it.
    expect((await enable(f, alice, "cfg")).json()).toMatchObject({ changed: false });
    expect((await enable(f, alice, "cfg", {})).json()).toMatchObject({ changed: true });
    expect((JSON.parse((await f.read(ENABLED)) ?? "") as { servers: unknown[] }).servers).toEqual([
      { id: "time" },
      { id: "cfg" },
    ]);
    const disabled = await f.http.inject({
      method: "POST",
      url: "/api/v1/users/alice/servers/time/disable",
      headers: alice,
    });
    expect(disabled.json()).toMatchObject({ enabled: false, changed: true });
    const again = await f.http.inject({
      method: "POST",
      url: "/api/v1/users/alice/servers/time/disable",
      headers: alice,
    });
    expect(again.json()).toMatchObject({ changed: false });
    expect((JSON.parse((await f.read(ENABLED)) ?? "") as { servers: unknown[] }).servers).toEqual([
      { id: "cfg" },
    ]);
    expect(f.enqueued).toEqual(["alice", "alice", "alice"]);
  });

  it("creates the user's file when the directory has none", async () => {
    const f = await fixture();
    const response = await enable(f, f.admin, "time");
    expect(response.statusCode).toBe(200);
    expect(JSON.parse((await f.read(ENABLED)) ?? "")).toEqual({ servers: [{ id: "time" }] });
  });

  it.each([
    ["an unknown server", "nope", undefined, /\$\.servers\[1\]\.id: unknown server "nope"/],
    [
      "config on a server that is not user_configurable",
      "time",
      { environment: { A: "b" } },
      /\$\.servers\[0\]\.config: server "time" is not user_configurable/,
    ],
    [
      "a volume outside the user's area",
      "cfg",
      { volumes: [{ host_path: "/etc", container_path: "/x" }] },
      /host_path: "\/etc" is not inside the user's area/,
    ],
    ["a server whose required secret is not set", "gh", undefined, /requires secret GITHUB_TOKEN/],
  ])("refuses %s with 422 and the validate message, writing nothing", async (_what, id, config, message) => {
    const f = await fixture();
    await f.write(ENABLED, { servers: [{ id: "time" }] });
    const before = await f.read(ENABLED);
    const response = await enable(f, f.admin, id, config);
    expect(response.statusCode).toBe(422);
    const body = response.json<{ code: string; problems: string[] }>();
    expect(body.code).toBe("INVALID_DESIRED_STATE");
    expect(body.problems.join("\n")).toMatch(
      new RegExp(`^users/alice/enabled-servers\\.json: .*${message.source}`, "m"),
    );
    expect(await f.read(ENABLED)).toBe(before);
    expect(f.enqueued).toEqual([]);
  });

  it.each([
    ["a bad environment name", { environment: { "1BAD": "x" } }],
    ["an unknown field", { environment: {}, ports: [] }],
    ["a non-object", [1, 2]],
  ])("answers a malformed body (%s) with 400, writing nothing", async (_what, payload) => {
    const f = await fixture();
    await f.write(ENABLED, { servers: [{ id: "time" }] });
    const before = await f.read(ENABLED);
    const response = await enable(f, f.admin, "cfg", payload);
    expect(response.statusCode).toBe(400);
    expect(answer(response).problems[0]).toMatch(/^request body: \$/);
    expect(await f.read(ENABLED)).toBe(before);
  });

  it("answers bad JSON, bad ids and oversized bodies with 4xx, writing nothing", async () => {
    const f = await fixture({ limits: { bodyBytes: 4096 } });
    const bad = await f.http.inject({
      method: "POST",
      url: "/api/v1/users/alice/servers/cfg/enable",
      headers: { ...f.admin, "content-type": "application/json" },
      payload: "{ nope",
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ statusCode: 400, error: "Bad Request" });
    const badId = await f.http.inject({
      method: "POST",
      url: "/api/v1/users/alice/servers/a.b/enable",
      headers: f.admin,
    });
    expect(badId.statusCode).toBe(400);
    expect(answer(badId).problems).toEqual([
      expect.stringMatching(/^path: \$\.server_id: server id must match/),
    ]);
    const big = await enable(f, f.admin, "cfg", { environment: { A: "x".repeat(5000) } });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ statusCode: 413, code: "FST_ERR_CTP_BODY_TOO_LARGE" });
    expect(await f.read(ENABLED)).toBeUndefined();
    expect(f.audits.map((a) => a.result)).toEqual(["failure", "failure", "failure"]);
  });

  it("refuses to change a file that is already invalid (409), leaving it as it is", async () => {
    const f = await fixture();
    await f.write(ENABLED, '{ "servers": [ { "id": "time", "oops": 1 } ] }');
    const response = await enable(f, f.admin, "cfg");
    expect(response.statusCode).toBe(409);
    expect(answer(response).problems).toEqual([`${ENABLED}: $.servers[0].oops: unknown field`]);
    expect(await f.read(ENABLED)).toBe('{ "servers": [ { "id": "time", "oops": 1 } ] }');
  });

  it("loses no update when 20 enables for one user run at once", async () => {
    const f = await fixture();
    const alice = await f.tokenFor("alice");
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => enable(f, alice, `s${i}`)));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
    const ids = (JSON.parse((await f.read(ENABLED)) ?? "") as { servers: { id: string }[] }).servers.map(
      (s) => s.id,
    );
    expect(ids.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `s${i}`).sort());
  });
});

describe("secrets", () => {
  it("stores encrypted values, answers and audits names only", async () => {
    const f = await fixture();
    const alice = await f.tokenFor("alice");
    const value = "ghp_super_secret_value_123";
    const response = await f.http.inject({
      method: "POST",
      url: "/api/v1/users/alice/secrets",
      headers: { ...alice, "user-agent": "test-agent/1" },
      payload: { secrets: { GITHUB_TOKEN: value, OTHER: "x" } },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      user_id: "alice",
      set: ["GITHUB_TOKEN", "OTHER"],
      secrets: ["GITHUB_TOKEN", "OTHER"],
    });
    expect(response.body).not.toContain(value);
    const text = (await f.read("users/alice/secrets.env")) ?? "";
    expect(text).toMatch(/^GITHUB_TOKEN=enc:v1:k1:/m);
    expect(text).not.toContain(value);
    expect((await stat(path.join(f.dataDir, "users/alice/secrets.env"))).mode & 0o777).toBe(0o600);
    expect((await readSecretsFile(f.dataDir, "alice")).map((e) => e.name)).toEqual(["GITHUB_TOKEN", "OTHER"]);
    expect(f.audits).toEqual([
      expect.objectContaining({
        event_type: "SECRET_CHANGE",
        user_id: "alice",
        action: "set_secrets",
        resource: "users/alice/secrets.env",
        result: "success",
        ip_address: "127.0.0.1",
        user_agent: "test-agent/1",
        details: expect.objectContaining({ names: ["GITHUB_TOKEN", "OTHER"] }) as unknown,
      }),
    ]);
    expect(JSON.stringify(f.audits)).not.toContain(value);
    const list = await f.http.inject({ method: "GET", url: "/api/v1/users/alice/secrets", headers: alice });
    expect(list.json()).toEqual({
      user_id: "alice",
      secrets: [
        { name: "GITHUB_TOKEN", key_id: "k1" },
        { name: "OTHER", key_id: "k1" },
      ],
    });
    // Now "gh" may be enabled; then its secret may not be removed.
    expect((await enable(f, alice, "gh")).statusCode).toBe(200);
    const refused = await f.http.inject({
      method: "DELETE",
      url: "/api/v1/users/alice/secrets/GITHUB_TOKEN",
      headers: alice,
    });
    expect(refused.statusCode).toBe(422);
    expect(answer(refused).problems[0]).toMatch(/requires secret GITHUB_TOKEN/);
    const removed = await f.http.inject({
      method: "DELETE",
      url: "/api/v1/users/alice/secrets/OTHER",
      headers: alice,
    });
    expect(removed.statusCode).toBe(200);
    const missing = await f.http.inject({
      method: "DELETE",
      url: "/api/v1/users/alice/secrets/OTHER",
      headers: alice,
    });
    expect(missing.statusCode).toBe(404);
    expect((await readSecretsFile(f.dataDir, "alice")).map((e) => e.name)).toEqual(["GITHUB_TOKEN"]);
  });

  it.each([
    [{}],
    [{ secrets: {} }],
    [{ secrets: { lower: "x" } }],
    [{ secrets: { OK: "" } }],
    [{ secrets: { OK: 5 } }],
    [{ secrets: { OK: "x" }, extra: true }],
  ])("answers %j with 400 and never echoes a value", async (payload) => {
    const f = await fixture();
    const response = await f.http.inject({
      method: "POST",
      url: "/api/v1/users/alice/secrets",
      headers: f.admin,
      payload,
    });
    expect(response.statusCode).toBe(400);
    expect(await f.read("users/alice/secrets.env")).toBeUndefined();
  });

  it("answers 503 without secret keys", async () => {
    const f = await fixture({ secretKeys: false });
    const response = await f.http.inject({
      method: "POST",
      url: "/api/v1/users/alice/secrets",
      headers: f.admin,
      payload: { secrets: { A: "b" } },
    });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ code: "SECRETS_UNAVAILABLE" });
  });
});

describe("base catalogs", () => {
  const catalog = (servers: Record<string, unknown>[], version = "2") => ({
    version,
    source: "base",
    metadata: { name: "extra" },
    servers,
  });

  it("uploads, replaces with a backup, enqueues every user and answers unchanged uploads without writing", async () => {
    const f = await fixture({ limits: { backupsKept: 2 } });
    await f.write(ENABLED, { servers: [{ id: "time" }] });
    await f.write("users/bob/enabled-servers.json", { servers: [] });
    const created = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/catalogs/base",
      headers: f.admin,
      payload: { name: "extra", catalog: catalog([server("new1")], "1") },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      name: "extra",
      file: "catalogs/base/extra.json",
      created: true,
      changed: true,
      users_enqueued: 2,
    });
    expect(JSON.parse((await f.read("catalogs/base/extra.json")) ?? "")).toEqual(
      catalog([server("new1")], "1"),
    );
    expect(f.enqueued.sort()).toEqual(["alice", "bob"]);
    // The new server is known at once (the catalog cache was invalidated).
    expect((await enable(f, f.admin, "new1")).statusCode).toBe(200);

    for (const version of ["2", "3", "4"]) {
      const replaced = await f.http.inject({
        method: "PUT",
        url: "/api/v1/admin/catalogs/base/extra",
        headers: f.admin,
        payload: catalog([server("new1"), server("new2")], version),
      });
      expect(replaced.statusCode).toBe(200);
      expect(answer(replaced).backup).toMatch(
        /^backups\/catalogs\/base\/extra\.\d{8}T\d{6}\.\d{3}Z(-\d+)?\.json$/,
      );
    }
    const backups = await readdir(path.join(f.stateDir, "backups/catalogs/base"));
    expect(backups).toHaveLength(2);
    const newest = backups.sort().at(-1) ?? "";
    expect(
      (
        JSON.parse(await readFile(path.join(f.stateDir, "backups/catalogs/base", newest), "utf8")) as {
          version: string;
        }
      ).version,
    ).toBe("3");
    const same = await f.http.inject({
      method: "PUT",
      url: "/api/v1/admin/catalogs/base/extra",
      headers: f.admin,
      payload: catalog([server("new1"), server("new2")], "4"),
    });
    expect(same.json()).toMatchObject({ changed: false });
    const listing = await f.http.inject({
      method: "GET",
      url: "/api/v1/admin/catalogs/base",
      headers: f.admin,
    });
    expect(answer(listing).catalogs).toEqual([
      expect.objectContaining({ name: "extra", valid: true, version: "4", servers: 2 }),
      expect.objectContaining({ name: "main", valid: true, servers: BASE.servers.length }),
    ]);
  });

  it("answers a schema failure with 400 on the file's paths, as validate prints them", async () => {
    const f = await fixture();
    const response = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/catalogs/base",
      headers: f.admin,
      payload: { name: "extra", catalog: catalog([{ ...server("x"), image: "Bad Image:tag" }]) },
    });
    expect(response.statusCode).toBe(400);
    expect(answer(response).problems).toEqual([
      expect.stringMatching(/^catalogs\/base\/extra\.json: \$\.servers\[0\]\.image: not a valid image name/),
    ]);
    const put = await f.http.inject({
      method: "PUT",
      url: "/api/v1/admin/catalogs/base/main",
      headers: f.admin,
      payload: { version: "1" },
    });
    expect(put.statusCode).toBe(400);
    expect(answer(put).problems).toContain(
      'catalogs/base/main.json: $.source: Invalid input: expected "base"',
    );
    expect(await f.read("catalogs/base/extra.json")).toBeUndefined();
  });

  it("refuses (422) a catalog that duplicates an id or drops a server a user runs, writing nothing", async () => {
    const f = await fixture();
    await f.write(ENABLED, { servers: [{ id: "time" }] });
    const dup = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/catalogs/base",
      headers: f.admin,
      payload: { name: "extra", catalog: catalog([server("time")]) },
    });
    expect(dup.statusCode).toBe(422);
    expect(answer(dup).problems.join("\n")).toMatch(/server id "time" is also defined in/);
    const before = await f.read("catalogs/base/main.json");
    const dropping = await f.http.inject({
      method: "PUT",
      url: "/api/v1/admin/catalogs/base/main",
      headers: f.admin,
      payload: { ...BASE, servers: BASE.servers.filter((s) => s.id !== "time") },
    });
    expect(dropping.statusCode).toBe(422);
    expect(answer(dropping).problems).toEqual([
      'users/alice/enabled-servers.json: $.servers[0].id: unknown server "time": not in the base catalogs or users/alice/custom-servers.json',
    ]);
    expect(await f.read("catalogs/base/main.json")).toBe(before);
    expect(await f.read("catalogs/base/extra.json")).toBeUndefined();
    const policy = await f.http.inject({
      method: "PUT",
      url: "/api/v1/admin/catalogs/base/missing",
      headers: f.admin,
      payload: catalog([]),
    });
    expect(policy.statusCode).toBe(404);
  });

  it("refuses an image the policy does not allow", async () => {
    const f = await fixture();
    await f.write("policy.json", { allowed_images: ["mcp/*"] });
    const response = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/catalogs/base",
      headers: f.admin,
      payload: { name: "extra", catalog: catalog([{ ...server("x"), image: "evil/miner" }]) },
    });
    expect(response.statusCode).toBe(422);
    expect(answer(response).problems).toEqual([
      'catalogs/base/extra.json: $.servers[0].image: image "evil/miner" is not allowed by policy.json allowed_images',
    ]);
  });

  it("limits the upload size", async () => {
    const f = await fixture({ limits: { catalogBodyBytes: 2048 } });
    const response = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/catalogs/base",
      headers: f.admin,
      payload: { name: "extra", catalog: catalog([{ ...server("x"), description: "d".repeat(3000) }]) },
    });
    expect(response.statusCode).toBe(413);
  });

  it("regenerates a user on request (202), 404 for an unknown user", async () => {
    const f = await fixture();
    await f.write(ENABLED, { servers: [] });
    const ok = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/users/alice/catalogs/regenerate",
      headers: f.admin,
    });
    expect(ok.statusCode).toBe(202);
    expect(f.enqueued).toEqual(["alice"]);
    const missing = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/users/zed/catalogs/regenerate",
      headers: f.admin,
    });
    expect(missing.statusCode).toBe(404);
  });
});

describe("migration", () => {
  const YAML = `registry:
  fetch:
    description: Fetches URLs
    title: Fetch
    type: server
    image: mcp/fetch:1.0
  github:
    type: server
    image: mcp/github
    secrets:
      - name: github.token
        env: GITHUB_TOKEN
  hosted:
    type: remote
    remote:
      url: https://example.com/mcp
`;

  it("reports a dry run without writing, then imports into a base catalog", async () => {
    const f = await fixture();
    const dry = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?name=docker&dry_run=true",
      headers: { ...f.admin, "content-type": "application/yaml" },
      payload: YAML,
    });
    expect(dry.statusCode).toBe(200);
    expect(dry.json()).toMatchObject({
      dry_run: true,
      file: "catalogs/base/docker.json",
      imported: 2,
      skipped: 1,
    });
    expect(await f.read("catalogs/base/docker.json")).toBeUndefined();
    const real = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?name=docker",
      headers: { ...f.admin, "content-type": "text/yaml" },
      payload: YAML,
    });
    expect(real.statusCode).toBe(200);
    expect(answer(real).stored).toMatchObject({ created: true, changed: true });
    const written = JSON.parse((await f.read("catalogs/base/docker.json")) ?? "") as {
      servers: { id: string }[];
    };
    expect(written.servers.map((s) => s.id)).toEqual(["fetch", "github"]);
    const again = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?name=docker",
      headers: { ...f.admin, "content-type": "text/yaml" },
      payload: YAML,
    });
    expect(again.statusCode).toBe(409);
  });

  it("answers YAML that is not a Docker MCP catalog with 400", async () => {
    const f = await fixture();
    const response = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration",
      headers: { ...f.admin, "content-type": "application/yaml" },
      payload: "just: a map\n",
    });
    expect(response.statusCode).toBe(400);
    expect(answer(response).message).toMatch(/^request body: /);
    expect(response.body).not.toMatch(/migration-[0-9a-f]+\.yaml/);
  });

  const REGISTRY_PAGE = {
    servers: [
      {
        server: {
          $schema: "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
          name: "io.github.acme/weather",
          description: "Weather",
          version: "1.0.0",
          packages: [
            {
              registryType: "oci",
              identifier: "ghcr.io/acme/weather:1.0.0",
              transport: { type: "stdio" },
              environmentVariables: [{ name: "WEATHER_KEY", isSecret: true, isRequired: true }],
            },
          ],
        },
        _meta: { "io.modelcontextprotocol.registry/official": { status: "active", isLatest: true } },
      },
      {
        server: {
          name: "io.github.acme/files",
          description: "Files",
          version: "2.0.0",
          packages: [
            {
              registryType: "npm",
              identifier: "@acme/files",
              version: "2.0.0",
              transport: { type: "stdio" },
            },
          ],
        },
      },
      {
        server: {
          name: "io.example/hosted",
          description: "Hosted",
          version: "1.0.0",
          remotes: [{ type: "streamable-http", url: "https://mcp.example.com/mcp" }],
        },
      },
    ],
    metadata: { count: 3 },
  };

  it("format=mcp-registry imports a registry API page sent as JSON, into catalogs/base/mcp-registry.json", async () => {
    const f = await fixture();
    const dry = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=mcp-registry&dry_run=true&npm_runner_image=node:24.4-alpine",
      headers: f.admin,
      payload: REGISTRY_PAGE,
    });
    expect(dry.statusCode).toBe(200);
    const report = dry.json<{ servers: { name: string; status: string; reason?: string }[] }>();
    expect(report).toMatchObject({
      dry_run: true,
      format: "mcp-registry",
      file: "catalogs/base/mcp-registry.json",
      imported: 2,
      skipped: 1,
      catalog: {
        servers: [
          { id: "weather", image: "ghcr.io/acme/weather", tag: "1.0.0", required_secrets: ["WEATHER_KEY"] },
          { id: "files", image: "node", tag: "24.4-alpine" },
        ],
      },
    });
    expect(report.servers.find((s) => s.name === "io.example/hosted")?.reason).toContain("remote server");
    expect(await f.read("catalogs/base/mcp-registry.json")).toBeUndefined();

    const real = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=mcp-registry",
      headers: f.admin,
      payload: REGISTRY_PAGE,
    });
    expect(real.statusCode).toBe(200);
    expect(answer(real).stored).toMatchObject({ created: true, changed: true });
    const written = JSON.parse((await f.read("catalogs/base/mcp-registry.json")) ?? "") as {
      servers: { id: string; tag: string }[];
    };
    expect(written.servers.map((s) => `${s.id}:${s.tag}`)).toEqual(["weather:1.0.0", "files:24-alpine"]);
    const again = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=mcp-registry",
      headers: f.admin,
      payload: REGISTRY_PAGE,
    });
    expect(again.statusCode).toBe(409);
  });

  it("format=mcp-registry takes JSON as text too, and answers a refused body with 400 or 422", async () => {
    const f = await fixture();
    const asText = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=mcp-registry&name=registry&dry_run=true",
      headers: { ...f.admin, "content-type": "text/plain" },
      payload: JSON.stringify(REGISTRY_PAGE.servers[0]!.server),
    });
    expect(asText.statusCode).toBe(200);
    expect(asText.json()).toMatchObject({ file: "catalogs/base/registry.json", imported: 1 });

    const notJson = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=mcp-registry",
      headers: { ...f.admin, "content-type": "text/plain" },
      payload: "registry: {}",
    });
    expect(notJson.statusCode).toBe(400);
    expect(answer(notJson).message).toMatch(/^request body: not valid JSON/);

    const wrongShape = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=mcp-registry",
      headers: f.admin,
      payload: { hello: "world" },
    });
    expect(wrongShape.statusCode).toBe(400);
    expect(answer(wrongShape).message).toContain("neither a server.json");

    const oldSchema = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=mcp-registry",
      headers: f.admin,
      payload: {
        $schema: "https://static.modelcontextprotocol.io/schemas/2025-07-09/server.schema.json",
        name: "io.github.acme/old",
        description: "old",
        version_detail: { version: "1" },
      },
    });
    expect(oldSchema.statusCode).toBe(422);
    expect(answer(oldSchema).code).toBe("NOTHING_TO_IMPORT");
    expect(await f.read("catalogs/base/mcp-registry.json")).toBeUndefined();

    const badRunner = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=mcp-registry&pypi_runner_image=uv",
      headers: f.admin,
      payload: REGISTRY_PAGE,
    });
    expect(badRunner.statusCode).toBe(400);
    expect(answer(badRunner).message).toContain("has no tag");

    const dockerAsJson = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=docker-mcp",
      headers: f.admin,
      payload: REGISTRY_PAGE,
    });
    expect(dockerAsJson.statusCode).toBe(415);

    const unknownFormat = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/system/migration?format=toolhive",
      headers: f.admin,
      payload: REGISTRY_PAGE,
    });
    expect(unknownFormat.statusCode).toBe(400);
  });
});

describe("prune guard", () => {
  it("shows the latch and lets only the admin release it, audited", async () => {
    const f = await fixture();
    f.tripPruneGuard(40);
    const state = await f.http.inject({ method: "GET", url: "/api/v1/admin/prune-guard", headers: f.admin });
    expect(state.statusCode).toBe(200);
    expect(state.json()).toMatchObject({ tripped: true, reason: "test", pending: 40 });
    const alice = await f.tokenFor("alice");
    const refused = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/prune-guard/release",
      headers: alice,
    });
    expect(refused.statusCode).toBe(403);
    expect(f.released).toEqual([]);
    const released = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/prune-guard/release",
      headers: f.admin,
    });
    expect(released.statusCode).toBe(202);
    expect(released.json()).toEqual({ released: true, was_tripped: true, pending: 40 });
    expect(f.released).toEqual(["api:admin"]);
    expect(f.audits.find((a) => a.action === "release_prune_guard" && a.result === "success")).toMatchObject({
      result: "success",
      details: { was_tripped: true, pending: 40 },
    });
  });
});
