import { closeSync, fstatSync, openSync, renameSync, writeSync } from "node:fs";

/** Rotated files kept next to the current one: <file>.1 (newest) .. <file>.<keep>. */
export const DEFAULT_GATEWAY_LOG_KEEP = 5;

export interface RotatingLogFileOptions {
  /** Rotate before a write would make the file larger than this (MCP_PORTAL_GATEWAY_LOG_MAX_BYTES). */
  maxBytes: number;
  keep?: number;
}

/**
 * The gateway's log file (`mcp-portal gateway --log-file`, which `run` uses for <state-dir>/gateway.log): pino's
 * destination, appending whole lines and rotating by size, so a long-lived gateway (possibly outliving `run`) never
 * fills the disk: at most (keep + 1) × maxBytes. Writes are synchronous: a line is on disk (in the kernel) before
 * the next one, and nothing is lost when the process exits.
 */
export class RotatingLogFile {
  private fd: number;
  private size: number;
  private readonly keep: number;

  constructor(
    private readonly file: string,
    private readonly options: RotatingLogFileOptions,
  ) {
    this.keep = Math.max(1, options.keep ?? DEFAULT_GATEWAY_LOG_KEEP);
    this.fd = openSync(file, "a", 0o600);
    this.size = fstatSync(this.fd).size;
  }

  write(line: string): void {
    const bytes = Buffer.byteLength(line);
    try {
      if (this.size > 0 && this.size + bytes > this.options.maxBytes) this.rotate();
      writeSync(this.fd, line);
      this.size += bytes;
    } catch {
      // Nowhere left to report it (this is the log); the next write tries again.
    }
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }

  private rotate(): void {
    closeSync(this.fd);
    for (let i = this.keep - 1; i >= 1; i--) renameQuietly(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    renameQuietly(this.file, `${this.file}.1`);
    this.fd = openSync(this.file, "a", 0o600);
    this.size = 0;
  }
}

function renameQuietly(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}
