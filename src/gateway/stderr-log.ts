import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";

/** Default budget of one server's stderr lines in the gateway's log (MCP_PORTAL_GATEWAY_STDERR_LINES_PER_MINUTE). */
export const DEFAULT_STDERR_LINES_PER_MINUTE = 120;
/** A stderr line is cut to this many characters in the log. */
export const STDERR_LINE_CHARS = 2000;
/** A stderr line longer than this is never buffered whole: it is skipped and counted as dropped. */
export const STDERR_MAX_LINE_BYTES = 16 * 1024;

const WINDOW_MS = 60_000;

export type StderrOutcome = "logged" | "dropped";

/**
 * One server's stderr in the gateway's log: at most `linesPerMinute` lines per one-minute window are logged (at
 * info, cut to STDERR_LINE_CHARS); the rest are dropped, counted, and summarised in one warning when the next
 * window starts or the attach ends. A chatty (or hostile) server cannot flood the shared gateway's log.
 */
export class StderrLog {
  private windowStart: number | undefined;
  private logged = 0;
  private dropped = 0;

  constructor(
    private readonly options: {
      linesPerMinute: number;
      clock: Clock;
      logger: Logger;
      onLine?: (outcome: StderrOutcome) => void;
    },
  ) {}

  line(text: string): void {
    this.roll();
    if (this.logged < this.options.linesPerMinute) {
      this.logged += 1;
      this.options.logger.info(
        { stream: "stderr" },
        text.length > STDERR_LINE_CHARS ? `${text.slice(0, STDERR_LINE_CHARS)}…` : text,
      );
      this.options.onLine?.("logged");
    } else {
      this.drop();
    }
  }

  /** A line that was not kept at all (over STDERR_MAX_LINE_BYTES). */
  overflow(): void {
    this.roll();
    this.drop();
  }

  /** Writes the summary of the current window's drops now (the attach ended). */
  flush(): void {
    if (this.dropped === 0) return;
    this.options.logger.warn(
      { stream: "stderr", dropped_lines: this.dropped, window_seconds: WINDOW_MS / 1000 },
      "server stderr lines dropped (rate limit)",
    );
    this.dropped = 0;
  }

  private drop(): void {
    this.dropped += 1;
    this.options.onLine?.("dropped");
  }

  private roll(): void {
    const now = this.options.clock.now();
    if (this.windowStart !== undefined && now - this.windowStart < WINDOW_MS) return;
    this.flush();
    this.windowStart = now;
    this.logged = 0;
  }
}
