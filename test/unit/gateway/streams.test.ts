import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { FrameDemuxer, STREAM_STDERR, STREAM_STDOUT, demultiplexed } from "../../../src/docker/attach.js";
import { LineSplitter } from "../../../src/gateway/line-splitter.js";
import { LineLink } from "../../../src/gateway/stdio-upstream.js";

function frame(stream: number, text: string): Buffer {
  const payload = Buffer.from(text, "utf8");
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe("FrameDemuxer (the engine's multiplexed attach stream)", () => {
  it("splits frames however the chunks fall, and keeps stdout and stderr apart", () => {
    const frames: [number, string][] = [];
    const demuxer = new FrameDemuxer((stream, payload) => frames.push([stream, payload.toString("utf8")]));
    const bytes = Buffer.concat([
      frame(STREAM_STDOUT, '{"a":1}\n'),
      frame(STREAM_STDERR, "log line\n"),
      frame(STREAM_STDOUT, "ü€\n"),
    ]);
    // One byte at a time: headers and payloads cut everywhere.
    for (let i = 0; i < bytes.length; i++) demuxer.push(bytes.subarray(i, i + 1));
    expect(frames).toEqual([
      [STREAM_STDOUT, '{"a":1}\n'],
      [STREAM_STDERR, "log line\n"],
      [STREAM_STDOUT, "ü€\n"],
    ]);
    expect(demuxer.pendingBytes).toBe(0);
    // Several frames in one chunk.
    frames.length = 0;
    demuxer.push(bytes);
    expect(frames).toHaveLength(3);
  });

  it("wraps a hijacked socket: stdin is the socket, output is demultiplexed, the end is reported once", async () => {
    const socket = new PassThrough();
    const attached = demultiplexed(socket);
    const out: string[] = [];
    const err: string[] = [];
    attached.stdout.on("data", (c: Buffer) => out.push(c.toString()));
    attached.stderr.on("data", (c: Buffer) => err.push(c.toString()));
    socket.write(Buffer.concat([frame(STREAM_STDOUT, "out\n"), frame(STREAM_STDERR, "err\n")]));
    socket.end();
    expect(await attached.closed).toMatch(/ended/);
    expect(out.join("")).toBe("out\n");
    expect(err.join("")).toBe("err\n");
  });
});

describe("LineSplitter", () => {
  it("emits whole lines across chunks, drops \\r and blank lines, flushes the last line at the end", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter(100, (l) => lines.push(l));
    splitter.push(Buffer.from('{"a":'));
    splitter.push(Buffer.from('1}\r\n\n{"b":2}\n{"c"'));
    splitter.push(Buffer.from(":3}"));
    expect(lines).toEqual(['{"a":1}', '{"b":2}']);
    splitter.end();
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
  });

  it("skips a line over the limit whole, then goes on", () => {
    const lines: string[] = [];
    const overflows: number[] = [];
    const splitter = new LineSplitter(
      10,
      (l) => lines.push(l),
      (n) => overflows.push(n),
    );
    splitter.push(Buffer.from("0123456789ABC"));
    splitter.push(Buffer.from("DEF\nshort\n"));
    expect(lines).toEqual(["short"]);
    expect(overflows).toEqual([16]);
  });

  it("does not cut multi-byte characters split across chunks", () => {
    const lines: string[] = [];
    const splitter = new LineSplitter(100, (l) => lines.push(l));
    const bytes = Buffer.from("é€😀\n", "utf8");
    for (let i = 0; i < bytes.length; i++) splitter.push(bytes.subarray(i, i + 1));
    expect(lines).toEqual(["é€😀"]);
  });
});

describe("LineLink (the server's stdin)", () => {
  it("writes each message as one whole line, in order, and refuses when too much is queued", () => {
    const chunks: string[] = [];
    const stdin = new PassThrough({ highWaterMark: 16 });
    const link = new LineLink(stdin, 64);
    stdin.on("data", (c: Buffer) => chunks.push(c.toString()));
    expect(link.send({ jsonrpc: "2.0", method: "a", params: { text: "line\nbreak" } })).toBe(true);
    expect(link.send({ jsonrpc: "2.0", id: 1, method: "b" })).toBe(true);
    const text = chunks.join("");
    expect(text.split("\n")).toEqual([
      '{"jsonrpc":"2.0","method":"a","params":{"text":"line\\nbreak"}}',
      '{"jsonrpc":"2.0","id":1,"method":"b"}',
      "",
    ]);
    stdin.pause();
    stdin.removeAllListeners("data");
    let accepted = 0;
    while (link.send({ jsonrpc: "2.0", method: "fill", params: { x: "0123456789" } }) && accepted < 100)
      accepted += 1;
    expect(accepted).toBeLessThan(100);
    stdin.destroy();
    expect(link.send({ jsonrpc: "2.0", method: "after" })).toBe(false);
  });
});
