import type { HttpTarget } from "./http-proxy.js";
import { BodyTooLargeError, discard, readResponseBody } from "./http-util.js";
import { type JsonRpcId, type JsonRpcMessage, type JsonRpcResponse, classify } from "./jsonrpc.js";
import { ProbeError, type ProbeStep, errnoCode } from "./probe-failure.js";
import { SESSION_HEADER, PROTOCOL_VERSION_HEADER, UPSTREAM_PROTOCOL_VERSION } from "./protocol.js";
import { SseParser } from "./sse.js";

/*
 * The gateway's MCP probes of HTTP servers. A server is the user's own code, so every answer is hostile input:
 * redirects are never followed (a 3xx is a failed probe; following one would make the gateway send requests to
 * whatever address the server names, e.g. another service on the host), every answer is read up to
 * `maxResponseBytes` and no further (a Content-Length over it is refused before the body is read), and failures
 * are ProbeErrors, whose messages carry nothing the server sent.
 */

/** Default cap of one probe answer (a JSON body, or everything read from one event stream). */
export const MAX_PROBE_RESPONSE_BYTES = 1024 * 1024;

/** The gateway's MCP probe of one HTTP server: throws a ProbeError when the server does not answer as MCP. */
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
  /** Cap of one answer (MCP_PORTAL_GATEWAY_PROBE_MAX_BYTES; default MAX_PROBE_RESPONSE_BYTES). */
  maxResponseBytes?: number;
}

/** One probe's bounds: its deadline and the cap of each answer. */
export interface ProbeContext {
  signal: AbortSignal;
  timeoutMs: number;
  maxBytes: number;
}

class SessionGoneError extends Error {}

/** Any failure of a step as a ProbeError: a timeout when the probe's deadline passed, else the local errno. */
function asProbeError(ctx: ProbeContext, step: ProbeStep, error: unknown): ProbeError {
  if (error instanceof ProbeError) return error;
  if (ctx.signal.aborted) return new ProbeError(step, { kind: "timeout", ms: ctx.timeoutMs });
  return new ProbeError(step, { kind: "connect_failed", code: errnoCode(error) });
}

/** fetch without following redirects; a 3xx fails the step. */
export async function request(
  ctx: ProbeContext,
  step: ProbeStep,
  url: string | URL,
  init: RequestInit,
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, redirect: "manual", signal: ctx.signal });
  } catch (error) {
    throw asProbeError(ctx, step, error);
  }
  if (res.status >= 300 && res.status < 400) {
    await discard(res);
    throw new ProbeError(step, { kind: "redirect", status: res.status });
  }
  return res;
}

/** The whole body as text, refusing more than `ctx.maxBytes` (declared or read). */
export async function readLimited(ctx: ProbeContext, step: ProbeStep, res: Response): Promise<string> {
  try {
    return await readResponseBody(res, ctx.maxBytes);
  } catch (error) {
    if (error instanceof BodyTooLargeError)
      throw new ProbeError(step, { kind: "too_large", limit: ctx.maxBytes });
    throw asProbeError(ctx, step, error);
  }
}

/** The events of one event-stream answer, read up to `ctx.maxBytes` in total. */
export class BoundedEventStream {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  private readonly parser = new SseParser();
  private readonly decoder = new TextDecoder();
  private readonly queued: { event: string; data: string }[] = [];
  private size = 0;
  private ended = false;

  constructor(
    private readonly ctx: ProbeContext,
    res: Response,
  ) {
    this.reader = res.body?.getReader() as ReadableStreamDefaultReader<Uint8Array> | undefined;
  }

