import type { LogLine } from "./runtime.js";

/*
 * Pure helpers for reading a container's log from the engine: the multiplexed stream of a container without a
 * TTY (8-byte frame headers: stream, 0, 0, 0, payload size big-endian), `--timestamps` lines, and the engine's
 * `since` parameter. No I/O here; DockerodeRuntime.readLogs streams and bounds the bytes.
 */

/** The payloads of the complete frames at the start of `data` of the wanted stream (1 stdout, 2 stderr). */
export function demuxFrames(data: Buffer, stream: 1 | 2 = 1): { payload: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= data.length) {
    const size = data.readUInt32BE(offset + 4);
    if (offset + 8 + size > data.length) break;
    if (data[offset] === stream) parts.push(data.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return { payload: Buffer.concat(parts), complete: offset === data.length };
}

const TIMESTAMPED = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) (.*)$/s;

/** `<timestamp> <text>` lines; a last line without its newline is left out (it was cut by the byte bound). */
export function timestampedLines(text: string): LogLine[] {
  const lines: LogLine[] = [];
  const parts = text.split("\n");
  parts.pop(); // after the last "\n": empty, or a cut line
  for (const part of parts) {
    const match = TIMESTAMPED.exec(part.replace(/\r$/, ""));
    if (match) lines.push({ timestamp: match[1]!, text: match[2]! });
  }
  return lines;
}

/** [seconds, nanoseconds] of an RFC 3339 UTC timestamp with up to nine fractional digits; undefined if not one. */
export function timestampParts(timestamp: string): [number, number] | undefined {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(timestamp);
  if (!match) return undefined;
  const ms = Date.parse(`${match[1]}Z`);
  if (Number.isNaN(ms)) return undefined;
  return [ms / 1000, Number((match[2] ?? "").padEnd(9, "0"))];
}

/** Negative, zero or positive as `a` is before, at or after `b` (both RFC 3339 UTC, nanoseconds kept). */
export function compareTimestamps(a: string, b: string): number {
  const pa = timestampParts(a);
  const pb = timestampParts(b);
  if (!pa || !pb) return a < b ? -1 : a > b ? 1 : 0;
  return pa[0] !== pb[0] ? pa[0] - pb[0] : pa[1] - pb[1];
}

/** The engine's `since` query value (`<seconds>.<nanoseconds>`, inclusive) for a line's timestamp. */
export function sinceParam(timestamp: string): string {
  const parts = timestampParts(timestamp);
  if (!parts) throw new Error(`not an RFC 3339 UTC timestamp: ${timestamp}`);
  return `${parts[0]}.${String(parts[1]).padStart(9, "0")}`;
}
