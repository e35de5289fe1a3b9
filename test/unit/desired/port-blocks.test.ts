import { describe, expect, it } from "vitest";
import { assignHostPorts, blockAt, blockCount, blockStartOf } from "../../../src/desired/port-blocks.js";

const RANGE = { start: 20000, end: 20999 };

describe("block arithmetic", () => {
  it("counts whole blocks only", () => {
    expect(blockCount(RANGE, 100)).toBe(10);
    expect(blockCount({ start: 20000, end: 20149 }, 100)).toBe(1);
    expect(blockCount({ start: 20000, end: 20098 }, 100)).toBe(0);
    expect(blockCount({ start: 20000, end: 29999 }, 100)).toBe(100);
  });

  it("finds the block at an index", () => {
    expect(blockAt(RANGE, 100, 0)).toEqual({ start: 20000, end: 20099 });
    expect(blockAt(RANGE, 100, 3)).toEqual({ start: 20300, end: 20399 });
  });

  it("finds the start of the block holding a port, within whole blocks only", () => {
    expect(blockStartOf(RANGE, 100, 20000)).toBe(20000);
    expect(blockStartOf(RANGE, 100, 20099)).toBe(20000);
    expect(blockStartOf(RANGE, 100, 20100)).toBe(20100);
    expect(blockStartOf(RANGE, 100, 20999)).toBe(20900);
    expect(blockStartOf(RANGE, 100, 19999)).toBeUndefined();
    expect(blockStartOf(RANGE, 100, 21000)).toBeUndefined();
    // 20100-20149 is a partial block, never handed out
    expect(blockStartOf({ start: 20000, end: 20149 }, 100, 20120)).toBeUndefined();
  });
});

describe("assignHostPorts", () => {
  const block = { start: 20000, end: 20004 };

  it("fills the lowest free ports in priority order", () => {
    const ports = assignHostPorts(block, ["a", "b", "c"], new Map());
    expect([...ports]).toEqual([
      ["a", 20000],
      ["b", 20001],
      ["c", 20002],
    ]);
  });

  it("keeps the ports servers already have and fills the gaps around them", () => {
    const ports = assignHostPorts(
      block,
      ["a", "b", "c", "d"],
      new Map([
        ["b", 20000],
        ["d", 20002],
      ]),
    );
    expect(Object.fromEntries(ports)).toEqual({ a: 20001, b: 20000, c: 20003, d: 20002 });
  });

  it("is stable when a server before others is removed", () => {
    const first = assignHostPorts(block, ["a", "b", "c"], new Map());
    const second = assignHostPorts(block, ["b", "c", "new"], first);
    expect(Object.fromEntries(second)).toEqual({ b: 20001, c: 20002, new: 20000 });
  });

  it("ignores current ports outside the block and the second claimant of a port", () => {
    const ports = assignHostPorts(
      block,
      ["a", "b", "c"],
      new Map([
        ["a", 19999],
        ["b", 20003],
        ["c", 20003],
      ]),
    );
    expect(Object.fromEntries(ports)).toEqual({ a: 20000, b: 20003, c: 20001 });
  });

  it("stops at the end of the block: later servers get no port", () => {
    const ids = ["a", "b", "c", "d", "e", "f", "g"];
    const ports = assignHostPorts(block, ids, new Map([["g", 20004]]));
    expect(ports.size).toBe(5);
    expect(Object.fromEntries(ports)).toEqual({ a: 20000, b: 20001, c: 20002, d: 20003, g: 20004 });
    expect(ports.has("e")).toBe(false);
    expect(ports.has("f")).toBe(false);
    for (const port of ports.values()) {
      expect(port).toBeGreaterThanOrEqual(block.start);
      expect(port).toBeLessThanOrEqual(block.end);
    }
  });
});
