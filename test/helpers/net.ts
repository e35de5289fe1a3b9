// Loopback-only network helpers shared by tests and benchmarks.
import http from "node:http";
import type { AddressInfo } from "node:net";

/** A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface SseStream<T> {
  status: number;
  contentType: string | undefined;
  events: { event: string; data: T }[];
  /** When an event of `events` arrived (kept apart so events compare as plain {event, data}). */
  receivedAt(event: { event: string; data: T }): number;
  /** Everything received so far, comments and heartbeats included. */
  text(): string;
  ended: Promise<void>;
  close(): void;
}

/** A server-sent events client that collects `event:`/`data:` blocks as they arrive. */
export function openSse<T = Record<string, unknown>>(
  url: string,
  headers: Record<string, string>,
): Promise<SseStream<T>> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers }, (response) => {
      let buffer = "";
      let all = "";
      const arrivals = new WeakMap<object, number>();
      const stream: SseStream<T> = {
        status: response.statusCode ?? 0,
        contentType: response.headers["content-type"],
        events: [],
        receivedAt: (event) => arrivals.get(event) ?? Number.NaN,
        text: () => all,
        ended: new Promise((done) => response.on("close", () => done())),
        close: () => request.destroy(),
      };
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        all += chunk;
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!event || !data) continue;
          const entry = { event, data: JSON.parse(data) as T };
          arrivals.set(entry, Date.now());
          stream.events.push(entry);
        }
      });
      resolve(stream);
    });
    request.on("error", reject);
  });
}
