import { describe, expect, it } from "vitest";
import { resolveUserVolumePath } from "../../../src/desired/volume-paths.js";

function ok(hostPath: string, userId = "alice") {
  const result = resolveUserVolumePath(hostPath, userId);
  if (!result.ok) throw new Error(`expected ${hostPath} to resolve, got: ${result.reason}`);
  return result.value;
}

function refused(hostPath: string, userId = "alice"): string {
  const result = resolveUserVolumePath(hostPath, userId);
  if (result.ok) throw new Error(`expected ${hostPath} to be refused, got ${JSON.stringify(result.value)}`);
  return result.reason;
}

describe("resolveUserVolumePath", () => {
  it("maps each placeholder to its area", () => {
    expect(ok("{USER_DATA}/github")).toEqual({ area: "data", subpath: "github" });
    expect(ok("{USER_CACHE}/github/http")).toEqual({ area: "cache", subpath: "github/http" });
    expect(ok("{USER_CONFIG}/x.json")).toEqual({ area: "config", subpath: "x.json" });
  });

  it("accepts a bare placeholder (or with a trailing slash) as the area itself", () => {
    expect(ok("{USER_DATA}")).toEqual({ area: "data", subpath: "" });
    expect(ok("{USER_CACHE}/")).toEqual({ area: "cache", subpath: "" });
    expect(ok("{USER_CONFIG}")).toEqual({ area: "config", subpath: "" });
  });

  it("puts relative paths into the data area", () => {
    expect(ok("notes")).toEqual({ area: "data", subpath: "notes" });
    expect(ok("github/repos")).toEqual({ area: "data", subpath: "github/repos" });
  });

  it("collapses repeated and trailing slashes", () => {
    expect(ok("{USER_DATA}//a///b/")).toEqual({ area: "data", subpath: "a/b" });
  });

  it("substitutes {USER_ID} anywhere, before anything else", () => {
    expect(ok("{USER_DATA}/{USER_ID}/x")).toEqual({ area: "data", subpath: "alice/x" });
    expect(ok("{USER_ID}")).toEqual({ area: "data", subpath: "alice" });
    expect(ok("cache-{USER_ID}", "bob-2")).toEqual({ area: "data", subpath: "cache-bob-2" });
  });

  it("refuses .. and . anywhere", () => {
    expect(refused("{USER_DATA}/../bob")).toMatch(/escape/);
    expect(refused("../etc")).toMatch(/"\.\." would escape/);
    expect(refused("a/b/../../..")).toMatch(/escape/);
    expect(refused("{USER_CACHE}/./x")).toMatch(/"\." would escape/);
  });

  it("refuses absolute host paths", () => {
    expect(refused("/etc")).toMatch(/absolute host paths are not allowed/);
    expect(refused("/var/run/docker.sock")).toMatch(/absolute/);
    expect(refused("/")).toMatch(/absolute/);
  });

  it("refuses unknown, lower-case or misplaced placeholders", () => {
    expect(refused("{HOME}/x")).toMatch(/unknown placeholder/);
    expect(refused("{user_data}/x")).toMatch(/unknown placeholder/);
    expect(refused("x/{USER_DATA}")).toMatch(/unknown placeholder/);
    expect(refused("{USER_DATA}/{USER_CACHE}")).toMatch(/unknown placeholder/);
    expect(refused("{USER_DATA}/a}")).toMatch(/unknown placeholder/);
  });

  it('requires "/" right after a placeholder', () => {
    expect(refused("{USER_DATA}x")).toMatch(/expected "\/" after \{USER_DATA\}/);
    expect(refused("{USER_CACHE}..")).toMatch(/expected "\/"/);
  });

  it("refuses segments that are not plain names", () => {
    expect(refused("{USER_DATA}/.hidden")).toMatch(/not a plain name/);
    expect(refused("a b")).toMatch(/not a plain name/);
    expect(refused("a\\..\\b")).toMatch(/not a plain name/);
    expect(refused("-flag")).toMatch(/not a plain name/);
    expect(refused("x".repeat(65))).toMatch(/not a plain name/);
    expect(ok("x".repeat(64))).toEqual({ area: "data", subpath: "x".repeat(64) });
    expect(ok("v1.2_x-y")).toEqual({ area: "data", subpath: "v1.2_x-y" });
  });

  it("allows 8 levels and refuses 9", () => {
    expect(ok("{USER_DATA}/1/2/3/4/5/6/7/8").subpath).toBe("1/2/3/4/5/6/7/8");
    expect(refused("{USER_DATA}/1/2/3/4/5/6/7/8/9")).toMatch(/nested too deep/);
  });
});
