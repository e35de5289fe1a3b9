import { afterEach, describe, expect, it } from "vitest";
import { type ApiFixture, apiFixture } from "./api-fixture.js";

const fixtures: ApiFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
});

interface Operation {
  security: Record<string, string[]>[];
  parameters: { name: string; in: string }[];
  requestBody?: { content: Record<string, { schema: { $ref: string } }> };
  responses: Record<string, unknown>;
}

describe("OpenAPI document", () => {
  it("lists every registered route under /api/v1 with its security, and resolves every $ref", async () => {
    const f = await apiFixture();
    fixtures.push(f);
    const registered = new Set<string>();
    const response = await f.http.inject({ method: "GET", url: "/api/v1/openapi.json" });
    expect(response.statusCode).toBe(200);
    const doc = response.json<{
      openapi: string;
      paths: Record<string, Record<string, Operation>>;
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
    }>();
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(["adminToken", "userToken"]);
    for (const [route, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        registered.add(`${method.toUpperCase()} ${route}`);
        const url = route.replace(/\{([^}]+)\}/g, ":$1");
        expect(f.http.hasRoute({ method: method.toUpperCase(), url }), `${method} ${route}`).toBe(true);
        if (route === "/api/v1/openapi.json" || route === "/api/v1/info")
          expect(operation.security).toEqual([]);
        else if (route.startsWith("/api/v1/admin/")) expect(operation.security).toEqual([{ adminToken: [] }]);
        else expect(operation.security).toEqual([{ userToken: [] }, { adminToken: [] }]);
        for (const name of [...route.matchAll(/\{([^}]+)\}/g)].map((m) => m[1])) {
          expect(operation.parameters).toContainEqual(
            expect.objectContaining({ name, in: "path", required: true }),
          );
        }
      }
    }
    expect([...registered].sort()).toEqual(f.api.routes.map((r) => `${r.method} /api/v1${r.path}`).sort());
    expect(registered.size).toBe(27);
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map(
      (m) => m[1] ?? "",
    );
    for (const ref of refs) expect(doc.components.schemas, ref).toHaveProperty(ref);
    expect(
      doc.paths["/api/v1/admin/catalogs/base/{catalog_id}"]?.put?.requestBody?.content["application/json"]
        ?.schema,
    ).toEqual({
      $ref: "#/components/schemas/BaseCatalogFile",
    });
    const migration = doc.paths["/api/v1/admin/system/migration"]?.post;
    expect(Object.keys(migration?.requestBody?.content ?? {})).toEqual(
      expect.arrayContaining(["application/yaml", "application/json"]),
    );
    const format = migration?.parameters.find((p) => p.name === "format") as
      { in: string; schema: { enum?: string[] } } | undefined;
    expect(format?.in).toBe("query");
    expect(format?.schema.enum).toEqual(["docker-mcp", "mcp-registry"]);
  });

  it("every route fastify registered under /api/v1 is in the document", async () => {
    const f = await apiFixture();
    fixtures.push(f);
    const doc = (await f.http.inject({ method: "GET", url: "/api/v1/openapi.json" })).json<{
      paths: Record<string, Record<string, unknown>>;
    }>();
    const registered = f.routes.filter((r) => r.url.startsWith("/api/v1/") && r.method !== "HEAD");
    expect(registered.length).toBe(27);
    for (const { method, url } of registered) {
      const path = url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
      expect(doc.paths[path]?.[method.toLowerCase()], `${method} ${url}`).toBeDefined();
    }
  });
});
