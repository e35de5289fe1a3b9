import net from "node:net";
import type { Logger } from "../observability/logger.js";

/*
 * Several hosts (README, "Several hosts"): the entry gateway forwards each user's port to the node gateway of the
 * node the user runs on, over one TCP port per node (the relay port). A forwarded connection starts with one line,
 * `MCP-PORTAL-RELAY <host port>\n`, then carries the client's bytes unchanged to the node gateway's endpoint for
 * that port on loopback, where the usual origin and token checks happen. Nothing is trusted because it came
 * through the relay: it reaches only ports the node gateway serves, and only their authenticated endpoints.
 */

export const RELAY_PREFIX = "MCP-PORTAL-RELAY ";
/** The preamble is short; anything longer is not ours. */
export const RELAY_PREAMBLE_MAX_BYTES = 64;
/** A connection must say where it goes within this long. */
export const RELAY_PREAMBLE_TIMEOUT_MS = 5_000;

export function relayPreamble(hostPort: number): string {
  return `${RELAY_PREFIX}${hostPort}\n`;
}

export type PreambleResult =
  | { kind: "incomplete" }
  | { kind: "invalid"; reason: string }
  | { kind: "ok"; hostPort: number; rest: Buffer };

/** Pure: reads the preamble from the first bytes of a connection. */
export function parseRelayPreamble(buffer: Buffer): PreambleResult {
  const newline = buffer.indexOf(0x0a);
  if (newline < 0) {
    return buffer.length >= RELAY_PREAMBLE_MAX_BYTES
      ? { kind: "invalid", reason: "preamble too long" }
      : { kind: "incomplete" };
  }
  if (newline >= RELAY_PREAMBLE_MAX_BYTES) return { kind: "invalid", reason: "preamble too long" };
  const line = buffer.subarray(0, newline).toString("latin1").replace(/\r$/, "");
  if (!line.startsWith(RELAY_PREFIX)) return { kind: "invalid", reason: "not a relay preamble" };
  const port = line.slice(RELAY_PREFIX.length);
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65_535)
    return { kind: "invalid", reason: "bad port" };
  return { kind: "ok", hostPort: Number(port), rest: buffer.subarray(newline + 1) };
}

export interface RelayServerOptions {
  host: string;
  port: number;
  /** Where the node gateway's endpoints listen (its publish host). */
  targetHost: string;
  /** Ports the node gateway serves right now: only those are reachable. */
  served: () => ReadonlySet<number>;
  logger: Logger;
}

/** The node side: accepts forwarded connections and hands each to the local endpoint its preamble names. */
export class RelayServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly options: RelayServerOptions) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : this.options.port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), RELAY_PREAMBLE_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const result = parseRelayPreamble(buffer);
      if (result.kind === "incomplete") return;
      clearTimeout(timer);
      socket.off("data", onData);
      if (result.kind === "invalid" || !this.options.served().has(result.hostPort)) {
        this.options.logger.warn(
          { reason: result.kind === "invalid" ? result.reason : `port ${result.hostPort} not served here` },
          "relay connection refused",
        );
        socket.destroy();
        return;
      }
      socket.pause();
      const upstream = net.connect(result.hostPort, this.options.targetHost, () => {
        if (result.rest.length > 0) upstream.write(result.rest);
        socket.pipe(upstream);
        upstream.pipe(socket);
        socket.resume();
      });
      upstream.on("error", () => socket.destroy());
      socket.once("close", () => upstream.destroy());
      upstream.once("close", () => socket.destroy());
    };
    socket.on("data", onData);
  }
}
