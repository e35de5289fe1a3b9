import type { Clock } from "../../util/clock.js";
import type { HttpTarget } from "../http-proxy.js";
import { StdioMultiplexer, type StdioMuxOptions } from "../stdio-mux.js";
import { type ModernFrontOptions, ModernFront } from "./front.js";
import { LegacyHttpLink } from "./http-link.js";
import { MuxBackend, type MuxBackendOptions } from "./mux-backend.js";

export interface LegacyHttpBridgeOptions {
  target: () => Promise<HttpTarget>;
  clock: Clock;
  serverUserId: string;
  clientInfo: { name: string; version: string };
  mux?: Partial<Omit<StdioMuxOptions, "clock" | "clientInfo" | "serverUserId">>;
  modern?: Omit<MuxBackendOptions, "clock">;
  front?: ModernFrontOptions;
  path?: string;
}

/**
 * Modern clients of a legacy streamable-HTTP server: one gateway-owned session with the server (opened when the
 * first modern request comes, re-opened after it is lost), multiplexed and translated exactly as for a stdio
 * server. Legacy clients of the same server do not pass here.
 */
export class LegacyHttpBridge {
  readonly mux: StdioMultiplexer;
  readonly backend: MuxBackend;
  readonly front: ModernFront;
  private link: LegacyHttpLink | undefined;

  constructor(private readonly options: LegacyHttpBridgeOptions) {
    this.mux = new StdioMultiplexer({
      ...options.mux,
      clock: options.clock,
      serverUserId: options.serverUserId,
      clientInfo: options.clientInfo,
    });
    this.backend = new MuxBackend(this.mux, {
      ...options.modern,
      clock: options.clock,
      ...(options.mux?.readyWaitMs !== undefined ? { readyWaitMs: options.mux.readyWaitMs } : {}),
    });
    this.front = new ModernFront(
      {
        call: (request, owner, related, cancelled) => {
          this.ensureConnected();
          return this.backend.call(request, owner, related, cancelled);
        },
        listen: (request, owner, open) => {
          this.ensureConnected();
          return this.backend.listen(request, owner, open);
        },
      },
      options.front,
    );
  }

  get connected(): boolean {
    return this.link !== undefined;
  }

  /** The container changed: the next modern request opens a new session. */
  reset(reason: string): void {
    const link = this.link;
    this.link = undefined;
    if (link) this.mux.disconnect(reason, link);
    link?.close();
  }

  close(): void {
    const link = this.link;
    this.link = undefined;
    this.mux.closeAll("server no longer served");
    link?.close();
  }

  private ensureConnected(): void {
    if (this.link && !this.link.closed) return;
    const link: LegacyHttpLink = new LegacyHttpLink({
      target: this.options.target,
      receive: (line) => {
        if (this.link === link) this.mux.receive(line);
      },
      lost: (reason) => {
        if (this.link !== link) return;
        this.link = undefined;
        this.mux.disconnect(reason, link);
      },
      ...(this.options.path !== undefined ? { path: this.options.path } : {}),
    });
    this.link = link;
    this.mux.connect(link);
  }
}
