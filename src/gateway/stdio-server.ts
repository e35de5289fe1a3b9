import type { AttachedStdio } from "../docker/attach.js";
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
import type { ServerTarget, Upstream } from "./endpoint.js";
import type { GatewayMetrics } from "./metrics.js";
import { EraRouter } from "./modern/era-router.js";
import { ModernFront } from "./modern/front.js";
import { MuxBackend, type MuxBackendOptions } from "./modern/mux-backend.js";
import { StdioHttpHandler } from "./stdio-http.js";
import { StdioMultiplexer, type StdioMuxOptions } from "./stdio-mux.js";
import { StdioUpstream } from "./stdio-upstream.js";

export interface StdioServerDeps {
  /** The user whose server this is (its own requests go only to that user's sessions). */
  userId: string;
  attach: (containerId: string) => Promise<AttachedStdio>;
  clock: Clock;
  logger: Logger;
  metrics: GatewayMetrics;
  clientInfo: { name: string; version: string };
  mux?: Partial<Omit<StdioMuxOptions, "clock" | "clientInfo" | "onEvent" | "serverUserId">>;
  /** Batch cap of the HTTP side (default 100). */
  maxBatchMessages?: number;
  stderrLinesPerMinute?: number;
  /** MCP 2026-07-28 clients: bounds of the multi-round-trip state, and a say on listen streams. */
  modern?: Omit<MuxBackendOptions, "clock">;
}

const SWEEP_INTERVAL_MS = 60_000;

/** A stdio server behind the gateway: one attach (re-opened while the container runs), one multiplexer. */
export class StdioServerUpstream implements Upstream {
  readonly mux: StdioMultiplexer;
  readonly handler: EraRouter;
  readonly modern: MuxBackend;
  private loop: StdioUpstream | undefined;
  private containerId: string | undefined;
  private attaches = 0;
  private sessions = 0;
  private readonly sweep: NodeJS.Timeout;

  constructor(private readonly deps: StdioServerDeps) {
    const { logger, metrics } = deps;
    this.mux = new StdioMultiplexer({
      ...deps.mux,
      serverUserId: deps.userId,
      clock: deps.clock,
      clientInfo: deps.clientInfo,
      onEvent: (event) => {
        switch (event.type) {
          case "initialized":
            logger.info(
              { protocol_version: event.result.protocolVersion, reinitialized: event.reinitialized },
              "stdio server initialized",
            );
            return;
          case "initialize_failed":
            logger.warn({ err: event.message }, "stdio server did not initialize");
            return;
          case "disconnected":
            logger.info(
              { reason: event.reason, failed_requests: event.failedRequests },
              "stdio server detached",
            );
            return;
          case "dropped":
            logger.debug({ reason: event.reason }, "message dropped");
            return;
          case "sessions":
            metrics.sessions.inc({ transport: "stdio" }, event.count - this.sessions);
            this.sessions = event.count;
            return;
        }
      },
    });
    const traffic = {
      onBytes: (direction: "in" | "out", bytes: number) =>
        metrics.bytesTotal.inc(
          { transport: "stdio", direction: direction === "in" ? "client_to_server" : "server_to_client" },
          bytes,
        ),
      onStream: (delta: 1 | -1) => metrics.openStreams.inc({ transport: "stdio" }, delta),
    };
    const legacy = new StdioHttpHandler(this.mux, {
      ...(deps.maxBatchMessages !== undefined ? { maxBatchMessages: deps.maxBatchMessages } : {}),
      ...traffic,
    });
    this.modern = new MuxBackend(this.mux, {
      ...deps.modern,
      clock: deps.clock,
      ...(deps.mux?.readyWaitMs !== undefined ? { readyWaitMs: deps.mux.readyWaitMs } : {}),
    });
    const front = new ModernFront(this.modern, traffic);
    this.handler = new EraRouter(legacy, () => front);
    this.sweep = setInterval(() => this.mux.sweep(), SWEEP_INTERVAL_MS);
    this.sweep.unref();
  }

  update(target: ServerTarget): void {
    const running = target.state === "running";
    if (this.loop && (target.containerId !== this.containerId || !running)) {
      const loop = this.loop;
      this.loop = undefined;
      void loop.stop();
    }
    this.containerId = target.containerId;
    if (running && !this.loop) {
      const containerId = target.containerId;
      this.loop = new StdioUpstream({
        attach: () => this.deps.attach(containerId),
        mux: this.mux,
        clock: this.deps.clock,
        logger: this.deps.logger,
        ...(this.deps.stderrLinesPerMinute !== undefined
          ? { stderrLinesPerMinute: this.deps.stderrLinesPerMinute }
          : {}),
        onStderrLine: (outcome) => this.deps.metrics.stderrLinesTotal.inc({ outcome }),
        onAttach: () => {
          if (this.attaches > 0) this.deps.metrics.attachReconnectsTotal.inc();
          this.attaches += 1;
        },
      });
      this.loop.start();
    }
  }

  probe(timeoutMs: number): Promise<void> {
    return this.mux.ping(timeoutMs);
  }

  /** After a wake: resolves true once the server is attached and initialized (false after `timeoutMs`). */
  ready(timeoutMs: number): Promise<boolean> {
    return this.mux.whenReady(timeoutMs).then(
      () => true,
      () => false,
    );
  }

  toolsChanged(): void {
    this.mux.announceToolsChanged();
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    this.mux.closeAll("server no longer served");
    await this.loop?.stop();
    this.loop = undefined;
  }
}