  /** The next event matching `match`; other events are skipped. */
  async next(
    step: ProbeStep,
    match: (event: { event: string; data: string }) => boolean,
  ): Promise<{ event: string; data: string }> {
    for (;;) {
      for (let event = this.queued.shift(); event !== undefined; event = this.queued.shift()) {
        if (match(event)) return event;
      }
      if (this.ended || !this.reader) throw new ProbeError(step, { kind: "stream_ended" });
      let chunk: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>;
      try {
        chunk = await this.reader.read();
      } catch (error) {
        throw asProbeError(this.ctx, step, error);
      }
      if (chunk.done) {
        this.ended = true;
        continue;
      }
      this.size += chunk.value.byteLength;
      if (this.size > this.ctx.maxBytes) {
        await this.close();
        throw new ProbeError(step, { kind: "too_large", limit: this.ctx.maxBytes });
      }
      this.queued.push(...this.parser.push(this.decoder.decode(chunk.value, { stream: true })));
    }
  }

  async close(): Promise<void> {
    this.ended = true;
    await this.reader?.cancel().catch(() => undefined);
  }
}

export function baseUrl(target: HttpTarget): string {
  return `http://${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
}

/** The JSON-RPC response to `id` among the messages of `value` (one message or a batch). */
export function findResponse(value: unknown, id: JsonRpcId): JsonRpcResponse | undefined {
  for (const item of Array.isArray(value) ? value : [value]) {
    const classified = classify(item);
    if (classified?.kind === "response" && classified.message.id === id) return classified.message;
  }
  return undefined;
}

export function responseOf(data: string, id: JsonRpcId): JsonRpcResponse | undefined {
  try {
    return findResponse(JSON.parse(data), id);
  } catch {
    return undefined;
  }
}

/** The result of a response, or a ProbeError naming the JSON-RPC error code (never the server's message). */
function resultOf(step: ProbeStep, response: JsonRpcResponse): unknown {
  if ("error" in response) {
    const code = typeof response.error.code === "number" ? response.error.code : Number.NaN;
    throw new ProbeError(step, { kind: "rpc_error", code });
  }
  return response.result;
}

function protocolVersionOf(result: unknown): string {
  const version = (result as { protocolVersion?: unknown } | undefined)?.protocolVersion;
  if (typeof version !== "string") throw new ProbeError("initialize", { kind: "no_protocol_version" });
  return version;
}

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
    const ctx: ProbeContext = {
      signal: AbortSignal.timeout(timeoutMs),
      timeoutMs,
      maxBytes: this.options.maxResponseBytes ?? MAX_PROBE_RESPONSE_BYTES,
    };
    const target = await this.options.target();
    this.lastTarget = target;
    if (!this.initialized) await this.initialize(ctx, target);
    try {
      await this.call(ctx, target, "ping", undefined);
    } catch (error) {
      if (!(error instanceof SessionGoneError)) throw error;
      this.reset();
      await this.initialize(ctx, target);
      await this.call(ctx, target, "ping", undefined);
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
      redirect: "manual",
      signal: AbortSignal.timeout(1000),
    }).then(discard, () => undefined);
  }

  private async initialize(ctx: ProbeContext, target: HttpTarget): Promise<void> {
    const result = await this.call(ctx, target, "initialize", {
      protocolVersion: UPSTREAM_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: this.options.clientInfo,
    });
    this.protocolVersion = protocolVersionOf(result);
    await this.post(ctx, target, "notifications/initialized", {
      jsonrpc: "2.0",
      method: "notifications/initialized",
    });
    this.initialized = true;
  }

  private async call(
    ctx: ProbeContext,
    target: HttpTarget,
    method: "initialize" | "ping",
    params: unknown,
  ): Promise<unknown> {
    const id = this.nextId++;
    const message = { jsonrpc: "2.0" as const, id, method, ...(params === undefined ? {} : { params }) };
    const response = await this.post(ctx, target, method, message);
    if (!response) throw new ProbeError(method, { kind: "no_response" });
    return resultOf(method, response);
  }

  /** POSTs a message; for a request, returns its response (from JSON or the event stream). */
  private async post(
    ctx: ProbeContext,
    target: HttpTarget,
    step: ProbeStep,
    message: JsonRpcMessage,
  ): Promise<JsonRpcResponse | undefined> {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    };
    if (this.sessionId) headers[SESSION_HEADER] = this.sessionId;
    if (this.protocolVersion) headers[PROTOCOL_VERSION_HEADER] = this.protocolVersion;
    const res = await request(ctx, step, this.url(target), {
      method: "POST",
      headers,
      body: JSON.stringify(message),
    });
    if (res.status === 404 && this.sessionId) {
      await discard(res);
      throw new SessionGoneError("session gone");
    }
    if (!res.ok) {
      await discard(res);
      throw new ProbeError(step, { kind: "http_status", status: res.status });
    }
    const session = res.headers.get(SESSION_HEADER);
    // A session id is echoed back in a header; keep it only when it is one (visible ASCII, bounded).
    if (session && /^[\x21-\x7e]{1,256}$/.test(session)) this.sessionId = session;
    if (!("id" in message) || !("method" in message)) {
      await discard(res);
      return undefined;
    }
    const id = message.id;
    if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
      const events = new BoundedEventStream(ctx, res);
      try {
        const event = await events.next(step, (e) => responseOf(e.data, id) !== undefined);
        return responseOf(event.data, id);
      } finally {
        await events.close();
      }
    }
    const text = await readLimited(ctx, step, res);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ProbeError(step, { kind: "not_json" });
    }
    return findResponse(value, id);
  }

  private url(target: HttpTarget): string {
    return `${baseUrl(target)}${this.options.path ?? "/mcp"}`;
  }
}

/**
 * The older HTTP+SSE transport (spec 2024-11-05): GET /sse yields an `endpoint` event naming where to POST (on
 * the same origin only); responses arrive on the event stream. Each probe opens the stream, initializes, pings
 * and closes it again. Everything read from the stream during one probe counts against the cap.
 */
export class SseTransportProbe implements McpProbe {
  constructor(private readonly options: HttpProbeOptions) {}

  reset(): void {}

  async close(): Promise<void> {}

  async probe(timeoutMs: number): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const ctx: ProbeContext = {
      signal: controller.signal,
      timeoutMs,
      maxBytes: this.options.maxResponseBytes ?? MAX_PROBE_RESPONSE_BYTES,
    };
    let events: BoundedEventStream | undefined;
    try {
      const target = await this.options.target();
      const base = baseUrl(target);
      const res = await request(ctx, "GET /sse", `${base}${this.options.path ?? "/sse"}`, {
        headers: { accept: "text/event-stream" },
      });
      if (!res.ok || !res.body) {
        await discard(res);
        throw new ProbeError("GET /sse", { kind: "http_status", status: res.status });
      }
      events = new BoundedEventStream(ctx, res);
      const endpoint = await events.next("endpoint", (e) => e.event === "endpoint");
      let postUrl: URL;
      try {
        postUrl = new URL(endpoint.data, base);
      } catch {
        throw new ProbeError("endpoint", { kind: "foreign_endpoint" });
      }
      if (postUrl.origin !== new URL(base).origin)
        throw new ProbeError("endpoint", { kind: "foreign_endpoint" });
      const stream = events;
      const send = async (step: ProbeStep, message: JsonRpcMessage) => {
        const r = await request(ctx, step, postUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(message),
        });
        await discard(r);
        if (!r.ok) throw new ProbeError(step, { kind: "http_status", status: r.status });
      };
      const call = async (id: number, method: "initialize" | "ping", params?: unknown) => {
        await send(method, { jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
        const event = await stream.next(
          method,
          (e) => e.event === "message" && responseOf(e.data, id) !== undefined,
        );
        return resultOf(method, responseOf(event.data, id)!);
      };
      protocolVersionOf(
        await call(1, "initialize", {
          protocolVersion: "2024-11-05",
          capabilities: {},
          clientInfo: this.options.clientInfo,
        }),
      );
      await send("notifications/initialized", { jsonrpc: "2.0", method: "notifications/initialized" });
      await call(2, "ping");
    } finally {
      clearTimeout(timer);
      controller.abort();
      await events?.close();
    }
  }
}
