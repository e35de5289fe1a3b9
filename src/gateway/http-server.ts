import http from "node:http";
import net from "node:net";
import type { ContainerEndpoint } from "../docker/attach.js";
import type { Logger } from "../observability/logger.js";
import { type Clock, systemClock } from "../util/clock.js";
import type { ServerTarget, Upstream } from "./endpoint.js";
import type { RequestHandler } from "./handler.js";
import { type McpProbe, SseTransportProbe, StreamableHttpProbe } from "./http-probe.js";
import { DEFAULT_PROXY_LIMITS, HttpProxyHandler, type HttpTarget } from "./http-proxy.js";
import { HttpSessions } from "./http-sessions.js";
import { headerValue, sendJson } from "./http-util.js";
import { errorResponse } from "./jsonrpc.js";
import type { GatewayMetrics } from "./metrics.js";
import { EraProbe, type ServerEra } from "./modern/discover-probe.js";
import { EraRouter } from "./modern/era-router.js";
import { LegacyHttpBridge, type LegacyHttpBridgeOptions } from "./modern/http-bridge.js";
import { MODERN_ERROR_CODES } from "./modern/versions.js";
import { PROTOCOL_VERSION_HEADER, SUPPORTED_PROTOCOL_VERSIONS } from "./protocol.js";
import { ProbeError, type UnavailableReason } from "./probe-failure.js";

export interface HttpServerDeps {
  /** Where the container's server listens; the default resolves it by inspecting the container. */
  resolve?: (target: ServerTarget) => Promise<HttpTarget>;
  inspect?: (containerId: string) => Promise<ContainerEndpoint>;
  logger: Logger;
  metrics: GatewayMetrics;
  clientInfo: { name: string; version: string };
  /** Cap of one probe answer (default MAX_PROBE_RESPONSE_BYTES). */
  probeMaxBytes?: number;
  /** The proxy's response timeout and concurrency cap (defaults: DEFAULT_PROXY_LIMITS). */
  responseTimeoutMs?: number;
  maxConcurrent?: number;
  /** Client sessions the gateway keeps across restarts of a streamable-HTTP server (default 1000). */
  maxSessions?: number;
  clock?: Clock;
  /** The gateway's session toward a legacy server for modern clients: multiplexer and input-round bounds. */
  bridge?: Pick<LegacyHttpBridgeOptions, "mux" | "modern">;
}

/** How long a modern request waits for the first probe to tell the server's era (when none has yet). */
const ERA_PROBE_TIMEOUT_MS = 5_000;

/**
 * A streamable-http or sse server behind the gateway: requests are proxied to the container's address on its
 * user network and declared port; probes speak MCP to the same address. Clients on MCP 2026-07-28 are passed
 * through to a server that speaks it (the first probe asks `server/discover`), and served by translation onto a
 * gateway-owned session when the server is legacy (streamable-http only: an `sse`-transport server is refused to
 * them, see the README).
 */
export class HttpServerUpstream implements Upstream {
  readonly handler: EraRouter;
  readonly proxy: HttpProxyHandler;
  /** Counts the server's processes: another container, or the same one started again. */
  private incarnation = 0;
  private readonly prober: McpProbe;
  private readonly eraProbe: EraProbe | undefined;
  private bridge: LegacyHttpBridge | undefined;
  private readonly agent: http.Agent;
  private resolved: Promise<HttpTarget> | undefined;

  constructor(
    private target: ServerTarget,
    private readonly deps: HttpServerDeps,
  ) {
    const transport = target.transport;
    const maxConcurrent = deps.maxConcurrent ?? DEFAULT_PROXY_LIMITS.maxConcurrent;
    // As many sockets as requests may be in flight: the agent never queues a request the proxy admitted.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: maxConcurrent, maxFreeSockets: 16 });
    this.proxy = new HttpProxyHandler({
      transport: transport === "sse" ? "sse" : "streamable-http",
      maxConcurrent,
      ...(deps.responseTimeoutMs !== undefined ? { responseTimeoutMs: deps.responseTimeoutMs } : {}),
      target: () => this.resolve(),
      invalidate: () => {
        this.resolved = undefined;
      },
      agent: this.agent,
      onBytes: (direction, bytes) =>
        deps.metrics.bytesTotal.inc(
          { transport, direction: direction === "in" ? "client_to_server" : "server_to_client" },
          bytes,
        ),
      onStream: (delta) => deps.metrics.openStreams.inc({ transport }, delta),
      onInspectOverflow: () => deps.metrics.inspectOverflowsTotal.inc(),
    });
    // Streamable-HTTP clients keep their sessions when the server restarts (woken from idle, or replaced).
    const legacy: RequestHandler =
      transport === "streamable-http"
        ? new HttpSessions({
            inner: this.proxy,
            target: () => this.resolve(),
            agent: this.agent,
            incarnation: () => this.incarnation,
            logger: deps.logger,
            maxSessions: deps.maxSessions ?? 1000,
          })
        : this.proxy;
    const probeOptions = {
      target: () => this.resolve(),
      clientInfo: deps.clientInfo,
      ...(deps.probeMaxBytes !== undefined ? { maxResponseBytes: deps.probeMaxBytes } : {}),
    };
    if (transport === "sse") {
      this.prober = new SseTransportProbe(probeOptions);
    } else {
      this.eraProbe = new EraProbe({
        ...probeOptions,
        legacy: new StreamableHttpProbe(probeOptions),
        onEra: (era) => deps.logger.info({ era }, "server protocol era"),
      });
      this.prober = this.eraProbe;
    }
    this.handler = new EraRouter(legacy, () => this.modernHandler());
  }

