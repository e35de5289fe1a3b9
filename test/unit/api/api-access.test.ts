import { afterEach, describe, expect, it } from "vitest";
import { revokeToken } from "../../../src/auth/token-store.js";
import { type ApiFixture, type FixtureOptions, answer, apiFixture, server } from "./api-fixture.js";

const fixtures: ApiFixture[] = [];
async function fixture(options: FixtureOptions = {}): Promise<ApiFixture> {
  const f = await apiFixture(options);
  fixtures.push(f);
  await f.write("catalogs/base/main.json", {
    version: "1",
    source: "base",
    metadata: { name: "main" },
    servers: [server("time")],
  });
  return f;
}
afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
});

const USER_READS = ["/users/alice/catalog", "/users/alice/catalog/servers", "/users/alice/secrets"];
const ADMIN_READS = ["/admin/users", "/admin/catalogs/base"];

describe("API access control", () => {
  it("with no token configured refuses everything but the OpenAPI document (and /healthz, /metrics)", async () => {
    const f = await fixture({ adminToken: undefined });
    for (const url of [...USER_READS, ...ADMIN_READS, "/events"]) {
      const response = await f.http.inject({
        method: "GET",
        url: `/api/v1${url}`,
        headers: { authorization: "Bearer x" },
      });
      expect(response.statusCode, url).toBe(403);
      expect(response.json()).toMatchObject({ code: "API_DISABLED" });
      expect(answer(response).message).toMatch(/mcp-portal tokens create/);
    }
    const write = await f.http.inject({ method: "POST", url: "/api/v1/users/alice/servers/time/enable" });
    expect(write.statusCode).toBe(403);
    expect((await f.http.inject({ method: "GET", url: "/api/v1/openapi.json" })).statusCode).toBe(200);
    expect((await f.http.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    expect(await f.read("users/alice/enabled-servers.json")).toBeUndefined();
  });

  it("asks for a bearer token (401 + WWW-Authenticate) and refuses wrong ones", async () => {
    const f = await fixture();
    for (const headers of [{}, { authorization: "Bearer nope" }, { authorization: `Basic ${btoa("a:b")}` }]) {
      const response = await f.http.inject({ method: "GET", url: "/api/v1/users/alice/catalog", headers });
      expect(response.statusCode).toBe(401);
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer/);
      expect(response.json()).toMatchObject({ statusCode: 401, code: "UNAUTHENTICATED" });
    }
  });

  it("lets a user token reach only its own user's paths, never admin paths", async () => {
    const f = await fixture();
    const alice = await f.tokenFor("alice");
    for (const url of USER_READS) {
      expect(
        (await f.http.inject({ method: "GET", url: `/api/v1${url}`, headers: alice })).statusCode,
        url,
      ).toBe(200);
      const bob = url.replace("alice", "bob");
      const refused = await f.http.inject({ method: "GET", url: `/api/v1${bob}`, headers: alice });
      expect(refused.statusCode, bob).toBe(403);
      expect(refused.json()).toMatchObject({ code: "FORBIDDEN" });
    }
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/users/bob/status", headers: alice })).statusCode,
    ).toBe(403);
    for (const [method, url] of [
      ["POST", "/api/v1/users/bob/servers/time/enable"],
      ["POST", "/api/v1/users/bob/servers/time/disable"],
      ["POST", "/api/v1/users/bob/secrets"],
      ["DELETE", "/api/v1/users/bob/secrets/X"],
    ] as const) {
      const response = await f.http.inject({ method, url, headers: alice, payload: { secrets: { X: "y" } } });
      expect(response.statusCode, url).toBe(403);
    }
    for (const url of ADMIN_READS) {
      expect(
        (await f.http.inject({ method: "GET", url: `/api/v1${url}`, headers: alice })).statusCode,
        url,
      ).toBe(403);
    }
    const upload = await f.http.inject({
      method: "POST",
      url: "/api/v1/admin/catalogs/base",
      headers: alice,
      payload: { name: "x", catalog: {} },
    });
    expect(upload.statusCode).toBe(403);
    expect(await f.read("users/bob/enabled-servers.json")).toBeUndefined();
  });

  it("lets the admin token reach every user and admin path", async () => {
    const f = await fixture();
    for (const url of [...USER_READS, ...USER_READS.map((u) => u.replace("alice", "bob")), ...ADMIN_READS]) {
      expect(
        (await f.http.inject({ method: "GET", url: `/api/v1${url}`, headers: f.admin })).statusCode,
        url,
      ).toBe(200);
    }
  });

  it("notices a revoked token on the next request (tokens.json is re-read when it changes)", async () => {
    const f = await fixture();
    const alice = await f.tokenFor("alice");
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/users/alice/catalog", headers: alice })).statusCode,
    ).toBe(200);
    const id = /mcp_([0-9a-f]{16})_/.exec(alice.authorization ?? "")?.[1] ?? "";
    await revokeToken(f.stateDir, id);
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/users/alice/catalog", headers: alice })).statusCode,
    ).toBe(401);
  });

  it("in read-only mode answers every write with 403 READ_ONLY and still serves reads", async () => {
    const f = await fixture({ readOnly: true });
    const alice = await f.tokenFor("alice");
    for (const [method, url, payload] of [
      ["POST", "/api/v1/users/alice/servers/time/enable", undefined],
      ["POST", "/api/v1/users/alice/servers/time/disable", undefined],
      ["POST", "/api/v1/users/alice/secrets", { secrets: { X: "y" } }],
      ["DELETE", "/api/v1/users/alice/secrets/X", undefined],
      ["POST", "/api/v1/admin/catalogs/base", { name: "x", catalog: {} }],
      ["PUT", "/api/v1/admin/catalogs/base/main", {}],
      ["POST", "/api/v1/admin/users/alice/catalogs/regenerate", undefined],
      ["POST", "/api/v1/admin/system/migration", undefined],
    ] as const) {
      const headers = url.includes("/admin/") ? f.admin : alice;
      const response = await f.http.inject({ method, url, headers, ...(payload ? { payload } : {}) });
      expect(response.statusCode, url).toBe(403);
      expect(response.json()).toMatchObject({ code: "READ_ONLY" });
      expect(answer(response).message).toMatch(/read-only/);
    }
    expect(
      (await f.http.inject({ method: "GET", url: "/api/v1/users/alice/catalog", headers: alice })).statusCode,
    ).toBe(200);
    expect(await f.read("users/alice/enabled-servers.json")).toBeUndefined();
    expect(f.enqueued).toEqual([]);
    // Refused writes are audited as blocked.
    expect(f.audits.length).toBe(8);
    expect(f.audits.every((a) => a.result === "blocked")).toBe(true);
  });

  it("answers unknown paths under /api/v1 with the API's error shape", async () => {
    const f = await fixture();
    const response = await f.http.inject({ method: "GET", url: "/api/v1/nope", headers: f.admin });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ statusCode: 404, code: "NOT_FOUND" });
  });
});
