// A server's stderr in the gateway's log: rate-limited per server, with the dropped lines counted.
import { PassThrough, Writable } from "node:stream";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { AttachedStdio } from "../../../src/docker/attach.js";
import { createGatewayMetrics } from "../../../src/gateway/metrics.js";
import { DEFAULT_STDERR_LINES_PER_MINUTE } from "../../../src/gateway/stderr-log.js";
import { StdioMultiplexer } from "../../../src/gateway/stdio-mux.js";
import { StdioUpstream } from "../../../src/gateway/stdio-upstream.js";
import { createLogger } from "../../../src/observability/logger.js";
import { FakeClock, settle } from "../../helpers/fake-clock.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString("utf8").split("\n"))
          if (line) lines.push(JSON.parse(line) as never);
        done();
      },
    }),
  });
  return { logger, lines };
}

function fakeAttach(): AttachedStdio & { stderr: PassThrough; end(): void } {
  let close: (reason: string) => void = () => undefined;
  const closed = new Promise<string>((resolve) => (close = resolve));
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  return {
    stdin: new PassThrough(),
    stdout,
    stderr,
    closed,
    close: () => close("closed by the gateway"),
    end: () => {
      stdout.end();
      stderr.end();
      close("the container's output ended");
    },
  };
}

describe("server stderr in the gateway's log", () => {
  it("logs at most the per-minute budget of lines per server; the rest are counted and summarised", async () => {
    expect(DEFAULT_STDERR_LINES_PER_MINUTE).toBe(120);
    const clock = new FakeClock();
    const { logger, lines } = capture();
    const metrics = createGatewayMetrics(new Registry(), { defaultMetrics: false });
    const attach = fakeAttach();
    const upstream = new StdioUpstream({
      attach: () => Promise.resolve(attach),
      mux: new StdioMultiplexer({ clock, serverUserId: "alice", clientInfo: { name: "t", version: "0" } }),
      clock,
      logger,
      stderrLinesPerMinute: 10,
      onStderrLine: (outcome) => metrics.stderrLinesTotal.inc({ outcome }),
    });
    upstream.start();
    await settle();
    attach.stderr.write(Array.from({ length: 500 }, (_, i) => `noise ${i}\n`).join(""));
    // A line over the size cap is never buffered whole: it counts as dropped.
    attach.stderr.write(`${"x".repeat(64 * 1024)}\n`);
    await settle();
    const logged = () => lines.filter((l) => l.stream === "stderr" && l.level === 30);
    expect(logged().map((l) => l.msg)).toEqual(Array.from({ length: 10 }, (_, i) => `noise ${i}`));
    clock.advance(60_000);
    attach.stderr.write("after a minute\n");
    await settle();
    expect(
      logged()
        .map((l) => l.msg)
        .slice(10),
    ).toEqual(["after a minute"]);
    expect(lines.find((l) => l.msg === "server stderr lines dropped (rate limit)")).toMatchObject({
      level: 40,
      dropped_lines: 491,
    });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/mcp_portal_gateway_stderr_lines_total\{outcome="logged"\} 11/);
    expect(text).toMatch(/mcp_portal_gateway_stderr_lines_total\{outcome="dropped"\} 491/);
    await upstream.stop();
  });
});
