import type { ServerResponse } from "node:http";
import type { WebSocket } from "ws";
import type { PortalEvent } from "../../events/event-bus.js";
import type { EventSink } from "./live-hub.js";

/** Server-sent events: `event: <TYPE>` + `data: <json>`, a comment line as heartbeat. */
export function sseSink(raw: ServerResponse, actor: string): EventSink {
  return {
    kind: "sse",
    actor,
    send: (event: PortalEvent) => {
      raw.write(`event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
    },
    heartbeat: () => {
      raw.write(": heartbeat\n\n");
    },
    buffered: () => raw.writableLength,
    close: (reason) => {
      // A slow client would make end() wait for its buffer: drop the socket instead.
      if (reason === "slow") raw.destroy();
      else if (reason === "revoked" || reason === "expired") raw.end(`: token ${reason}\n\n`);
      else raw.end();
    },
  };
}

/** WebSocket: one text frame `{"event": TYPE, "data": {...}}` per event, a ping frame as heartbeat. */
export function wsSink(socket: WebSocket, actor: string): EventSink {
  return {
    kind: "ws",
    actor,
    send: (event: PortalEvent) => {
      socket.send(JSON.stringify(event));
    },
    heartbeat: () => {
      socket.ping();
    },
    buffered: () => socket.bufferedAmount,
    close: (reason) => {
      if (reason === "slow") {
        socket.terminate();
        return;
      }
      if (reason === "revoked" || reason === "expired") socket.close(1008, `token ${reason}`);
      else socket.close(1001, "server shutting down");
      // A client that does not answer the close frame must not hold the shutdown (or keep a revoked stream).
      setTimeout(() => socket.terminate(), 1000).unref();
    },
  };
}
