// bench:cleanup removes only what an interrupted run left: a running benchmark's objects on the same engine stay.
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config.js";
import {
  benchInstallation,
  benchOwnerPid,
  cleanupVerdict,
  processAlive,
} from "../../../bench/lib/installation.js";

describe("bench installation names", () => {
  it("carry the owning pid and are valid installation names at the longest kind and pid", () => {
    const name = benchInstallation("idlemem", 4_194_304);
    expect(name).toMatch(/^bench-idlemem-4194304-[0-9a-f]{6}$/);
    expect(benchOwnerPid(name)).toBe(4_194_304);
    expect(loadConfig({ MCP_PORTAL_INSTALLATION: name }).installation).toBe(name);
    expect(benchOwnerPid(benchInstallation("conv"))).toBe(process.pid);
  });

  it("refuse a kind that would make an invalid or ambiguous name", () => {
    expect(() => benchInstallation("conv-2")).toThrow(/kind/);
    expect(() => benchInstallation("averylongkind")).toThrow(/kind/);
  });

  it("without a pid (older runs, hand-made) have no owner", () => {
    expect(benchOwnerPid("bench-conv-c45230")).toBeUndefined();
    expect(benchOwnerPid("bench-conv-12-c45230x")).toBeUndefined();
  });
});

describe("cleanupVerdict", () => {
  const alive = (pid: number) => pid === 100;

  it("removes an installation whose run is gone and keeps one whose run still goes", () => {
    expect(cleanupVerdict("bench-conv-200-abcdef", alive, false)).toBe("remove");
    expect(cleanupVerdict("bench-conv-100-abcdef", alive, false)).toBe("in-use");
  });

  it("leaves names without an owner unless everything is asked for", () => {
    expect(cleanupVerdict("bench-conv-abcdef", alive, false)).toBe("unknown-owner");
    expect(cleanupVerdict("bench-conv-abcdef", alive, true)).toBe("remove");
    expect(cleanupVerdict("bench-conv-100-abcdef", alive, true)).toBe("remove");
  });

  it("never touches other installations, whatever is asked", () => {
    expect(cleanupVerdict("test-abc-1234", alive, true)).toBe("not-bench");
    expect(cleanupVerdict("prod", alive, true)).toBe("not-bench");
  });
});

describe("processAlive", () => {
  it("knows this process and a pid past pid_max", () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(processAlive(2 ** 22 + 1)).toBe(false);
  });
});
