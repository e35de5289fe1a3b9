import type { ServerResponse } from "node:http";
import type { JsonRpcMessage } from "./jsonrpc.js";
import type { MessageSink } from "./stdio-mux.js";

export interface SseWriterOptions {
  /** Extra response headers (e.g. Mcp-Session-Id). */
  headers?: Record<string, string>;
  /** A comment line this often keeps idle proxies from closing a long stream (0: none). */
  keepAliveMs?: number;
  /** A client that lets this much pile up unread is cut off (default 8 MiB). */
  maxBufferedBytes?: number;
  onBytes?: (bytes: number) => void;
}

/** A server-sent-events response carrying JSON-RPC messages, one `message` event each, written unbuffered. */
export class SseWriter implements MessageSink {
  private closed = false;
  private readonly keepAlive: NodeJS.Timeout | undefined;
  private readonly maxBufferedBytes: number;
  readonly done: Promise<void>;

  constructor(
    private readonly res: ServerResponse,
    private readonly options: SseWriterOptions = {},
  ) {
    this.maxBufferedBytes = options.maxBufferedBytes ?? 8 * 1024 * 1024;
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...options.headers,
    });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    this.done = new Promise<void>((resolve) => {
      res.once("close", () => {
        this.closed = true;
        if (this.keepAlive) clearInterval(this.keepAlive);
        resolve();
      });
    });
    if (options.keepAliveMs) {
      this.keepAlive = setInterval(() => this.write(": keep-alive\n\n"), options.keepAliveMs);
      this.keepAlive.unref();
    }
  }

  get open(): boolean {
    return !this.closed && !this.res.writableEnded && !this.res.destroyed;
  }

  send(message: JsonRpcMessage): void {
    this.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  }

  end(): void {
    if (this.keepAlive) clearInterval(this.keepAlive);
    if (this.open) this.res.end();
    this.closed = true;
  }

  private write(text: string): void {
    if (!this.open) return;
    if (this.res.writableLength > this.maxBufferedBytes) {
      this.closed = true;
      this.res.destroy(new Error("client does not read its event stream"));
      return;
    }
    this.res.write(text);
    this.options.onBytes?.(Buffer.byteLength(text));
  }
}

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** Incremental parser of an event stream (text/event-stream), for the gateway's own MCP client (probes). */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | undefined;

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      if (line === "") {
        if (this.data.length > 0) {
          events.push({
            event: this.event || "message",
            data: this.data.join("\n"),
            ...(this.id === undefined ? {} : { id: this.id }),
          });
        }
        this.data = [];
        this.event = "";
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
      else if (field === "id") this.id = value;
    }
    return events;
  }
}
