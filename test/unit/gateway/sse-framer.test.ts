import { describe, expect, it } from "vitest";
import { type EventMode, SseFramer, formatEvent, parseEvent } from "../../../src/gateway/sse-framer.js";

function framer(modes: EventMode[], transform: (event: string) => string = (e) => e.toUpperCase()) {
  const out: string[] = [];
  const observed: string[] = [];
  let overflowed = 0;
  const f = new SseFramer({
    write: (chunk) => out.push(chunk.toString("utf8")),
    modeFor: () => modes.shift() ?? "pass",
    transform: (event) => Buffer.from(transform(event.toString("utf8"))),
    observe: (event) => observed.push(event.toString("utf8")),
    maxEventBytes: 64,
    overflow: () => (overflowed += 1),
  });
  return { f, out, observed, overflowed: () => overflowed };
}

const STREAM =
  'event: message\ndata: {"a":1}\n\n: comment\n\nevent: message\r\ndata: {"b":2}\r\n\r\ndata: x\rdata: y\r\r';

describe("SseFramer", () => {
  it("passes every byte through unchanged however the chunks fall", () => {
    for (const size of [1, 2, 3, 7, STREAM.length]) {
      const { f, out } = framer([]);
      for (let i = 0; i < STREAM.length; i += size) f.push(Buffer.from(STREAM.slice(i, i + size)));
      expect(out.join("")).toBe(STREAM);
    }
  });

  it("holds an event until its blank line, then writes what transform makes of it (LF, CRLF, CR line ends)", () => {
    const { f, out } = framer(["hold", "pass", "hold", "hold"]);
    for (const ch of STREAM) f.push(Buffer.from(ch));
    expect(out.join("")).toBe(
      'EVENT: MESSAGE\nDATA: {"A":1}\n\n: comment\n\nEVENT: MESSAGE\r\nDATA: {"B":2}\r\n\r\nDATA: X\rDATA: Y\r\r',
    );
  });

  it("writes a passed event's bytes as they arrive, and nothing of a held one before it is complete", () => {
    const { f, out } = framer(["pass", "hold"]);
    f.push(Buffer.from("data: firs"));
    expect(out.join("")).toBe("data: firs");
    f.push(Buffer.from("t\n\ndata: seco"));
    expect(out.join("")).toBe("data: first\n\n");
    f.push(Buffer.from("nd\n\n"));
    expect(out.join("")).toBe("data: first\n\nDATA: SECOND\n\n");
  });

  it("hands observed events over complete, after writing them through", () => {
    const { f, out, observed } = framer(["observe", "pass", "observe"]);
    f.push(Buffer.from(STREAM));
    expect(out.join("")).toBe(STREAM);
    expect(observed).toEqual(['event: message\ndata: {"a":1}\n\n', 'event: message\r\ndata: {"b":2}\r\n\r']);
  });

  it("injects an event between two of the stream's own, never inside one", () => {
    const { f, out } = framer([]);
    f.push(Buffer.from("data: half"));
    f.inject(Buffer.from("data: injected\n\n"));
    expect(out.join("")).toBe("data: half");
    f.push(Buffer.from("\n\ndata: next\n\n"));
    expect(out.join("")).toBe("data: half\n\ndata: injected\n\ndata: next\n\n");
    f.inject(Buffer.from("data: now\n\n"));
    expect(out.join("")).toBe("data: half\n\ndata: injected\n\ndata: next\n\ndata: now\n\n");
  });

  it("drops a held event over the size cap and says so (the owner cuts the stream)", () => {
    const { f, out, overflowed } = framer(["hold"]);
    f.push(Buffer.from(`data: ${"x".repeat(100)}\n\n`));
    expect(out.join("")).toBe("");
    expect(overflowed()).toBe(1);
  });

  it("parses and formats events as an EventSource reads them", () => {
    expect(parseEvent(Buffer.from('event: message\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'))).toEqual({
      event: "message",
      id: "7",
      data: '{"a":\n1}',
    });
    expect(parseEvent(Buffer.from("data: x\n\n")).event).toBe("message");
    expect(formatEvent('{"a":1}', "7").toString()).toBe('event: message\nid: 7\ndata: {"a":1}\n\n');
  });
});
