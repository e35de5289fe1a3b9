// Reading a container's log from the engine: the multiplexed frames, timestamped lines cut by the byte bound,
// and the `since` parameter with nanoseconds.
import { describe, expect, it } from "vitest";
import {
  compareTimestamps,
  demuxFrames,
  sinceParam,
  timestampedLines,
} from "../../../src/docker/log-lines.js";

function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe("container log lines", () => {
  it("keeps stdout frames, drops stderr and a frame cut short", () => {
    const data = Buffer.concat([frame(1, "a\n"), frame(2, "err\n"), frame(1, "b\n"), frame(1, "cut")]);
    const cut = data.subarray(0, data.length - 2);
    expect(demuxFrames(cut)).toEqual({ payload: Buffer.from("a\nb\n"), complete: false });
    expect(demuxFrames(data).complete).toBe(true);
  });

  it("parses timestamped lines and leaves out a last line without its newline", () => {
    const text =
      '2026-11-30T10:00:00.123456789Z {"a":1}\n' +
      "garbage\n" +
      "2026-11-30T10:00:01Z two words\n" +
      "2026-11-30T10:00:02.1Z cut";
    expect(timestampedLines(text)).toEqual([
      { timestamp: "2026-11-30T10:00:00.123456789Z", text: '{"a":1}' },
      { timestamp: "2026-11-30T10:00:01Z", text: "two words" },
    ]);
  });

  it("orders timestamps to the nanosecond and gives the engine seconds.nanoseconds", () => {
    expect(compareTimestamps("2026-11-30T10:00:00.000000001Z", "2026-11-30T10:00:00Z")).toBeGreaterThan(0);
    expect(compareTimestamps("2026-11-30T10:00:00.1Z", "2026-11-30T10:00:00.100000000Z")).toBe(0);
    expect(compareTimestamps("2026-11-30T09:59:59.9Z", "2026-11-30T10:00:00Z")).toBeLessThan(0);
    expect(sinceParam("2026-11-30T10:00:00.000000042Z")).toBe("1796032800.000000042");
    expect(() => sinceParam("yesterday")).toThrow();
  });
});
