// The pure pieces behind the console's engine views: Docker's log framing, the byte-capped tail, line splitting,
// secret-value redaction and restart counting from audit lines.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FrameDemuxer, TailBuffer, splitLogLines } from "../../../src/api/engine/log-tail.js";
import { redactValues } from "../../../src/api/engine/redact-values.js";
import { countRestarts, readAuditWindow } from "../../../src/api/engine/restart-count.js";

function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe("FrameDemuxer", () => {
  it("yields payloads of stdout and stderr frames however the chunks are cut", () => {
    const stream = Buffer.concat([frame(1, "out one\n"), frame(2, "err\n"), frame(1, "out two\n")]);
    for (const cut of [1, 3, 7, 8, 9, 15, stream.length - 1]) {
      const demux = new FrameDemuxer();
      const payloads = [...demux.push(stream.subarray(0, cut)), ...demux.push(stream.subarray(cut))];
      expect(Buffer.concat(payloads).toString()).toBe("out one\nerr\nout two\n");
    }
  });
});

describe("TailBuffer", () => {
  it("keeps exactly the last maxBytes and says when it dropped something", () => {
    const tail = new TailBuffer(10);
    tail.push(Buffer.from("0123456"));
    expect(tail.truncated).toBe(false);
    tail.push(Buffer.from("789abc"));
    tail.push(Buffer.from(""));
    expect(tail.bytes().toString()).toBe("3456789abc");
    expect(tail.truncated).toBe(true);
    tail.push(Buffer.from("0123456789ABCDEF"));
    expect(tail.bytes().toString()).toBe("6789ABCDEF");
  });
});

describe("splitLogLines", () => {
  it("drops a cut first line, strips CR, keeps the last lines and shortens long ones", () => {
    const options = { cutAtStart: true, maxLineChars: 5, maxLines: 3 };
    expect(splitLogLines("artial\na\r\nb\nc\n0123456789\n", options)).toEqual([
      "b",
      "c",
      "01234 … [5 more characters]",
    ]);
    expect(splitLogLines("", { ...options, cutAtStart: false })).toEqual([]);
    expect(splitLogLines("no newline at end", { ...options, cutAtStart: false, maxLineChars: 100 })).toEqual([
      "no newline at end",
    ]);
  });
});

describe("redactValues", () => {
  it("replaces values as written and JSON-escaped, longest first, and counts replacements", () => {
    const secrets = [
      { name: "SHORT", value: "abc" },
      { name: "LONG", value: "abcdef" },
      { name: "QUOTED", value: 'a"b\nc' },
      { name: "EMPTY", value: "" },
    ];
    const out = redactValues(`abcdef abc ${JSON.stringify('a"b\nc')} a"b\nc`, secrets);
    expect(out.text).toBe('[redacted LONG] [redacted SHORT] "[redacted QUOTED]" [redacted QUOTED]');
    expect(out.count).toBe(4);
    expect(redactValues("nothing here", secrets)).toEqual({ text: "nothing here", count: 0 });
  });
});

describe("restart counting", () => {
  const line = (timestamp: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      timestamp,
      event_type: "CONTAINER_OPERATION",
      user_id: "alice",
      action: "start_container",
      resource: "c1",
      result: "success",
      ...extra,
    });
  const container = { userId: "alice", name: "c1", createdAt: "2026-01-01T00:00:00.000Z" };

  it("counts successful starts of the container since its creation, minus the first", () => {
    const window = {
      lines: [
        line("2026-01-01T00:00:01.000Z"),
        line("2026-01-01T00:01:00.000Z", { result: "failure" }),
        line("2026-01-01T00:02:00.000Z"),
        "not json",
        line("2026-01-01T00:03:00.000Z", { action: "stop_container" }),
      ],
      oldest: "2026-01-01T00:00:01.000Z",
      complete: true,
    };
    expect(countRestarts(window, container)).toEqual({ restarts: 1, exact: true });
  });

  it("says when the window starts after the creation (every start seen is then a restart)", () => {
    const window = {
      lines: [line("2026-01-02T00:00:00.000Z")],
      oldest: "2026-01-02T00:00:00.000Z",
      complete: false,
    };
    expect(countRestarts(window, container)).toEqual({ restarts: 1, exact: false });
  });

  it("reads the end of audit.log, then audit.log.1, within the byte budget, as whole lines", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mcp-portal-audit-"));
    try {
      const before = line("2025-12-31T00:00:00.000Z", { action: "create_network" });
      await writeFile(path.join(dir, "audit.log.1"), `${before}\n${line("2026-01-01T00:00:01.000Z")}\n`);
      await writeFile(path.join(dir, "audit.log"), `${line("2026-01-01T00:05:00.000Z")}\n`);
      const all = await readAuditWindow(dir, 10_000);
      expect(all.lines).toHaveLength(3);
      expect(all.oldest).toBe("2025-12-31T00:00:00.000Z");
      // audit.log.2 could hold more, but the window reaches back before the creation: the count is exact.
      expect(all.complete).toBe(false);
      expect(countRestarts(all, container)).toEqual({ restarts: 1, exact: true });
      const current = `${line("2026-01-01T00:05:00.000Z")}\n`.length;
      const cut = await readAuditWindow(dir, current + 10);
      expect(cut.lines).toHaveLength(1);
      expect(cut.complete).toBe(false);
      const none = await readAuditWindow(path.join(dir, "missing"));
      expect(none).toEqual({ lines: [], oldest: undefined, complete: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
