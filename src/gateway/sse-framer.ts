/*
 * An event stream (text/event-stream) relayed byte by byte, cut into events only as far as the gateway needs:
 * at the first byte of each event the owner decides whether its bytes `pass` (written as they arrive, untouched),
 * are `observe`d (written as they arrive, and a copy of the complete event is handed over afterwards) or are
 * `hold`en (kept until the event is complete, then written as `transform` returns them). An event ends at a blank
 * line (LF, CR or CRLF line ends, mixed). Line ends are ASCII bytes that never occur inside a UTF-8 sequence, so
 * the stream is never decoded on its way through.
 */

export type EventMode = "pass" | "observe" | "hold";

export interface SseFramerOptions {
  write(chunk: Buffer): void;
  /** Asked once per event, at its first byte. */
  modeFor(): EventMode;
  /** A held event, complete: the bytes to write instead (the event itself, unchanged, to keep it). */
  transform(event: Buffer): Buffer;
  /** An observed event, complete (not called for one larger than `maxEventBytes`). */
  observe?(event: Buffer): void;
  /** Most bytes one held or observed event may have; a held event beyond it calls `overflow` and is dropped. */
  maxEventBytes: number;
  overflow(): void;
}

const LF = 0x0a;
const CR = 0x0d;

export class SseFramer {
  private inEvent = false;
  private atLineStart = true;
  private afterCR = false;
  private mode: EventMode = "pass";
  private kept: Buffer[] = [];
  private keptBytes = 0;
  private overflowed = false;
  private readonly injections: Buffer[] = [];

  constructor(private readonly options: SseFramerOptions) {}

  /** True between events (nothing of an event has been written or kept since the last one ended). */
  get betweenEvents(): boolean {
    return !this.inEvent;
  }

  push(chunk: Buffer): void {
    let start = 0; // first byte of `chunk` not yet written or kept
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (this.afterCR && byte === LF) {
        this.afterCR = false;
        continue;
      }
      this.afterCR = byte === CR;
      if (byte !== LF && byte !== CR) {
        this.atLineStart = false;
        if (!this.inEvent) {
          // Bytes between events (stray blank lines) go out as they are, then the next event starts here.
          this.emit(chunk.subarray(start, i));
          start = i;
          this.begin();
        }
        continue;
      }
      if (!this.atLineStart) {
        this.atLineStart = true;
        continue;
      }
      if (!this.inEvent) continue;
      // A blank line: the event ends with this byte (and with the LF of a CRLF, taken as a stray byte after it).
      this.take(chunk.subarray(start, i + 1));
      start = i + 1;
      this.complete();
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.inEvent) this.take(rest);
      else this.emit(rest);
    }
  }

  /**
   * Writes `event` (one whole event, blank line included) between the stream's own events: at once when the
   * stream is between events, else right after the current one.
   */
  inject(event: Buffer): void {
    if (this.inEvent) this.injections.push(event);
    else this.options.write(event);
  }

  private begin(): void {
    this.inEvent = true;
    this.mode = this.options.modeFor();
    this.kept = [];
    this.keptBytes = 0;
    this.overflowed = false;
  }

  /** Bytes of the current event. */
  private take(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.mode !== "hold") this.options.write(bytes);
    if (this.mode === "pass" || this.overflowed) return;
    this.keptBytes += bytes.length;
    if (this.keptBytes > this.options.maxEventBytes) {
      this.overflowed = true;
      this.kept = [];
      if (this.mode === "hold") this.options.overflow();
      return;
    }
    // A copy: the chunk's memory may be reused once it has been written on.
    this.kept.push(Buffer.from(bytes));
  }

  private complete(): void {
    const event = Buffer.concat(this.kept, this.keptBytes);
    const { mode, overflowed } = this;
    this.inEvent = false;
    this.kept = [];
    this.keptBytes = 0;
    if (!overflowed) {
      if (mode === "hold") this.options.write(this.options.transform(event));
      else if (mode === "observe") this.options.observe?.(event);
    }
    for (const injected of this.injections.splice(0)) this.options.write(injected);
  }

  private emit(bytes: Buffer): void {
    if (bytes.length > 0) this.options.write(bytes);
  }
}

/** The fields of one complete event (`data` lines joined by "\n"), as an EventSource would see them. */
export function parseEvent(event: Buffer): { event: string; data: string; id: string | undefined } {
  let name = "";
  let id: string | undefined;
  const data: string[] = [];
  for (const line of event.toString("utf8").split(/\r\n|\n|\r/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") name = value;
    else if (field === "id") id = value;
  }
  return { event: name || "message", data: data.join("\n"), id };
}

/** One `message` event carrying `data` (JSON), with the original event's id when it had one. */
export function formatEvent(data: string, id: string | undefined): Buffer {
  const idLine = id === undefined ? "" : `id: ${id}\n`;
  return Buffer.from(`event: message\n${idLine}data: ${data}\n\n`, "utf8");
}
