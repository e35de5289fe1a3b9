import type { HttpTarget } from "./http-proxy.js";
import { type JsonRpcId, type JsonRpcMessage, type JsonRpcResponse, classify } from "./jsonrpc.js";
import { SESSION_HEADER, PROTOCOL_VERSION_HEADER, UPSTREAM_PROTOCOL_VERSION } from "./protocol.js";
import { SseParser } from "./sse.js";

/** The gateway's MCP probe of one HTTP server: throws with a reason when the server does not answer as MCP. */
export interface McpProbe {
  probe(timeoutMs: number): Promise<void>;
  /** A new container (or a restart): the next probe starts with initialize. */
  reset(): void;
  close(): Promise<void>;
}

export interface HttpProbeOptions {
  target: () => Promise<HttpTarget>;
  clientInfo: { name: string; version: string };
  path?: string;
}

class SessionGoneError extends Error {}

const MAX_PROBE_BODY = 1024 * 1024;

/**
 * Streamable HTTP: initialize + notifications/initialized once, then ping on that session at every probe (a
 * 404 means the session is gone: initialize again). The session is deleted when the probe is closed.
 */
export class StreamableHttpProbe implements McpProbe {
  private sessionId: string | undefined;
  private protocolVersion: string | undefined;
  private initialized = false;
  private nextId = 1;
  private lastTarget: HttpTarget | undefined;

  constructor(private readonly options: HttpProbeOptions) {}

  reset(): void {
    this.sessionId = undefined;
    this.protocolVersion = undefined;
    this.initialized = false;
  }

  async probe(timeoutMs: number): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const target = await this.options.target();
      this.lastTarget = target;
      if (!this.initialized) await this.initialize(target, signal);
      try {
        await this.request(target, "ping", undefined, signal);
      } catch (error) {
        if (!(error instanceof SessionGoneError)) throw error;
        this.reset();
        await this.initialize(target, signal);
        await this.request(target, "ping", undefined, signal);
      }
    } catch (error) {
      if (signal.aborted) throw new Error(`no answer within ${timeoutMs} ms`);
      throw error;
    }
  }

  async close(): Promise<void> {
    const target = this.lastTarget;
    const sessionId = this.sessionId;
    this.reset();
    if (!target || !sessionId) return;
    await fetch(this.url(target), {
      method: "DELETE",
      headers: { [SESSION_HEADER]: sessionId },
      signal: AbortSignal.timeout(1000),
    }).then(
      (res) => res.body?.cancel(),
      () => undefined,
    );
  }

  private async initialize(target: HttpTarget, signal: AbortSignal): Promise<void> {
    const result = await this.request(
      target,
      "initialize",
      {
        protocolVersion: UPSTREAM_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: this.options.clientInfo,
      },
      signal,
    );
    const version = (result as { protocolVersion?: unknown } | undefined)?.protocolVersion;
    if (typeof version !== "string") throw new Error("initialize result has no protocolVersion");
    this.protocolVersion = version;
    await this.post(target, { jsonrpc: "2.0", method: "notifications/initialized" }, signal);
    this.initialized = true;
  }

  private async request(
    target: HttpTarget,
    method: string,
    params: unknown,
    signal: AbortSignal,
  ): Promise<unknown> {
    const id = this.nextId++;
    const response = await this.post(
      target,
      { jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) },
      signal,
    );
    if (!response) throw new Error(`${method}: no response`);
    if ("error" in response) throw new Error(`${method}: ${response.error.message}`);
    return response.result;
  }

  /** POSTs a message; for a request, returns its response (from JSON or the SSE stream). */
  private async post(
    target: HttpTarget,
    message: JsonRpcMessage,
    signal: AbortSignal,
  ): Promise<JsonRpcResponse | undefined> {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    };
    if (this.sessionId) headers[SESSION_HEADER] = this.sessionId;
    if (this.protocolVersion) headers[PROTOCOL_VERSION_HEADER] = this.protocolVersion;
    const res = await fetch(this.url(target), {
      method: "POST",
      headers,
      body: JSON.stringify(message),
      signal,
    });
    const id = "id" in message && "method" in message ? message.id : undefined;
    if (res.status === 404 && this.sessionId) {
      await res.body?.cancel();
      throw new SessionGoneError("session gone");
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`${"method" in message ? message.method : "message"}: HTTP ${res.status}`);
    }
    const session = res.headers.get(SESSION_HEADER);
    if (session) this.sessionId = session;
    if (id === undefined) {
      await res.body?.cancel();
      return undefined;
    }
    const type = res.headers.get("content-type") ?? "";
    if (type.includes("text/event-stream")) return readSseResponse(res, id);
    const text = await res.text();
    if (text.length > MAX_PROBE_BODY) throw new Error("response too large");
    return findResponse(JSON.parse(text), id);
  }

  private url(target: HttpTarget): string {
    const host = target.host.includes(":") ? `[${target.host}]` : target.host;
    return `http://${host}:${target.port}${this.options.path ?? "/mcp"}`;
  }
}

