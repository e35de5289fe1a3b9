/*
 * Pure pieces of reading the end of a container's log: Docker's multiplexed stream format, a byte-capped tail
 * and the split into lines. Bounded by construction: the tail never holds more than its cap.
 */

/** Docker's attach/logs framing for containers without a TTY: [stream, 0, 0, 0, size (uint32 BE)] + payload. */
export class FrameDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  /** Payloads of every frame completed by `chunk`, in order. */
  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      out.push(this.pending.subarray(8, 8 + size));
      this.pending = this.pending.subarray(8 + size);
    }
    return out;
  }
}

/** Keeps the last `maxBytes` bytes pushed into it; `truncated` says whether anything before them was dropped. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = false;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.maxBytes) {
      const first = this.chunks[0]!;
      const excess = this.size - this.maxBytes;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
      this.dropped = true;
    }
  }

  get truncated(): boolean {
    return this.dropped;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface SplitOptions {
  /** The text starts in the middle of a line (the tail was cut): drop that partial first line. */
  cutAtStart: boolean;
  /** Lines longer than this are shortened (with a marker). */
  maxLineChars: number;
  /** Keep only the last this many lines. */
  maxLines: number;
}

/** Splits log text into at most `maxLines` lines, oldest first. */
export function splitLogLines(text: string, options: SplitOptions): string[] {
  const raw = text.split("\n");
  if (raw.at(-1) === "") raw.pop();
  if (options.cutAtStart) raw.shift();
  return raw.slice(-options.maxLines).map((line) => {
    const clean = line.endsWith("\r") ? line.slice(0, -1) : line;
    return clean.length > options.maxLineChars
      ? `${clean.slice(0, options.maxLineChars)} … [${clean.length - options.maxLineChars} more characters]`
      : clean;
  });
}
