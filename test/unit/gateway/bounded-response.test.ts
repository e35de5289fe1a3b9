// A server's answer is hostile input: the gateway reads at most a bound of it, whether the size is declared or only
// discovered while reading, and stops reading there. Shared by the health probe and the 2026-07-28 legacy HTTP link.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { BodyTooLargeError, readResponseBody } from "../../../src/gateway/http-util.js";
import { LegacyHttpLink } from "../../../src/gateway/modern/http-link.js";

const servers: http.Server[] = [];

async function listen(listener: http.RequestListener): Promise<number> {
  const server = http.createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** Answers with `total` bytes of `fill` in 64 KiB writes, as fast as the client reads; counts what it wrote. */
function endless(total: number, headers: http.OutgoingHttpHeaders = {}) {
  let written = 0;
  const listener: http.RequestListener = (req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/json", ...headers });
    const chunk = Buffer.alloc(64 * 1024, "x");
    const pump = () => {
      while (written < total) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", pump);
      }
      res.end();
    };
    res.on("error", () => undefined);
    pump();
  };
  return { listener, written: () => written };
}

describe("readResponseBody", () => {
  it("returns a body within the bound as text", async () => {
    const port = await listen((req, res) => {
      req.resume();
      res.end("héllo");
    });
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(await readResponseBody(res, 6)).toBe("héllo");
  });

  it("refuses a declared Content-Length over the bound without reading the body", async () => {
    const port = await listen((req, res) => {
      req.resume();
      res.writeHead(200, { "content-length": "1001" });
      res.write("x");
    });
    const res = await fetch(`http://127.0.0.1:${port}/`);
    await expect(readResponseBody(res, 1000)).rejects.toBeInstanceOf(BodyTooLargeError);
  });

  it("stops reading an undeclared body once it passes the bound", async () => {
    const server = endless(64 * 1024 * 1024);
    const port = await listen(server.listener);
    const res = await fetch(`http://127.0.0.1:${port}/`);
    await expect(readResponseBody(res, 1024 * 1024)).rejects.toBeInstanceOf(BodyTooLargeError);
    await new Promise((r) => setTimeout(r, 200));
    // Socket buffers hold a few MiB at most: the server could not write its 64 MiB.
    expect(server.written()).toBeLessThan(16 * 1024 * 1024);
  });

  it("an empty body is the empty string", async () => {
    const port = await listen((req, res) => {
      req.resume();
      res.writeHead(204).end();
    });
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(await readResponseBody(res, 10)).toBe("");
  });
});

describe("LegacyHttpLink with an answer over its message bound", () => {
  it("answers the request with an error instead of buffering the answer, and stays usable", async () => {
    const server = endless(64 * 1024 * 1024);
    const port = await listen(server.listener);
    const received: string[] = [];
    const lost: string[] = [];
    const link = new LegacyHttpLink({
      target: () => Promise.resolve({ host: "127.0.0.1", port }),
      receive: (line) => received.push(line),
      lost: (reason) => lost.push(reason),
      maxMessageBytes: 1024 * 1024,
    });
    try {
      expect(link.send({ jsonrpc: "2.0", id: 7, method: "tools/list", params: {} })).toBe(true);
      await expect.poll(() => received.length, { timeout: 10_000 }).toBe(1);
      const answer = JSON.parse(received[0]!) as { id: number; error?: { message: string } };
      expect(answer.id).toBe(7);
      expect(answer.error?.message).toMatch(/held no response/);
      expect(lost).toEqual([]);
      expect(link.closed).toBe(false);
      await new Promise((r) => setTimeout(r, 200));
      expect(server.written()).toBeLessThan(16 * 1024 * 1024);
    } finally {
      link.close();
    }
  });
});
