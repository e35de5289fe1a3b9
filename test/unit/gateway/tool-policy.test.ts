import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import {
  ALL_TOOLS,
  NO_TOOLS,
  filterToolsResult,
  globMatches,
  toolFilter,
} from "../../../src/gateway/tool-policy.js";

describe("tool globs", () => {
  it("match exactly and case-sensitively; * is any run (empty too), ? exactly one character", () => {
    expect(globMatches("echo", "echo")).toBe(true);
    expect(globMatches("echo", "Echo")).toBe(false);
    expect(globMatches("echo", "echo2")).toBe(false);
    expect(globMatches("delete_*", "delete_")).toBe(true);
    expect(globMatches("delete_*", "delete_repo")).toBe(true);
    expect(globMatches("delete_*", "undelete_repo")).toBe(false);
    expect(globMatches("*_admin", "repo_admin")).toBe(true);
    expect(globMatches("a?c", "abc")).toBe(true);
    expect(globMatches("a?c", "ac")).toBe(false);
    expect(globMatches("a?c", "a€c")).toBe(true);
    expect(globMatches("*", "")).toBe(true);
    expect(globMatches("a*b*c", "axxbyyc")).toBe(true);
    expect(globMatches("a*b*c", "axxbyy")).toBe(false);
    // Regular expression characters are themselves.
    expect(globMatches("a.b", "axb")).toBe(false);
    expect(globMatches("(x)+", "(x)+")).toBe(true);
  });

  it("cost at most name × glob steps: a hostile glob cannot stall the gateway", () => {
    const glob = `${"*a".repeat(60)}b`;
    const name = "a".repeat(128);
    const started = performance.now();
    for (let i = 0; i < 100; i++) expect(globMatches(glob, name)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("tool filters", () => {
  it("absent allow means every tool; deny wins over allow", () => {
    const filter = toolFilter({ allow: ["search_*", "get_file"], deny: ["search_private"] });
    expect(filter.visible("search_code")).toBe(true);
    expect(filter.visible("get_file")).toBe(true);
    expect(filter.visible("search_private")).toBe(false);
    expect(filter.visible("delete_repo")).toBe(false);
    const denyOnly = toolFilter({ deny: ["delete_*"] });
    expect(denyOnly.visible("anything")).toBe(true);
    expect(denyOnly.visible("delete_repo")).toBe(false);
    expect(toolFilter({ deny: [] })).toBe(ALL_TOOLS);
    expect(toolFilter({ allow: [], deny: [] }).visible("echo")).toBe(false);
  });

  it("filter a tools/list result, keeping everything else of it (cursor, metadata)", () => {
    const result = {
      tools: [{ name: "echo" }, { name: "add" }, { name: "slow" }, { title: "no name" }],
      nextCursor: "c2",
      _meta: { x: 1 },
    };
    expect(filterToolsResult(result, toolFilter({ deny: ["slow"] }))).toEqual({
      tools: [{ name: "echo" }, { name: "add" }],
      nextCursor: "c2",
      _meta: { x: 1 },
    });
    expect(filterToolsResult(result, NO_TOOLS)).toMatchObject({ tools: [] });
    // Nothing hidden: the same object.
    const plain = { tools: [{ name: "echo" }] };
    expect(filterToolsResult(plain, toolFilter({ deny: ["slow"] }))).toBe(plain);
    expect(filterToolsResult("not a result", NO_TOOLS)).toBe("not a result");
  });
});
