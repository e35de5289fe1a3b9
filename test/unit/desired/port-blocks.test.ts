import { describe, expect, it } from "vitest";
import {
  assignHostPorts,
  blockAt,
  blockCount,
  blocksCovering,
  blockStartOf,
  excludedBlocks,
  parsePortSpans,
  portPoolCapacity,
} from "../../../src/desired/port-blocks.js";
import { DEFAULT_PORT_EXCLUDE, DEFAULT_PORT_RANGE, DEFAULT_PORTS_PER_USER } from "../../../src/config.js";

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

describe("blocks of another size", () => {
  it("finds the blocks of the grid a span shares ports with", () => {
    expect(blocksCovering(RANGE, 100, { start: 20000, end: 20099 })).toEqual({ first: 0, last: 0 });
    expect(blocksCovering(RANGE, 100, { start: 20050, end: 20250 })).toEqual({ first: 0, last: 2 });
    expect(blocksCovering(RANGE, 100, { start: 19000, end: 20000 })).toEqual({ first: 0, last: 0 });
    expect(blocksCovering(RANGE, 100, { start: 20950, end: 21500 })).toEqual({ first: 9, last: 9 });
    expect(blocksCovering(RANGE, 100, { start: 21000, end: 21500 })).toBeUndefined();
    expect(blocksCovering({ start: 20000, end: 20149 }, 100, { start: 20100, end: 20149 })).toBeUndefined();
  });

  it("counts the blocks an empty pool gives users, without those holding an excluded port", () => {
    expect(
      excludedBlocks(RANGE, 100, [
        { start: 20005, end: 20005 },
        { start: 20099, end: 20100 },
      ]),
    ).toEqual(new Set([0, 1]));
    expect(portPoolCapacity(RANGE, 100, [{ start: 20005, end: 20005 }])).toBe(9);
    expect(portPoolCapacity(RANGE, 100, [{ start: 1, end: 65535 }])).toBe(0);
  });

  it("the defaults hold more than 1,000 users, below the ephemeral range and Kubernetes NodePorts", () => {
    const excluded = parsePortSpans(DEFAULT_PORT_EXCLUDE);
    if (!("spans" in excluded)) throw new Error(`default exclusions invalid: ${excluded.invalid}`);
    expect(portPoolCapacity(DEFAULT_PORT_RANGE, DEFAULT_PORTS_PER_USER, excluded.spans)).toBe(1231);
    expect(DEFAULT_PORT_RANGE.end).toBeLessThan(30000);
    // Each excluded port sits inside the default range (else it would exclude nothing).
    for (const span of excluded.spans) {
      expect(span.start).toBeGreaterThanOrEqual(DEFAULT_PORT_RANGE.start);
      expect(span.end).toBeLessThanOrEqual(DEFAULT_PORT_RANGE.end);
    }
  });

  it("parses port lists: ports and a-b spans, empty means none", () => {
    expect(parsePortSpans("")).toEqual({ spans: [] });
    expect(parsePortSpans(" 27017-27019, 11211 ,")).toEqual({
      spans: [
        { start: 27017, end: 27019 },
        { start: 11211, end: 11211 },
      ],
    });
    for (const bad of ["0", "70000", "5-3", "a", "1-2-3", "-5", "27017:27019"])
      expect(parsePortSpans(`80,${bad}`)).toEqual({ invalid: bad });
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
