import { type HttpTarget } from "../http-proxy.js";
import { baseUrl } from "../http-probe.js";
import { BodyTooLargeError, discard, readResponseBody } from "../http-util.js";
import { ERROR_CODES, type JsonRpcId, type JsonRpcMessage, classify, errorResponse } from "../jsonrpc.js";
import { PROTOCOL_VERSION_HEADER, SESSION_HEADER } from "../protocol.js";
import { SseParser } from "../sse.js";
import type { UpstreamLink } from "../stdio-mux.js";

/*
 * The gateway's own session with a legacy streamable-HTTP server, as a line link of the multiplexer (the same
 * one a stdio server has): each message the multiplexer writes is POSTed on the session; every message of the
 * answers (JSON or an event stream) and of the session's GET stream goes back to the multiplexer as a line.
 * Only modern clients use it (legacy clients keep going through the reverse proxy with their own sessions).
 * The server's answers are hostile input: redirects are not followed and one message is at most
 * `maxMessageBytes`; a stream that exceeds it is cut.
 */

export interface LegacyHttpLinkOptions {
  target: () => Promise<HttpTarget>;
  /** A line from the server (one JSON-RPC message). */
  receive: (line: string) => void;
  /** The session is gone or the server unreachable: the multiplexer should drop this link. */
  lost: (reason: string) => void;
  path?: string;
  maxMessageBytes?: number;
  /** Wait before the GET stream is opened again after it ended (default 1 s). */
  reopenMs?: number;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export class LegacyHttpLink implements UpstreamLink {
  private sessionId: string | undefined;
  private protocolVersion: string | undefined;
  private initializeId: JsonRpcId | undefined;
  private closedFlag = false;
  private streaming = false;
  private readonly controller = new AbortController();
  private readonly maxMessageBytes: number;

  constructor(private readonly options: LegacyHttpLinkOptions) {
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  send(message: JsonRpcMessage): boolean {
    if (this.closedFlag) return false;
    const classified = classify(message);
    const id = classified?.kind === "request" ? classified.message.id : undefined;
    if (classified?.kind === "request" && classified.message.method === "initialize") this.initializeId = id;
    this.post(message, id).catch((error: unknown) => {
      if (this.closedFlag) return;
      if (id !== undefined) this.answerError(id, "the server could not be reached");
      this.lose(`POST failed (${(error as NodeJS.ErrnoException).code ?? "error"})`);
    });
    return true;
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.controller.abort();
    const sessionId = this.sessionId;
    if (!sessionId) return;
    void this.options
      .target()
      .then((target) =>
        fetch(this.url(target), {
          method: "DELETE",
          headers: { [SESSION_HEADER]: sessionId },
          redirect: "manual",
          signal: AbortSignal.timeout(1000),
        }),
      )
      .then(discard)
      .catch(() => undefined);
  }

  private lose(reason: string): void {
    if (this.closedFlag) return;
    this.close();
    this.options.lost(reason);
  }

  private headers(): Record<string, string> {
    return {
      ...(this.sessionId ? { [SESSION_HEADER]: this.sessionId } : {}),
      ...(this.protocolVersion ? { [PROTOCOL_VERSION_HEADER]: this.protocolVersion } : {}),
    };
  }

  private async post(message: JsonRpcMessage, id: JsonRpcId | undefined): Promise<void> {
    const target = await this.options.target();
    const res = await fetch(this.url(target), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...this.headers(),
      },
      body: JSON.stringify(message),
      redirect: "manual",
      signal: this.controller.signal,
    });
    if (res.status === 404 && this.sessionId) {
      await discard(res);
      if (id !== undefined) this.answerError(id, "the server forgot the gateway's session");
      return this.lose("session gone (HTTP 404)");
    }
    if (!res.ok) {
      await discard(res);
      if (id !== undefined) this.answerError(id, `the server answered HTTP ${res.status}`);
      return;
    }
    const session = res.headers.get(SESSION_HEADER);
    if (id !== undefined && id === this.initializeId && session && /^[\x21-\x7e]{1,256}$/.test(session)) {
      this.sessionId = session;
    }
    if (res.status === 202 || id === undefined) {
      await discard(res);
      return;
    }
    const answered = (res.headers.get("content-type") ?? "").includes("text/event-stream")
      ? await this.readStream(res, id)
      : await this.readJson(res, id);
    if (!answered) this.answerError(id, "the server's answer held no response");
    if (id === this.initializeId && this.sessionId && !this.streaming) this.openStream();
  }

