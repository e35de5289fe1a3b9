import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type ApiFixture, answer, apiFixture, server } from "./api-fixture.js";

const fixtures: ApiFixture[] = [];
async function fixture(): Promise<ApiFixture> {
  const f = await apiFixture();
  fixtures.push(f);
  await f.write("catalogs/base/b.json", {
    version: "1",
    source: "base",
    metadata: { name: "b" },
    servers: [server("zeta", { category: "tools" }), server("alpha", { category: "dev" })],
  });
  await f.write("catalogs/base/a.json", {
    version: "1",
    source: "base",
    metadata: { name: "a" },
    servers: [server("mid", { category: "dev" })],
  });
  return f;
}
afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
});

describe("reads", () => {
  it("serves the merged catalog sorted by id, with the user's custom servers and a catalog version", async () => {
    const f = await fixture();
    await f.write("users/alice/custom-servers.json", {
      version: "1",
      source: "user",
      metadata: { name: "mine" },
      servers: [server("mine", { category: "dev" }), server("zeta", { description: "my zeta" })],
    });
    const alice = await f.tokenFor("alice");
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/catalog",
      headers: alice,
    });
    expect(response.statusCode).toBe(200);
    const body = response.json<{
      catalog_version: string;
      servers: { id: string; description?: string }[];
    }>();
    expect(body.servers.map((s) => s.id)).toEqual(["alpha", "mid", "mine", "zeta"]);
    expect(body.servers.at(-1)?.description).toBe("my zeta");
    expect(body.catalog_version).toMatch(/^[0-9a-f]{64}$/);
    const bob = await f.http.inject({ method: "GET", url: "/api/v1/users/bob/catalog", headers: f.admin });
    expect(bob.json<{ servers: unknown[] }>().servers).toHaveLength(3);
    expect(bob.json<{ catalog_version: string }>().catalog_version).not.toBe(body.catalog_version);
  });

  it("filters servers by category and enabled_only", async () => {
    const f = await fixture();
    await f.write("users/alice/enabled-servers.json", { servers: [{ id: "mid" }, { id: "zeta" }] });
    const get = async (query: string) =>
      (
        await f.http.inject({
          method: "GET",
          url: `/api/v1/users/alice/catalog/servers${query}`,
          headers: f.admin,
        })
      ).json<{ servers: { id: string; enabled: boolean }[] }>().servers;
    expect((await get("")).map((s) => [s.id, s.enabled])).toEqual([
      ["alpha", false],
      ["mid", true],
      ["zeta", true],
    ]);
    expect((await get("?category=dev")).map((s) => s.id)).toEqual(["alpha", "mid"]);
    expect((await get("?enabled_only=true")).map((s) => s.id)).toEqual(["mid", "zeta"]);
    expect((await get("?category=dev&enabled_only=1")).map((s) => s.id)).toEqual(["mid"]);
    const bad = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/catalog/servers?enabled_only=maybe",
      headers: f.admin,
    });
    expect(bad.statusCode).toBe(400);
    expect(answer(bad).problems[0]).toMatch(/^query: \$\.enabled_only: /);
  });

  it("serves the last good catalog with its problems when a catalog breaks, 503 before any was valid", async () => {
    const f = await fixture();
    await f.write("catalogs/base/a.json", "{ broken");
    const first = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/alice/catalog",
      headers: f.admin,
    });
    expect(first.statusCode).toBe(503);
    expect(answer(first).problems[0]).toMatch(/^catalogs\/base\/a\.json: line 1, column 3: invalid JSON/);
  });

  it("serves status.json as written, 404 before there is one", async () => {
    const f = await fixture();
    const alice = await f.tokenFor("alice");
    const missing = await f.http.inject({ method: "GET", url: "/api/v1/users/alice/status", headers: alice });
    expect(missing.statusCode).toBe(404);
    const status = {
      api_version: "mcp-portal/v1",
      user_id: "alice",
      phase: "Ready",
      servers: [{ id: "mid", phase: "Running" }],
      last_reconciles: [],
    };
    await mkdir(path.join(f.stateDir, "users/alice"), { recursive: true });
    await writeFile(path.join(f.stateDir, "users/alice/status.json"), JSON.stringify(status));
    const found = await f.http.inject({ method: "GET", url: "/api/v1/users/alice/status", headers: alice });
    expect(found.statusCode).toBe(200);
    expect(found.headers["content-type"]).toMatch(/^application\/json/);
    expect(found.json()).toEqual(status);
  });

  it("gives the admin an overview of users with phase and server counts", async () => {
    const f = await fixture();
    await f.write("users/alice/enabled-servers.json", { servers: [] });
    await f.write("users/bob/enabled-servers.json", { servers: [] });
    await mkdir(path.join(f.dataDir, "users/bad.name"), { recursive: true });
    await mkdir(path.join(f.stateDir, "users/alice"), { recursive: true });
    await writeFile(
      path.join(f.stateDir, "users/alice/status.json"),
      JSON.stringify({
        phase: "Degraded",
        observed_generation: "g1",
        servers: [
          { id: "a", phase: "Running" },
          { id: "b", phase: "Blocked" },
          { id: "c", phase: "Running" },
        ],
        last_reconciles: [{ result: "success" }],
      }),
    );
    const response = await f.http.inject({ method: "GET", url: "/api/v1/admin/users", headers: f.admin });
    expect(response.json()).toEqual({
      users: [
        {
          user_id: "alice",
          phase: "Degraded",
          observed_generation: "g1",
          servers: { total: 3, running: 2, pending: 0, blocked: 1, failed: 0 },
          last_reconcile: { result: "success" },
        },
        {
          user_id: "bob",
          phase: null,
          observed_generation: null,
          servers: { total: 0, running: 0, pending: 0, blocked: 0, failed: 0 },
          last_reconcile: null,
        },
      ],
      problems: [expect.stringMatching(/^users\/bad\.name: \$: directory name is not a valid user id/)],
    });
  });
});
