import { describe, expect, it } from "vitest";
import { LEGACY_PORT_BLOCK_SIZE, parsePortBlockLabel, portBlockLabel } from "../../src/labels.js";

describe("the port_block label", () => {
  it("records start and size", () => {
    expect(portBlockLabel({ start: 10016, end: 10031 })).toBe("10016:16");
    expect(parsePortBlockLabel("10016:16")).toEqual({ start: 10016, size: 16, legacy: false });
  });

  it("reads a bare start (written before sizes were recorded) as a legacy block of 100", () => {
    expect(LEGACY_PORT_BLOCK_SIZE).toBe(100);
    expect(parsePortBlockLabel("20300")).toEqual({ start: 20300, size: 100, legacy: true });
  });

  it("refuses anything else", () => {
    for (const bad of [
      undefined,
      "",
      "abc",
      "0",
      "20000:0",
      "-1",
      "20000:",
      ":16",
      "20000:16:1",
      "1e4",
      " 20000",
    ])
      expect(parsePortBlockLabel(bad), String(bad)).toBeUndefined();
  });
});
