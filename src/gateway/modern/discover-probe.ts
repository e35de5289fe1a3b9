import { z } from "zod";
import {
  BoundedEventStream,
  type McpProbe,
  type ProbeContext,
  MAX_PROBE_RESPONSE_BYTES,
  baseUrl,
  findResponse,
  readLimited,
  request,
  responseOf,
} from "../http-probe.js";
import type { HttpTarget } from "../http-proxy.js";
import { discard } from "../http-util.js";
import type { JsonRpcResponse } from "../jsonrpc.js";
import { ProbeError } from "../probe-failure.js";
import { PROTOCOL_VERSION_HEADER } from "../protocol.js";
import { FIRST_MODERN_PROTOCOL_VERSION, META, MODERN_HEADERS, isServedModernVersion } from "./versions.js";

/*
 * MCP-level health of an HTTP server in either era. The first probe of a container asks `server/discover` (a
 * 2026-07-28 request, stateless): a server that offers a modern revision the gateway serves is modern, and
 * `server/discover` is its health check from then on; anything else (an error, an HTTP error status, a result
 * without a modern revision) makes it legacy, probed with `initialize` + `ping` as before. The verdict holds
 * until the container changes. Answers are hostile input, read with the same bounds as every probe.
 */

export type ServerEra = "unknown" | "legacy" | "modern";

const DiscoverResult = z.looseObject({
  supportedVersions: z.array(z.string()).max(100),
  capabilities: z.record(z.string(), z.unknown()),
});

export interface EraProbeOptions {
  target: () => Promise<HttpTarget>;
  clientInfo: { name: string; version: string };
  legacy: McpProbe;
  path?: string;
  maxResponseBytes?: number;
  onEra?: (era: ServerEra) => void;
}

export class EraProbe implements McpProbe {
  private current: ServerEra = "unknown";

  constructor(private readonly options: EraProbeOptions) {}

  get era(): ServerEra {
    return this.current;
  }

  reset(): void {
    this.setEra("unknown");
    this.options.legacy.reset();
  }

  close(): Promise<void> {
    return this.options.legacy.close();
  }

  async probe(timeoutMs: number): Promise<void> {
    if (this.current === "legacy") return this.options.legacy.probe(timeoutMs);
    const ctx: ProbeContext = {
      signal: AbortSignal.timeout(timeoutMs),
      timeoutMs,
      maxBytes: this.options.maxResponseBytes ?? MAX_PROBE_RESPONSE_BYTES,
    };
    const target = await this.options.target();
    let response: JsonRpcResponse | undefined;
    try {
      response = await this.discover(ctx, target);
    } catch (error) {
      // A modern server must keep answering server/discover; before the verdict, a failure only means "not
      // modern" when the server answered at all (a connection failure is a failed probe either way).
      if (this.current === "modern" || !(error instanceof ProbeError) || error.failure.kind !== "http_status")
        throw error;
      response = undefined;
    }
    const parsed = response && "result" in response ? DiscoverResult.safeParse(response.result) : undefined;
    const modern = parsed?.success === true && parsed.data.supportedVersions.some(isServedModernVersion);
    if (modern) {
      this.setEra("modern");
      return;
    }
    if (this.current === "modern") {
      throw new ProbeError("server/discover", { kind: "invalid_discover_result" });
    }
    this.setEra("legacy");
    return this.options.legacy.probe(timeoutMs);
  }

  private setEra(era: ServerEra): void {
    if (era === this.current) return;
    this.current = era;
    this.options.onEra?.(era);
  }

  private async discover(ctx: ProbeContext, target: HttpTarget): Promise<JsonRpcResponse | undefined> {
    const id = 1;
    const res = await request(ctx, "server/discover", `${baseUrl(target)}${this.options.path ?? "/mcp"}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        [PROTOCOL_VERSION_HEADER]: FIRST_MODERN_PROTOCOL_VERSION,
        [MODERN_HEADERS.method]: "server/discover",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id,
        method: "server/discover",
        params: {
          _meta: {
            [META.protocolVersion]: FIRST_MODERN_PROTOCOL_VERSION,
            [META.clientInfo]: this.options.clientInfo,
            [META.clientCapabilities]: {},
          },
        },
      }),
    });
    if (!res.ok) {
      await discard(res);
      throw new ProbeError("server/discover", { kind: "http_status", status: res.status });
    }
    if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
      const events = new BoundedEventStream(ctx, res);
      try {
        const event = await events.next("server/discover", (e) => responseOf(e.data, id) !== undefined);
        return responseOf(event.data, id);
      } finally {
        await events.close();
      }
    }
    const text = await readLimited(ctx, "server/discover", res);
    try {
      return findResponse(JSON.parse(text), id);
    } catch {
      throw new ProbeError("server/discover", { kind: "not_json" });
    }
  }
}
