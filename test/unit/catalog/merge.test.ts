import { describe, expect, it } from "vitest";
import { catalogServers, mergeGlobalCatalog, mergeUserCatalog } from "../../../src/catalog/merge.js";
import { formatProblem } from "../../../src/validate/problem.js";
import { base, custom, overlay, server } from "./fixtures.js";

/** Deterministic Fisher-Yates with a small LCG, so a failure is reproducible from its seed. */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe("mergeGlobalCatalog", () => {
  const files = [
    base("catalogs/base/a.json", [server("time"), server("fetch"), server("shared", { tag: "from-a" })]),
    base("catalogs/base/b.json", [server("github"), server("shared", { tag: "from-b" })]),
    base("catalogs/base/c.json", [server("memory"), server("sqlite")]),
    base("catalogs/base/d.json", []),
  ];

  it("is deterministic for any listing order", () => {
    const reference = mergeGlobalCatalog(files, []);
    for (let seed = 1; seed <= 25; seed++) {
      const merged = mergeGlobalCatalog(shuffle(files, seed), []);
      expect(catalogServers(merged.catalog)).toEqual(catalogServers(reference.catalog));
      expect(merged.catalog.inputsHash).toBe(reference.catalog.inputsHash);
      expect(merged.problems).toEqual(reference.problems);
    }
    expect(catalogServers(reference.catalog).map((s) => s.id)).toEqual([
      "fetch",
      "github",
      "memory",
      "shared",
      "sqlite",
      "time",
    ]);
  });

  it("reports the same id in two base catalogs, naming both files; the first file by name wins", () => {
    const merged = mergeGlobalCatalog(shuffle(files, 7), []);
    expect(merged.problems.map(formatProblem)).toEqual([
      'catalogs/base/b.json: $.servers[1].id: server id "shared" is also defined in catalogs/base/a.json ($.servers[2])',
    ]);
    expect(merged.catalog.servers.get("shared")?.definition.tag).toBe("from-a");
  });

  it("changes the inputs hash when a file's content changes", () => {
    const before = mergeGlobalCatalog(files, []).catalog.inputsHash;
    const changed = [...files.slice(0, 3), base("catalogs/base/d.json", [server("extra")])];
    expect(mergeGlobalCatalog(changed, []).catalog.inputsHash).not.toBe(before);
  });

  it("merges overlay fields: maps merge key by key, arrays and scalars replace", () => {
    const merged = mergeGlobalCatalog(
      [
        base("catalogs/base/a.json", [
          server("fetch", {
            environment: { LOG_LEVEL: "info", KEEP: "yes" },
            resources: { memory_mb: 128, cpu_shares: 64 },
            command: ["--a", "--b"],
            required_secrets: ["ONE", "TWO"],
            tag: "1.0",
          }),
        ]),
      ],
      [
        overlay("catalogs/overlays/prod.json", [
          {
            id: "fetch",
            environment: { LOG_LEVEL: "warning" },
            resources: { memory_mb: 256 },
            command: ["--c"],
            required_secrets: ["THREE"],
            tag: "1.1",
          },
        ]),
      ],
    );
    expect(merged.problems).toEqual([]);
    const fetch = merged.catalog.servers.get("fetch");
    expect(fetch?.definition).toMatchObject({
      environment: { LOG_LEVEL: "warning", KEEP: "yes" },
      resources: { memory_mb: 256, cpu_shares: 64 },
      command: ["--c"],
      required_secrets: ["THREE"],
      tag: "1.1",
      image: "mcp/fetch",
    });
    expect(fetch?.origin).toEqual({ file: "catalogs/overlays/prod.json", index: 0, source: "catalog" });
  });

  it("applies overlays in the order given", () => {
    const first = overlay("catalogs/overlays/one.json", [{ id: "time", tag: "one" }]);
    const second = overlay("catalogs/overlays/two.json", [{ id: "time", tag: "two" }]);
    const baseFiles = [base("catalogs/base/a.json", [server("time")])];
    expect(mergeGlobalCatalog(baseFiles, [first, second]).catalog.servers.get("time")?.definition.tag).toBe(
      "two",
    );
    expect(mergeGlobalCatalog(baseFiles, [second, first]).catalog.servers.get("time")?.definition.tag).toBe(
      "one",
    );
  });

  it("withdraws a server an overlay disables", () => {
    const merged = mergeGlobalCatalog(
      [base("catalogs/base/a.json", [server("time"), server("everything")])],
      [overlay("catalogs/overlays/prod.json", [{ id: "everything", disabled: true }])],
    );
    expect(merged.problems).toEqual([]);
    expect([...merged.catalog.servers.keys()]).toEqual(["time"]);
  });

  it("lets an overlay add a complete server, and reports an incomplete one", () => {
    const merged = mergeGlobalCatalog(
      [base("catalogs/base/a.json", [server("time")])],
      [
        overlay("catalogs/overlays/prod.json", [
          server("added"),
          { id: "half", image: "mcp/half" },
          { id: "time", transport: "sse" },
        ]),
      ],
    );
    expect(merged.problems.map(formatProblem)).toEqual([
      'catalogs/overlays/prod.json: $.servers[1].name: adds server "half" that no base catalog defines, but: Invalid input: expected string, received undefined',
      "catalogs/overlays/prod.json: $.servers[2].ports: after applying this overlay: a sse server must declare the container port it listens on",
    ]);
    expect([...merged.catalog.servers.keys()].sort()).toEqual(["added", "time"]);
    // A patch that fails leaves the server as it was.
    expect(merged.catalog.servers.get("time")?.definition.transport).toBe("stdio");
  });
});

describe("mergeUserCatalog", () => {
  it("replaces by id and adds the user's custom servers", () => {
    const global = mergeGlobalCatalog([base("catalogs/base/a.json", [server("time"), server("fetch")])], []);
    const user = mergeUserCatalog(
      global.catalog,
      custom("users/alice/custom-servers.json", [server("fetch", { tag: "mine" }), server("notes")]),
    );
    expect(catalogServers(user).map((s) => [s.id, s.tag])).toEqual([
      ["fetch", "mine"],
      ["notes", "latest"],
      ["time", "latest"],
    ]);
    expect(user.servers.get("fetch")?.origin).toEqual({
      file: "users/alice/custom-servers.json",
      index: 0,
      source: "user",
    });
    expect(user.servers.get("time")?.origin.source).toBe("catalog");
    expect(global.catalog.servers.get("fetch")?.definition.tag).toBe("latest");
    expect(user.inputsHash).not.toBe(mergeUserCatalog(global.catalog, undefined).inputsHash);
  });
});
