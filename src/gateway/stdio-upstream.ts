import type { Writable } from "node:stream";
import type { AttachedStdio } from "../docker/attach.js";
import type { Logger } from "../observability/logger.js";
import { backoffDelay } from "../util/backoff.js";
import type { Clock } from "../util/clock.js";
import type { JsonRpcMessage } from "./jsonrpc.js";
import { LineSplitter } from "./line-splitter.js";
import {
  DEFAULT_STDERR_LINES_PER_MINUTE,
  STDERR_MAX_LINE_BYTES,
  StderrLog,
  type StderrOutcome,
} from "./stderr-log.js";
import type { StdioMultiplexer, UpstreamLink } from "./stdio-mux.js";

export interface StdioUpstreamOptions {
  /** Opens a fresh attach to the container's stdin/stdout/stderr. */
  attach: () => Promise<AttachedStdio>;
  mux: StdioMultiplexer;
  clock: Clock;
  logger: Logger;
  /** Re-attach backoff (default 200 ms doubling to 5 s; reset after an attach that lasted 10 s). */
  backoff?: { baseMs: number; maxMs: number };
  maxLineBytes?: number;
  /** Unwritten bytes the server's stdin may hold before requests are refused (default 8 MiB). */
  maxQueuedBytes?: number;
  /** stderr lines of this server logged per minute; the rest are dropped and counted (default 120). */
  stderrLinesPerMinute?: number;
  onStderrLine?: (outcome: StderrOutcome) => void;
  onAttach?: (reattach: boolean) => void;
  onBytes?: (direction: "in" | "out", bytes: number) => void;
}

/**
 * Keeps one attach to a stdio server's container open while the container runs: every line of stdout goes to
 * the multiplexer, stderr lines to the log (rate-limited per server: StderrLog); when the attach drops, the multiplexer is told and a new
 * attach follows with backoff (the container may have been restarted).
 */
export class StdioUpstream {
  private running = false;
  private loop: Promise<void> | undefined;
  private current: AttachedStdio | undefined;
  private sleeping: { timer: unknown; resolve: () => void } | undefined;
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly stderrLog: StderrLog;

  constructor(private readonly options: StdioUpstreamOptions) {
    this.backoff = options.backoff ?? { baseMs: 200, maxMs: 5000 };
    this.stderrLog = new StderrLog({
      linesPerMinute: options.stderrLinesPerMinute ?? DEFAULT_STDERR_LINES_PER_MINUTE,
      clock: options.clock,
      logger: options.logger,
      ...(options.onStderrLine ? { onLine: options.onStderrLine } : {}),
    });
  }

  get attached(): boolean {
    return this.current !== undefined;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.current?.close();
    if (this.sleeping) {
      this.options.clock.clearTimeout(this.sleeping.timer);
      this.sleeping.resolve();
    }
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    const { clock, logger, mux } = this.options;
    let failures = 0;
    let attaches = 0;
    while (this.running) {
      let attached: AttachedStdio;
      try {
        attached = await this.options.attach();
      } catch (error) {
        failures += 1;
        logger.warn({ err: error instanceof Error ? error.message : String(error) }, "attach failed");
        await this.sleep(backoffDelay(failures, this.backoff));
        continue;
      }
      if (!this.running) {
        attached.close();
        break;
      }
      this.current = attached;
      this.options.onAttach?.(attaches > 0);
      attaches += 1;
      const since = clock.now();
      this.pipe(attached);
      const link = new LineLink(
        attached.stdin,
        this.options.maxQueuedBytes ?? 8 * 1024 * 1024,
        this.options.onBytes,
      );
      mux.connect(link);
      const reason = await attached.closed;
      // Only this attach's link: a newer attach (a replaced container) may already be connected.
      mux.disconnect(reason, link);
      this.stderrLog.flush();
      this.current = undefined;
      if (!this.running) break;
      logger.info({ reason }, "attach ended; re-attaching");
      failures = clock.now() - since > 10_000 ? 1 : failures + 1;
      await this.sleep(backoffDelay(failures, this.backoff));
    }
  }

  private pipe(attached: AttachedStdio): void {
    const { mux, logger } = this.options;
    const maxLineBytes = this.options.maxLineBytes ?? 16 * 1024 * 1024;
    const stdout = new LineSplitter(
      maxLineBytes,
      (line) => mux.receive(line),
      (bytes) => logger.warn({ bytes }, "server wrote a stdout line over the size limit; dropped"),
    );
    attached.stdout.on("data", (chunk: Buffer) => {
      this.options.onBytes?.("out", chunk.length);
      stdout.push(chunk);
    });
    attached.stdout.on("end", () => stdout.end());
    const stderr = new LineSplitter(
      STDERR_MAX_LINE_BYTES,
      (line) => this.stderrLog.line(line),
      () => this.stderrLog.overflow(),
    );
    attached.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    attached.stderr.on("end", () => stderr.end());
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.options.clock.setTimeout(() => {
        this.sleeping = undefined;
        resolve();
      }, ms);
      this.sleeping = { timer, resolve };
    });
  }
}

/**
 * The server's stdin as the multiplexer writes it: each message is serialised to one line and handed to the
 * connection in a single write, so the socket's own write queue keeps whole lines in order (never interleaved);
 * a server that stops reading makes `send` refuse once `maxQueuedBytes` are waiting.
 */
export class LineLink implements UpstreamLink {
  constructor(
    private readonly stdin: Writable,
    private readonly maxQueuedBytes: number,
    private readonly onBytes?: (direction: "in" | "out", bytes: number) => void,
  ) {}

  send(message: JsonRpcMessage): boolean {
    if (this.stdin.destroyed || this.stdin.writableEnded) return false;
    if (this.stdin.writableLength > this.maxQueuedBytes) return false;
    const line = `${JSON.stringify(message)}\n`;
    this.stdin.write(line);
    this.onBytes?.("in", Buffer.byteLength(line));
    return true;
  }
}
