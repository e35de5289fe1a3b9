import { describe, expect, it } from "vitest";
import { buildEnvironment, selectEnvironment } from "../../../src/desired/environment.js";

const NONE = new Set<string>();

describe("buildEnvironment", () => {
  it("lets later layers win", () => {
    const { env, hashable } = buildEnvironment(
      [{ values: { A: "1", B: "1", C: "1" } }, { values: { B: "2", C: "2" } }, { values: { C: "3" } }],
      {},
      NONE,
    );
    expect(env).toEqual({ A: "1", B: "2", C: "3" });
    expect(hashable).toEqual(env);
  });

  it("hashes a secret by its digest, never its value", () => {
    const { env, hashable } = buildEnvironment(
      [{ values: { LOG: "info" } }, { values: { TOKEN: "s3cr3t" }, secret: true }],
      { TOKEN: "d1" },
      NONE,
    );
    expect(env).toEqual({ LOG: "info", TOKEN: "s3cr3t" });
    expect(hashable).toEqual({ LOG: "info", TOKEN: "secret-digest:d1" });
    expect(JSON.stringify(hashable)).not.toContain("s3cr3t");
  });

  it("marks a secret without a digest as unknown rather than leaking it", () => {
    const { hashable } = buildEnvironment([{ values: { TOKEN: "s3cr3t" }, secret: true }], {}, NONE);
    expect(hashable).toEqual({ TOKEN: "secret-digest:unknown" });
  });

  it("a secret overrides an earlier plain value and is hashed by digest", () => {
    const { env, hashable } = buildEnvironment(
      [{ values: { TOKEN: "placeholder" } }, { values: { TOKEN: "real" }, secret: true }],
      { TOKEN: "d" },
      NONE,
    );
    expect(env.TOKEN).toBe("real");
    expect(hashable.TOKEN).toBe("secret-digest:d");
  });

  it("a later plain layer overriding a secret is hashed as the plain value it now is", () => {
    const { env, hashable } = buildEnvironment(
      [{ values: { TOKEN: "real" }, secret: true }, { values: { TOKEN: "override" } }],
      { TOKEN: "d" },
      NONE,
    );
    expect(env.TOKEN).toBe("override");
    expect(hashable.TOKEN).toBe("override");
  });

  it("leaves volatile keys out of the hashable form only", () => {
    const { env, hashable } = buildEnvironment(
      [{ values: { MCP_PORTAL_VERSION: "1.2.3", A: "x" } }],
      {},
      new Set(["MCP_PORTAL_VERSION"]),
    );
    expect(env).toEqual({ MCP_PORTAL_VERSION: "1.2.3", A: "x" });
    expect(hashable).toEqual({ A: "x" });
  });

  it("returns empty maps for no layers", () => {
    expect(buildEnvironment([], {}, NONE)).toEqual({ env: {}, hashable: {} });
  });
});

describe("buildEnvironment with names that mean something to JavaScript objects", () => {
  it("keeps them as plain names: none reaches a prototype or finds one", () => {
    // JSON.parse makes __proto__ an own key, as a file would (the schemas refuse it; this is the second line).
    const layer = JSON.parse('{"__proto__":"x","toString":"y","A":"1"}') as Record<string, string>;
    const { env, hashable } = buildEnvironment([{ values: layer }], {}, NONE);
    expect(Object.getPrototypeOf(env)).toBe(Object.prototype);
    expect(Object.keys(env)).toEqual(["__proto__", "toString", "A"]);
    expect(Object.hasOwn(env, "__proto__")).toBe(true);
    expect(hashable).toEqual(env);
  });

  it("looks secret digests up by own name only", () => {
    const { hashable } = buildEnvironment([{ values: { constructor: "v" }, secret: true }], {}, NONE);
    expect(hashable).toEqual({ constructor: "secret-digest:unknown" });
  });
});

describe("selectEnvironment", () => {
  it("passes everything with 'all'", () => {
    expect(selectEnvironment({ A: "1", B: "2" }, "all")).toEqual({ values: { A: "1", B: "2" }, dropped: [] });
  });

  it("keeps only the allowed names and lists the dropped ones, sorted", () => {
    expect(selectEnvironment({ Z: "1", A: "2", KEEP: "3" }, new Set(["KEEP"]))).toEqual({
      values: { KEEP: "3" },
      dropped: ["A", "Z"],
    });
    expect(selectEnvironment({ A: "1" }, new Set())).toEqual({ values: {}, dropped: ["A"] });
  });
});