/**
 * The older HTTP+SSE transport (spec 2024-11-05): GET /sse yields an `endpoint` event naming where to POST;
 * responses arrive on the SSE stream. Each probe opens the stream, initializes, pings and closes it again.
 */
export class SseTransportProbe implements McpProbe {
  constructor(private readonly options: HttpProbeOptions) {}

  reset(): void {}

  async close(): Promise<void> {}

  async probe(timeoutMs: number): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const target = await this.options.target();
      const base = `http://${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
      const res = await fetch(`${base}${this.options.path ?? "/sse"}`, {
        headers: { accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (!res.ok || !res.body) throw new Error(`GET /sse: HTTP ${res.status}`);
      const events = sseEvents(res);
      const endpoint = await nextEvent(events, (e) => e.event === "endpoint");
      const postUrl = new URL(endpoint.data, base);
      if (postUrl.origin !== new URL(base).origin) throw new Error("endpoint event names another origin");
      const send = async (message: JsonRpcMessage) => {
        const r = await fetch(postUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(message),
          signal: controller.signal,
        });
        await r.body?.cancel();
        if (!r.ok) throw new Error(`POST ${postUrl.pathname}: HTTP ${r.status}`);
      };
      const call = async (id: number, method: string, params?: unknown) => {
        await send({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
        const event = await nextEvent(
          events,
          (e) => e.event === "message" && responseOf(e.data, id) !== undefined,
        );
        const response = responseOf(event.data, id)!;
        if ("error" in response) throw new Error(`${method}: ${response.error.message}`);
      };
      await call(1, "initialize", {
        protocolVersion: "2024-11-05",
        capabilities: {},
        clientInfo: this.options.clientInfo,
      });
      await send({ jsonrpc: "2.0", method: "notifications/initialized" });
      await call(2, "ping");
    } catch (error) {
      if (controller.signal.aborted) throw new Error(`no answer within ${timeoutMs} ms`);
      throw error;
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  }
}

async function readSseResponse(res: Response, id: JsonRpcId): Promise<JsonRpcResponse> {
  const events = sseEvents(res);
  try {
    const event = await nextEvent(events, (e) => responseOf(e.data, id) !== undefined);
    return responseOf(event.data, id)!;
  } finally {
    await events.return(undefined);
  }
}

async function* sseEvents(res: Response): AsyncGenerator<{ event: string; data: string }, void> {
  if (!res.body) return;
  const parser = new SseParser();
  const decoder = new TextDecoder();
  let size = 0;
  const reader = res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      size += value.length;
      if (size > MAX_PROBE_BODY) throw new Error("event stream too large for a probe");
      for (const event of parser.push(decoder.decode(value, { stream: true }))) yield event;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

async function nextEvent<E>(events: AsyncGenerator<E, void>, match: (event: E) => boolean): Promise<E> {
  for (;;) {
    const next = await events.next();
    if (next.done === true) throw new Error("event stream ended before the answer");
    if (match(next.value)) return next.value;
  }
}

function responseOf(data: string, id: JsonRpcId): JsonRpcResponse | undefined {
  try {
    return findResponse(JSON.parse(data), id);
  } catch {
    return undefined;
  }
}

function findResponse(value: unknown, id: JsonRpcId): JsonRpcResponse | undefined {
  for (const item of Array.isArray(value) ? value : [value]) {
    const classified = classify(item);
    if (classified?.kind === "response" && classified.message.id === id) return classified.message;
  }
  return undefined;
}
