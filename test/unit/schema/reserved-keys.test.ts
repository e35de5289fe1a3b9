// Keys of maps in files (environment names, server_security and users ids) come from users and admins. JSON.parse
// makes `__proto__` an own key; zod would drop it without a word (so an admin's entry under it silently never
// applies), and `constructor` or `prototype` as a name would be looked up on Object.prototype by plain indexing.
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { BaseCatalogFile, OverlayCatalogFile, UserCatalogFile } from "../../../src/schema/catalog.js";
import { EnabledServersFile } from "../../../src/schema/enabled-servers.js";
import { PolicyFile } from "../../../src/schema/policy.js";
import { ENV_NAME_PATTERN, SERVER_ID_PATTERN, isValidServerId } from "../../../src/util/ids.js";
import { formatProblem, problemsFromZod } from "../../../src/validate/problem.js";

/** Parses JSON text as the controller reads a file: `__proto__` is then an own key, as in a real file. */
function problems(schema: z.ZodType, json: string): string[] {
  const parsed = schema.safeParse(JSON.parse(json));
  return parsed.success ? [] : problemsFromZod("f.json", parsed.error).map(formatProblem).sort();
}

const catalog = (source: string, serverJson: string) =>
  `{"version":"1","source":"${source}","metadata":{"name":"t"},"servers":[${serverJson}]}`;

describe("__proto__ as a key", () => {
  it("is refused in policy.json server_security instead of silently dropped", () => {
    expect(problems(PolicyFile, '{"server_security":{"__proto__":{"cap_add":["SYS_ADMIN"]}}}')).toEqual([
      "f.json: $.server_security.__proto__: __proto__ is a reserved name",
    ]);
    // Nothing reached a prototype on the way.
    expect((Object.prototype as Record<string, unknown>).cap_add).toBeUndefined();
  });

  it("is refused in policy.json users", () => {
    expect(problems(PolicyFile, '{"users":{"__proto__":{"limits":{"max_containers":1000}}}}')).toEqual([
      "f.json: $.users.__proto__: __proto__ is a reserved name",
    ]);
  });

  it("is refused as an environment name, top-level and per-server", () => {
    expect(problems(EnabledServersFile, '{"servers":[],"environment":{"__proto__":"x"}}')).toEqual([
      "f.json: $.environment.__proto__: __proto__ is a reserved name",
    ]);
    expect(
      problems(
        EnabledServersFile,
        '{"servers":[{"id":"a","config":{"environment":{"__proto__":"x","OK":"1"}}}]}',
      ),
    ).toEqual(["f.json: $.servers[0].config.environment.__proto__: __proto__ is a reserved name"]);
  });

  it("is refused as an environment name in every kind of catalog", () => {
    const withEnv = '{"id":"a","name":"a","image":"mcp/a","environment":{"__proto__":"x"}}';
    const message = "f.json: $.servers[0].environment.__proto__: __proto__ is a reserved name";
    expect(problems(BaseCatalogFile, catalog("base", withEnv))).toEqual([message]);
    expect(problems(UserCatalogFile, catalog("user", withEnv))).toEqual([message]);
    expect(
      problems(OverlayCatalogFile, catalog("overlay", '{"id":"a","environment":{"__proto__":"x"}}')),
    ).toEqual([message]);
  });

  it("is refused as a server id", () => {
    expect(problems(EnabledServersFile, '{"servers":[{"id":"__proto__"}]}')).toEqual([
      "f.json: $.servers[0].id: __proto__ is a reserved name",
    ]);
    expect(
      problems(UserCatalogFile, catalog("user", '{"id":"__proto__","name":"p","image":"mcp/p"}')),
    ).toEqual(["f.json: $.servers[0].id: __proto__ is a reserved name"]);
    expect(isValidServerId("__proto__")).toBe(false);
    expect(SERVER_ID_PATTERN.test("__proto__")).toBe(false);
  });
});

describe("constructor and prototype", () => {
  it("are refused as environment names (no program reads them; they shadow Object.prototype)", () => {
    for (const name of ["constructor", "prototype"]) {
      expect(problems(EnabledServersFile, `{"servers":[],"environment":{"${name}":"x"}}`)).toEqual([
        `f.json: $.environment.${name}: invalid key: __proto__, constructor and prototype are reserved names`,
      ]);
      expect(ENV_NAME_PATTERN.test(name)).toBe(false);
    }
    // Other bad names keep their reason, said about the key rather than zod's "Invalid key in record".
    expect(problems(EnabledServersFile, '{"servers":[],"environment":{"1BAD":"x"}}')).toEqual([
      'f.json: $.environment["1BAD"]: invalid key: not a valid environment variable name',
    ]);
    // Only the exact names: longer ones and other cases stay ordinary names.
    for (const name of ["constructor_x", "Constructor", "PROTOTYPE", "__proto"]) {
      expect(problems(EnabledServersFile, `{"servers":[],"environment":{"${name}":"x"}}`)).toEqual([]);
    }
  });

  it("are refused in user_env_allow", () => {
    expect(problems(PolicyFile, '{"server_security":{"p":{"user_env_allow":["TZ","constructor"]}}}')).toEqual(
      [
        "f.json: $.server_security.p.user_env_allow[1]: __proto__, constructor and prototype are reserved names",
      ],
    );
  });

  it("stay valid server ids, kept as own keys of server_security", () => {
    const policy = PolicyFile.parse(JSON.parse('{"server_security":{"constructor":{"user":"0:0"}}}'));
    expect(Object.hasOwn(policy.server_security, "constructor")).toBe(true);
    expect(Object.hasOwn(PolicyFile.parse({}).server_security, "constructor")).toBe(false);
    expect(isValidServerId("constructor")).toBe(true);
    expect(isValidServerId("prototype")).toBe(true);
  });
});
