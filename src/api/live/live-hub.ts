import type { EventBus, PortalEvent } from "../../events/event-bus.js";
import type { Logger } from "../../observability/logger.js";

/** One live-event connection (server-sent events or WebSocket). */
export interface EventSink {
  readonly kind: "sse" | "ws";
  /** Who is listening, for log lines (`admin`, `token:<id>`). */
  readonly actor: string;
  send(event: PortalEvent): void;
  heartbeat(): void;
  /** Bytes written but not yet taken by the client (kernel buffers aside). */
  buffered(): number;
  /** Ends the connection: `slow` when dropped for not reading, `revoked` when its token is gone. */
  close(reason: CloseReason): void;
}

export type CloseReason = "slow" | "shutdown" | "revoked" | "expired";

/**
 * Whose credential a connection uses: a user token by id (revocable), the admin token (which cannot be revoked),
 * or an OIDC access token (by a digest of it), which ends at its expiry.
 */
export type Credential =
  | { kind: "token"; tokenId: string }
  | { kind: "admin" }
  | { kind: "expiring"; key: string; expiresAt: number };

export interface LiveHubOptions {
  maxBufferedBytes: number;
  heartbeatMs: number;
  /** How often open connections' tokens are checked again. */
  recheckMs: number;
  /** Called once per recheck: which user tokens are still valid (none when the token store is unusable). */
  validTokens: () => Promise<(tokenId: string) => boolean>;
  now?: () => number;
}

interface Connection {
  sink: EventSink;
  accepts: (event: PortalEvent) => boolean;
  credential: Credential;
}

export function credentialKey(credential: Credential): string {
  if (credential.kind === "admin") return "admin";
  return credential.kind === "token" ? `token:${credential.tokenId}` : `oidc:${credential.key}`;
}

/**
 * Fans daemon events out to live connections. A connection whose client does not keep up (more than
 * `maxBufferedBytes` pending) is closed rather than allowed to grow memory; drops are logged and counted. Every
 * `recheckMs` the user tokens of open connections are checked again: a revoked token's streams are closed, and so
 * are those of an OIDC access token that has expired.
 */
export class LiveHub {
  private readonly connections = new Set<Connection>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private rechecking = false;
  private droppedTotal = 0;

  constructor(
    private readonly bus: Pick<EventBus, "subscribe">,
    private readonly logger: Logger,
    private readonly options: LiveHubOptions,
  ) {}

  /** Registers a connection; the returned function forgets it (call it when the client goes away). */
  open(sink: EventSink, accepts: (event: PortalEvent) => boolean, credential: Credential): () => void {
    const connection: Connection = { sink, accepts, credential };
    this.connections.add(connection);
    if (this.connections.size === 1) this.start();
    return () => this.forget(connection);
  }

  get size(): number {
    return this.connections.size;
  }

  /** Open connections using this credential (the per-token cap). */
  countFor(credential: Credential): number {
    const key = credentialKey(credential);
    let count = 0;
    for (const connection of this.connections) if (credentialKey(connection.credential) === key) count++;
    return count;
  }

  get dropped(): number {
    return this.droppedTotal;
  }

  /** Closes every connection (server shutdown). */
  closeAll(): void {
    for (const connection of [...this.connections]) {
      this.forget(connection);
      connection.sink.close("shutdown");
    }
  }

  private start(): void {
    this.unsubscribe = this.bus.subscribe((event) => this.dispatch(event));
    this.timer = setInterval(() => this.beat(), this.options.heartbeatMs);
    this.timer.unref();
    this.recheckTimer = setInterval(() => void this.recheck(), this.options.recheckMs);
    this.recheckTimer.unref();
  }

  private forget(connection: Connection): void {
    if (!this.connections.delete(connection)) return;
    if (this.connections.size > 0) return;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearInterval(this.timer);
    this.timer = undefined;
    clearInterval(this.recheckTimer);
    this.recheckTimer = undefined;
  }

  /** Closes the connections whose user token no longer exists, or whose OIDC token has expired. */
  private async recheck(): Promise<void> {
    if (this.rechecking) return;
    if (![...this.connections].some((c) => c.credential.kind !== "admin")) return;
    this.rechecking = true;
    try {
      const now = (this.options.now ?? Date.now)();
      for (const connection of [...this.connections]) {
        const { credential } = connection;
        if (credential.kind !== "expiring" || credential.expiresAt > now) continue;
        this.close(connection, "expired", "live-event connection closed: its token expired");
      }
      if (![...this.connections].some((c) => c.credential.kind === "token")) return;
      let valid: (tokenId: string) => boolean;
      try {
        valid = await this.options.validTokens();
      } catch {
        valid = () => false; // cannot tell: fail closed, like new requests do
      }
      for (const connection of [...this.connections]) {
        const { credential } = connection;
        if (credential.kind !== "token" || valid(credential.tokenId)) continue;
        this.close(connection, "revoked", "live-event connection closed: its token was revoked");
      }
    } finally {
      this.rechecking = false;
    }
  }

  private close(connection: Connection, reason: "revoked" | "expired", message: string): void {
    this.forget(connection);
    this.logger.info({ transport: connection.sink.kind, actor: connection.sink.actor }, message);
    connection.sink.close(reason);
  }

  private dispatch(event: PortalEvent): void {
    for (const connection of [...this.connections]) {
      if (!connection.accepts(event)) continue;
      if (this.dropIfSlow(connection)) continue;
      this.attempt(connection, () => connection.sink.send(event));
    }
  }

  private beat(): void {
    for (const connection of [...this.connections]) {
      if (!this.dropIfSlow(connection)) this.attempt(connection, () => connection.sink.heartbeat());
    }
  }

  /** A connection that fails to take a write is closed; the others still get theirs. */
  private attempt(connection: Connection, write: () => void): void {
    try {
      write();
    } catch (error) {
      this.forget(connection);
      this.logger.debug({ transport: connection.sink.kind, err: String(error) }, "live-event write failed");
      connection.sink.close("slow");
    }
  }

  private dropIfSlow(connection: Connection): boolean {
    const buffered = connection.sink.buffered();
    if (buffered <= this.options.maxBufferedBytes) return false;
    this.droppedTotal++;
    this.forget(connection);
    this.logger.warn(
      {
        transport: connection.sink.kind,
        actor: connection.sink.actor,
        buffered_bytes: buffered,
        limit_bytes: this.options.maxBufferedBytes,
        dropped_total: this.droppedTotal,
      },
      "live-event client too slow: connection dropped",
    );
    connection.sink.close("slow");
    return true;
  }
}