  /** What the probes found the server speaks (an `sse`-transport server is legacy). */
  get era(): ServerEra {
    return this.eraProbe?.era ?? "legacy";
  }

  /** Who serves a modern client now: the server itself, the translating bridge, or a refusal. */
  private modernHandler(): RequestHandler {
    const probe = this.eraProbe;
    if (!probe) return REFUSE_MODERN_ON_SSE;
    return {
      handle: async (req, res, ctx) => {
        if (probe.era === "unknown") await probe.probe(ERA_PROBE_TIMEOUT_MS).catch(() => undefined);
        if (probe.era === "modern") return this.proxy.handle(req, res, ctx);
        this.bridge ??= this.createBridge();
        return this.bridge.front.handle(req, res, ctx);
      },
    };
  }

  private createBridge(): LegacyHttpBridge {
    const { metrics } = this.deps;
    const transport = this.target.transport;
    return new LegacyHttpBridge({
      ...this.deps.bridge,
      target: () => this.resolve(),
      clock: this.deps.clock ?? systemClock,
      serverUserId: this.target.userId,
      clientInfo: this.deps.clientInfo,
      front: {
        onBytes: (direction, bytes) =>
          metrics.bytesTotal.inc(
            { transport, direction: direction === "in" ? "client_to_server" : "server_to_client" },
            bytes,
          ),
        onStream: (delta) => metrics.openStreams.inc({ transport }, delta),
      },
    });
  }

  update(target: ServerTarget): void {
    if (
      target.containerId !== this.target.containerId ||
      (target.state === "running" && this.target.state !== "running")
    )
      this.incarnation += 1;
    if (target.containerId !== this.target.containerId || target.state !== this.target.state) {
      this.resolved = undefined;
      this.prober.reset();
      this.bridge?.reset("the container changed");
    }
    this.target = target;
  }

  probe(timeoutMs: number): Promise<void> {
    return this.prober.probe(timeoutMs);
  }

  /** After a start: polls (every 100 ms) until the server accepts a TCP connection, within `timeoutMs`. */
  async ready(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const target = await this.resolve();
        if (await canConnect(target, Math.min(1000, deadline - Date.now()))) return true;
      } catch {
        // Not resolvable yet (no address): look again.
      }
      this.resolved = undefined;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return false;
  }

  toolsChanged(): void {
    this.proxy.toolsChanged();
  }

  async close(): Promise<void> {
    this.proxy.close();
    this.bridge?.close();
    await this.prober.close();
    this.agent.destroy();
  }

  private resolve(): Promise<HttpTarget> {
    if (!this.resolved) {
      const attempt = this.lookup(this.target);
      this.resolved = attempt;
      attempt.catch(() => {
        if (this.resolved === attempt) this.resolved = undefined;
      });
    }
    return this.resolved;
  }

  private async lookup(target: ServerTarget): Promise<HttpTarget> {
    if (this.deps.resolve) return this.deps.resolve(target);
    const unavailable = (reason: UnavailableReason) =>
      new ProbeError("target", { kind: "unavailable", reason });
    if (!this.deps.inspect) throw unavailable("cannot inspect the container");
    let endpoint: ContainerEndpoint;
    try {
      endpoint = await this.deps.inspect(target.containerId);
    } catch (error) {
      this.deps.logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        "cannot inspect the server's container",
      );
      throw unavailable("cannot inspect the container");
    }
    if (!endpoint.running) throw unavailable("container is not running");
    if (!endpoint.ipAddress) throw unavailable("container has no IP address on its network");
    const port = target.containerPort ?? endpoint.serverPortEnv ?? endpoint.exposedTcpPorts[0];
    if (port === undefined) throw unavailable("container declares no port (label mcp.portal.container_port)");
    return { host: endpoint.ipAddress, port };
  }
}

function canConnect(target: HttpTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), Math.max(1, timeoutMs));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * An `sse`-transport server speaks the 2024-11-05 transport only, and the gateway does not translate onto it: a
 * modern request gets the unsupported-version error listing the session-based revisions, so a client in `auto`
 * mode falls back to one of them.
 */
const REFUSE_MODERN_ON_SSE: RequestHandler = {
  handle: (req, res) => {
    const header = headerValue(req, PROTOCOL_VERSION_HEADER) ?? "none";
    sendJson(
      res,
      400,
      errorResponse(
        null,
        MODERN_ERROR_CODES.unsupportedProtocolVersion,
        `Unsupported protocol version: ${header} (this server is on the sse transport)`,
        {
          supported: [...SUPPORTED_PROTOCOL_VERSIONS],
          requested: header,
        },
      ),
    );
  },
};
