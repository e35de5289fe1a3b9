import { describe, expect, it } from "vitest";
import { BaseCatalogFile, OverlayCatalogFile, UserCatalogFile } from "../../../src/schema/catalog.js";
import { EnabledServersFile } from "../../../src/schema/enabled-servers.js";
import { PolicyFile } from "../../../src/schema/policy.js";
import { formatProblem, problemsFromZod } from "../../../src/validate/problem.js";
import type { z } from "zod";
import { server } from "./fixtures.js";

function problems(schema: z.ZodType, value: unknown): string[] {
  const parsed = schema.safeParse(value);
  return parsed.success ? [] : problemsFromZod("f.json", parsed.error).map(formatProblem).sort();
}

const catalog = (servers: unknown[], extra: Record<string, unknown> = {}) => ({
  version: "1",
  source: "base",
  metadata: { name: "Test" },
  servers,
  ...extra,
});

describe("file schemas", () => {
  it("accept a minimal base catalog and fill in defaults", () => {
    const parsed = BaseCatalogFile.parse(catalog([server("time")]));
    expect(parsed.servers[0]).toMatchObject({
      tag: "latest",
      transport: "stdio",
      environment: {},
      volumes: [],
      user_configurable: false,
      required_secrets: [],
    });
  });

  it("reject unknown fields at every level", () => {
    expect(problems(BaseCatalogFile, catalog([server("time", { imgae: "x" })], { owner: "me" }))).toEqual([
      "f.json: $.owner: unknown field",
      "f.json: $.servers[0].imgae: unknown field",
    ]);
    expect(problems(BaseCatalogFile, catalog([server("time", { resources: { memory: 64 } })]))).toEqual([
      "f.json: $.servers[0].resources.memory: unknown field",
    ]);
    expect(problems(EnabledServersFile, { servers: [{ id: "time", cfg: {} }] })).toEqual([
      "f.json: $.servers[0].cfg: unknown field",
    ]);
    expect(problems(PolicyFile, { allowed_images: ["*"], limits: {} })).toEqual([
      "f.json: $.limits: unknown field",
    ]);
  });

  it("reject missing required fields", () => {
    expect(problems(BaseCatalogFile, catalog([{ id: "time", image: "mcp/time" }]))).toEqual([
      "f.json: $.servers[0].name: Invalid input: expected string, received undefined",
    ]);
    expect(problems(BaseCatalogFile, { source: "base", servers: [] })).toEqual([
      "f.json: $.metadata: Invalid input: expected object, received undefined",
      "f.json: $.version: Invalid input: expected string, received undefined",
    ]);
    expect(problems(EnabledServersFile, {})).toEqual([
      "f.json: $.servers: Invalid input: expected array, received undefined",
    ]);
  });

  it("reject bad ids, a tag inside the image name and HTTP servers without a port", () => {
    expect(problems(BaseCatalogFile, catalog([server("../etc", { image: "mcp/etc" })]))).toEqual([
      "f.json: $.servers[0].id: server id must match ^[a-zA-Z0-9_-]{1,32}$",
    ]);
    expect(problems(BaseCatalogFile, catalog([server("x".repeat(33))]))).toHaveLength(1);
    expect(problems(BaseCatalogFile, catalog([server("time", { image: "mcp/time:1.0" })]))).toEqual([
      "f.json: $.servers[0].image: not a valid image name (put the tag in `tag`, not in `image`)",
    ]);
    expect(problems(BaseCatalogFile, catalog([server("web", { transport: "sse" })]))).toEqual([
      "f.json: $.servers[0].ports: a sse server must declare the container port it listens on",
    ]);
    expect(problems(PolicyFile, { users: { "bad.user": {} } })).toHaveLength(1);
  });

  it("reject duplicate ids within one file", () => {
    expect(problems(BaseCatalogFile, catalog([server("a"), server("b"), server("a")]))).toEqual([
      'f.json: $.servers[2].id: duplicate server id "a" (first at $.servers[0])',
    ]);
    expect(problems(EnabledServersFile, { servers: [{ id: "a" }, { id: "a" }] })).toEqual([
      'f.json: $.servers[1].id: server "a" is enabled twice (first at $.servers[0])',
    ]);
  });

  it("check source against the file kind", () => {
    const file = { ...catalog([server("a")]), source: "user" };
    expect(problems(BaseCatalogFile, file)).toEqual(['f.json: $.source: Invalid input: expected "base"']);
    expect(problems(UserCatalogFile, file)).toEqual([]);
    expect(problems(OverlayCatalogFile, { ...file, source: "overlay", servers: [{ id: "a" }] })).toEqual([]);
  });
});