  private async readJson(res: Response, id: JsonRpcId): Promise<boolean> {
    const text = await this.readBounded(res);
    if (text === undefined) return false;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return false;
    }
    let answered = false;
    for (const item of Array.isArray(value) ? (value as unknown[]) : [value])
      answered = this.deliver(item, id) || answered;
    return answered;
  }

  /** Delivers the events of an answer's stream (or the GET stream, id undefined) until it ends. */
  private async readStream(res: Response, id: JsonRpcId | undefined): Promise<boolean> {
    if (!res.body) return false;
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const reader = res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    let answered = false;
    let pending = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += value.byteLength;
        if (pending > this.maxMessageBytes) break;
        const events = parser.push(decoder.decode(value, { stream: true }));
        if (events.length > 0) pending = 0;
        for (const event of events) {
          if (event.event !== "message") continue;
          let parsed: unknown;
          try {
            parsed = JSON.parse(event.data);
          } catch {
            continue;
          }
          answered = this.deliver(parsed, id) || answered;
        }
      }
    } catch {
      // Aborted, or the connection dropped: what arrived was delivered.
    } finally {
      await reader.cancel().catch(() => undefined);
    }
    return answered;
  }

  /** Hands one message to the multiplexer; true when it is the response to `id`. */
  private deliver(value: unknown, id: JsonRpcId | undefined): boolean {
    const classified = classify(value);
    if (!classified) return false;
    const isAnswer = classified.kind === "response" && id !== undefined && classified.message.id === id;
    if (isAnswer && id === this.initializeId && "result" in classified.message) {
      const version = (classified.message.result as { protocolVersion?: unknown } | undefined)
        ?.protocolVersion;
      if (typeof version === "string" && /^[\x21-\x7e]{1,32}$/.test(version)) this.protocolVersion = version;
    }
    this.options.receive(JSON.stringify(classified.message));
    return isAnswer;
  }

  /** The body, or undefined when it is over the message bound. */
  private async readBounded(res: Response): Promise<string | undefined> {
    try {
      return await readResponseBody(res, this.maxMessageBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) return undefined;
      throw error;
    }
  }

  /** The session's GET stream carries what the server sends on its own (list changes, resource updates). */
  private openStream(): void {
    this.streaming = true;
    void (async () => {
      while (!this.closedFlag) {
        try {
          const target = await this.options.target();
          const res = await fetch(this.url(target), {
            method: "GET",
            headers: { accept: "text/event-stream", ...this.headers() },
            redirect: "manual",
            signal: this.controller.signal,
          });
          if (res.status === 404) return this.lose("session gone (HTTP 404)");
          if (!res.ok || !(res.headers.get("content-type") ?? "").includes("text/event-stream")) {
            // The server offers no stream (405): it cannot send anything on its own.
            await discard(res);
            return;
          }
          await this.readStream(res, undefined);
        } catch {
          if (this.closedFlag) return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.options.reopenMs ?? 1000));
      }
    })();
  }

  private answerError(id: JsonRpcId, reason: string): void {
    this.options.receive(
      JSON.stringify(errorResponse(id, ERROR_CODES.serverUnavailable, `server unavailable: ${reason}`)),
    );
  }

  private url(target: HttpTarget): string {
    return `${baseUrl(target)}${this.options.path ?? "/mcp"}`;
  }
}
