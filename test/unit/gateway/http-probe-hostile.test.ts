// The gateway's probes against hostile HTTP servers (real loopback servers made here): a redirect to another
// service on the host, answers far over the probe cap, and error texts meant to land in the operator's status.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  MAX_PROBE_RESPONSE_BYTES,
  SseTransportProbe,
  StreamableHttpProbe,
} from "../../../src/gateway/http-probe.js";

const CLIENT = { name: "gateway-probe-test", version: "0" };
const REMOTE = "REMOTE-TEXT-7f3a";

describe("MCP probes of hostile HTTP servers", () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  async function listen(handler: http.RequestListener): Promise<number> {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  }

  const streamable = (port: number) =>
    new StreamableHttpProbe({
      target: () => Promise.resolve({ host: "127.0.0.1", port }),
      clientInfo: CLIENT,
    });
  const legacy = (port: number) =>
    new SseTransportProbe({ target: () => Promise.resolve({ host: "127.0.0.1", port }), clientInfo: CLIENT });

  /** The probe's failure message (the text that goes to health.json and status). */
  const failure = async (probe: Promise<void>): Promise<string> => {
    try {
      await probe;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
    throw new Error("the probe succeeded");
  };

  it("never follows a redirect: a 3xx is a failed probe and the other service sees nothing", async () => {
    const hits: string[] = [];
    const internal = await listen((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { protocolVersion: "2025-06-18" } }));
    });
    const location = `http://127.0.0.1:${internal}/admin/${REMOTE}`;
    for (const status of [301, 302, 303, 307, 308]) {
      const evil = await listen((_req, res) => res.writeHead(status, { location }).end(REMOTE));
      const message = await failure(streamable(evil).probe(2000));
      expect(message).toBe(`initialize: HTTP ${status} (redirects are not followed)`);
      const sse = await failure(legacy(evil).probe(2000));
      expect(sse).toBe(`GET /sse: HTTP ${status} (redirects are not followed)`);
    }
    expect(hits).toEqual([]);
  });

  it("does not follow a redirect on the POST of the legacy SSE transport either", async () => {
    const hits: string[] = [];
    const internal = await listen((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.writeHead(202).end();
    });
    const evil = await listen((req, res) => {
      if (req.method === "GET") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("event: endpoint\ndata: /messages\n\n");
        return;
      }
      res.writeHead(307, { location: `http://127.0.0.1:${internal}/x` }).end();
    });
    expect(await failure(legacy(evil).probe(2000))).toBe("initialize: HTTP 307 (redirects are not followed)");
    expect(hits).toEqual([]);
  });

  /** A server that streams `total` bytes as its answer, honouring backpressure; `written()` says how far it got. */
  async function bigAnswer(contentType: string, total: number, prefix = "") {
    let written = 0;
    const port = await listen((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": contentType });
      const chunk = Buffer.alloc(64 * 1024, contentType === "text/event-stream" ? "x" : " ");
      if (prefix) res.write(prefix);
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end("{}");
      };
      res.on("close", () => (written = Math.min(written, total)));
      pump();
    });
    return { port, written: () => written };
  }

  it("reads at most the documented cap of a JSON answer, without buffering the rest", async () => {
    const total = 64 * 1024 * 1024;
    const server = await bigAnswer("application/json", total);
    const message = await failure(streamable(server.port).probe(20_000));
    expect(message).toBe(`initialize: answer over ${MAX_PROBE_RESPONSE_BYTES} bytes`);
    // The gateway stopped reading: the server could not write its 64 MiB (socket buffers hold a few MiB at most).
    await new Promise((r) => setTimeout(r, 200));
    expect(server.written()).toBeLessThan(16 * 1024 * 1024);
  });

  it("refuses a declared Content-Length over the cap before reading the body", async () => {
    const port = await listen((req, res) => {
      req.resume();
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": String(MAX_PROBE_RESPONSE_BYTES + 1),
      });
      res.write(" ");
    });
    expect(await failure(streamable(port).probe(2000))).toBe(
      `initialize: answer over ${MAX_PROBE_RESPONSE_BYTES} bytes`,
    );
  });

  it("reads at most the cap of an event-stream answer (one endless event, or many unrelated ones)", async () => {
    const endless = await bigAnswer("text/event-stream", 64 * 1024 * 1024, "data: ");
    expect(await failure(streamable(endless.port).probe(20_000))).toBe(
      `initialize: answer over ${MAX_PROBE_RESPONSE_BYTES} bytes`,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(endless.written()).toBeLessThan(16 * 1024 * 1024);
    const legacyServer = await bigAnswer(
      "text/event-stream",
      64 * 1024 * 1024,
      "event: endpoint\ndata: /m\n\n",
    );
    expect(await failure(legacy(legacyServer.port).probe(20_000))).toBe(
      `initialize: answer over ${MAX_PROBE_RESPONSE_BYTES} bytes`,
    );
  });

  it("puts no remote text in its failure messages: a fixed vocabulary plus numbers", async () => {
    const answers: http.RequestListener[] = [
      // A JSON-RPC error whose message is the server's own text.
      (req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, error: { code: -32603, message: REMOTE } }));
      },
      // Not JSON at all (JSON.parse quotes the text it fails on).
      (req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "application/json" }).end(`${REMOTE} is not json`);
      },
      // An HTTP error with a body and a reason phrase.
      (req, res) => {
        req.resume();
        res.writeHead(500, REMOTE, { "x-detail": REMOTE }).end(REMOTE);
      },
      // An initialize result without protocolVersion, with the remote text elsewhere.
      (req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { note: REMOTE } }));
      },
      // A response to another id only.
      (req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: REMOTE, result: {} }));
      },
    ];
    const messages: string[] = [];
    for (const answer of answers) messages.push(await failure(streamable(await listen(answer)).probe(2000)));
    expect(messages).toEqual([
      "initialize: JSON-RPC error -32603",
      "initialize: answer is not JSON",
      "initialize: HTTP 500",
      "initialize: the initialize result has no protocolVersion",
      "initialize: no JSON-RPC response to the request",
    ]);
    // The legacy transport: an endpoint event naming another origin, and a JSON-RPC error on the stream.
    const foreign = await listen((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`event: endpoint\ndata: http://${REMOTE}.example/messages\n\n`);
    });
    expect(await failure(legacy(foreign).probe(2000))).toBe(
      "endpoint: the endpoint event names another origin",
    );
    let stream: http.ServerResponse | undefined;
    const erring = await listen((req, res) => {
      if (req.method === "GET") {
        stream = res;
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("event: endpoint\ndata: /messages\n\n");
        return;
      }
      req.resume();
      res.writeHead(202).end();
      const error = { jsonrpc: "2.0", id: 1, error: { code: -32000, message: REMOTE } };
      stream?.write(`event: message\ndata: ${JSON.stringify(error)}\n\n`);
    });
    expect(await failure(legacy(erring).probe(2000))).toBe("initialize: JSON-RPC error -32000");
    for (const message of messages) expect(message).not.toContain(REMOTE);
  });
});
