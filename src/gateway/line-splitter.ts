/**
 * Splits a byte stream into lines ("\n", an optional "\r" before it is dropped). A line longer than
 * `maxLineBytes` is skipped whole (reported through `onOverflow`), never cut into pieces that would parse as
 * something else.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: (bytes: number) => void = () => undefined,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, newline === -1 ? chunk.length : newline);
      this.size += piece.length;
      if (!this.skipping) {
        if (this.size > this.maxLineBytes) {
          this.skipping = true;
          this.parts = [];
        } else if (piece.length > 0) {
          this.parts.push(piece);
        }
      }
      if (newline === -1) return;
      this.flush();
      start = newline + 1;
    }
  }

  /** The stream ended: a last line without "\n" still counts. */
  end(): void {
    if (this.size > 0) this.flush();
  }

  private flush(): void {
    if (this.skipping) {
      this.onOverflow(this.size);
    } else {
      const buffer = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
      let line = buffer.toString("utf8");
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line.trim() !== "") this.onLine(line);
    }
    this.parts = [];
    this.size = 0;
    this.skipping = false;
  }
}
