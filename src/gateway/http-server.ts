import http from "node:http";
import type { ContainerEndpoint } from "../docker/attach.js";
import type { Logger } from "../observability/logger.js";
import type { ServerTarget, Upstream } from "./endpoint.js";
import { type McpProbe, SseTransportProbe, StreamableHttpProbe } from "./http-probe.js";
import { DEFAULT_PROXY_LIMITS, HttpProxyHandler, type HttpTarget } from "./http-proxy.js";
import type { GatewayMetrics } from "./metrics.js";
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
}

/**
 * A streamable-http or sse server behind the gateway: requests are proxied to the container's address on its
 * user network and declared port; probes speak MCP to the same address.
 */
export class HttpServerUpstream implements Upstream {
  readonly handler: HttpProxyHandler;
  private readonly prober: McpProbe;
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
    this.handler = new HttpProxyHandler({
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
    const probeOptions = {
      target: () => this.resolve(),
      clientInfo: deps.clientInfo,
      ...(deps.probeMaxBytes !== undefined ? { maxResponseBytes: deps.probeMaxBytes } : {}),
    };
    this.prober =
      transport === "sse" ? new SseTransportProbe(probeOptions) : new StreamableHttpProbe(probeOptions);
  }

  update(target: ServerTarget): void {
    if (target.containerId !== this.target.containerId || target.state !== this.target.state) {
      this.resolved = undefined;
      this.prober.reset();
    }
    this.target = target;
  }

  probe(timeoutMs: number): Promise<void> {
    return this.prober.probe(timeoutMs);
  }

  toolsChanged(): void {
    this.handler.toolsChanged();
  }

  async close(): Promise<void> {
    this.handler.close();
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
