// The Swarm gateway's pieces on loopback: the relay preamble (pure), the node side's relay server (only served
// ports, bytes unchanged), the entry's routes (pure), and the entry following a moved user to its new node.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type {
  ActualContainer,
  ActualNode,
  ContainerRuntime,
  RuntimeEvent,
} from "../../../src/docker/runtime.js";
import { nodeAddress } from "../../../src/docker/swarm-runtime.js";
import { EntryGateway, entryRoutes } from "../../../src/gateway/entry.js";
import {
  RELAY_PREAMBLE_MAX_BYTES,
  RelayServer,
  parseRelayPreamble,
  relayPreamble,
} from "../../../src/gateway/relay.js";
import { LABELS } from "../../../src/labels.js";
import { createLogger } from "../../../src/observability/logger.js";
import { freePort } from "../../helpers/net.js";

const logger = createLogger({ level: "silent" });
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A TCP server on host:port that answers every connection with `name:` and then echoes. */
async function echoServer(host: string, port: number, name: string): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.write(`${name}:`);
    socket.pipe(socket);
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
}

/** Connects, writes `send`, and collects what comes back until the other side closes or `ms` passed. */
async function exchange(host: string, port: number, send: string | Buffer, ms = 500): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const socket = net.connect(port, host, () => socket.write(send));
    socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
    socket.on("error", () => undefined);
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

async function relay(host: string, port: number, served: Set<number>): Promise<RelayServer> {
  const server = new RelayServer({ host, port, targetHost: host, served: () => served, logger });
  await server.listen();
  closers.push(() => server.close());
  return server;
}

describe("relay preamble", () => {
  it("reads the host port and keeps the bytes after it", () => {
    const result = parseRelayPreamble(Buffer.from(`${relayPreamble(20001)}POST /mcp`));
    expect(result).toEqual({ kind: "ok", hostPort: 20001, rest: Buffer.from("POST /mcp") });
  });

  it("waits for more, and refuses what is not a preamble", () => {
    expect(parseRelayPreamble(Buffer.from("MCP-PORTAL-RE")).kind).toBe("incomplete");
    expect(parseRelayPreamble(Buffer.from("GET / HTTP/1.1\r\n"))).toMatchObject({ kind: "invalid" });
    expect(parseRelayPreamble(Buffer.from("MCP-PORTAL-RELAY 0\n"))).toMatchObject({ reason: "bad port" });
    expect(parseRelayPreamble(Buffer.from("MCP-PORTAL-RELAY 65536\n"))).toMatchObject({ reason: "bad port" });
    expect(parseRelayPreamble(Buffer.from("MCP-PORTAL-RELAY 80 x\n"))).toMatchObject({ reason: "bad port" });
    expect(parseRelayPreamble(Buffer.alloc(RELAY_PREAMBLE_MAX_BYTES, 0x41))).toMatchObject({
      reason: "preamble too long",
    });
  });
});

describe("RelayServer", () => {
  it("forwards to a port it serves, bytes unchanged; closes on a port it does not serve or on garbage", async () => {
    const [target, other, relayPort] = [await freePort(), await freePort(), await freePort()];
    await echoServer("127.0.0.1", target, "target");
    await echoServer("127.0.0.1", other, "other");
    await relay("127.0.0.1", relayPort, new Set([target]));
    expect(await exchange("127.0.0.1", relayPort, `${relayPreamble(target)}hello`)).toBe("target:hello");
    expect(await exchange("127.0.0.1", relayPort, `${relayPreamble(other)}hello`)).toBe("");
    expect(await exchange("127.0.0.1", relayPort, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("");
  });
});

const node = (id: string, addr: string, extra: Partial<ActualNode> = {}): ActualNode => ({
  id,
  hostname: `host-${id}`,
  addr,
  state: "ready",
  availability: "active",
  role: "worker",
  ...extra,
});

const workload = (
  user: string,
  server: string,
  hostPort: number,
  extra: Partial<ActualContainer> = {},
): ActualContainer => ({
  id: `svc-${user}-${server}`,
  name: `mcp-${user}-${server}`,
  image: "x",
  state: "running",
  labels: {
    [LABELS.userId]: user,
    [LABELS.serverId]: server,
    [LABELS.hostPort]: String(hostPort),
  },
  networkIds: [],
  created: 0,
  ...extra,
});

describe("entryRoutes", () => {
  it("routes each port to the node of its placement, else of its task; skips what cannot be routed", () => {
    const nodes = [node("n1", "10.0.0.1"), node("n2", "10.0.0.2"), node("n3", "")];
    const routes = entryRoutes(
      [
        workload("alice", "a", 20001, { placement: "n2", node: "host-n1" }),
        workload("bob", "a", 20101, { node: "host-n1" }),
        workload("carol", "a", 20201, { placement: "n3" }),
        workload("dave", "a", 0, { placement: "n1" }),
        workload("../x", "a", 20301, { placement: "n1" }),
        workload("erin", "a", 20401),
      ],
      nodes,
    );
    expect([...routes]).toEqual([
      [20001, { key: "alice/a", nodeId: "n2", address: "10.0.0.2" }],
      [20101, { key: "bob/a", nodeId: "n1", address: "10.0.0.1" }],
    ]);
  });

  it("takes a manager's address from its manager endpoint when its status says 0.0.0.0", () => {
    expect(nodeAddress("10.0.0.5", "10.0.0.5:2377")).toBe("10.0.0.5");
    expect(nodeAddress("0.0.0.0", "10.0.0.5:2377")).toBe("10.0.0.5");
    expect(nodeAddress("0.0.0.0", "[fd00::5]:2377")).toBe("fd00::5");
    expect(nodeAddress(undefined, undefined)).toBe("");
  });
});

describe("EntryGateway", () => {
  it("forwards a user's port to the node it runs on, and follows it to its new node", async () => {
    const [hostPort, relayPort] = [await freePort(), await freePort()];
    // Two "nodes" on two loopback addresses, each with its relay and the user's server behind it.
    for (const [addr, name] of [
      ["127.0.0.2", "node2"],
      ["127.0.0.3", "node3"],
    ] as const) {
      await echoServer(addr, hostPort, name);
      await relay(addr, relayPort, new Set([hostPort]));
    }
    const nodes = [node("n2", "127.0.0.2"), node("n3", "127.0.0.3")];
    let workloads = [workload("alice", "a", hostPort, { placement: "n2" })];
    const runtime = {
      listContainers: () => Promise.resolve(workloads),
      listNodes: () => Promise.resolve(nodes),
      // No events: the test asks for each listing itself.
      events: (_filter: unknown, signal: AbortSignal): AsyncIterable<RuntimeEvent> => ({
        [Symbol.asyncIterator]: () => ({
          next: () =>
            new Promise<IteratorResult<RuntimeEvent>>((resolve) =>
              signal.addEventListener("abort", () => resolve({ done: true, value: undefined })),
            ),
        }),
      }),
    } as unknown as ContainerRuntime;
    const entry = new EntryGateway({
      runtime,
      installation: "unit",
      listenHost: "127.0.0.1",
      relayPort,
      pollMs: 60_000,
      logger,
    });
    await entry.start();
    closers.push(() => entry.stop());
    expect(await exchange("127.0.0.1", hostPort, "ping")).toBe("node2:ping");
    // A connection open to the old node (a client's keep-alive) is closed by the move.
    const open = net.connect(hostPort, "127.0.0.1");
    const greeted = new Promise((resolve) => open.once("data", resolve));
    const closed = new Promise((resolve) => open.once("close", resolve));
    open.on("error", () => undefined);
    await greeted;
    workloads = [workload("alice", "a", hostPort, { placement: "n3" })];
    await entry.refresh();
    await closed;
    expect(entry.routes().get(hostPort)?.nodeId).toBe("n3");
    expect(await exchange("127.0.0.1", hostPort, "ping")).toBe("node3:ping");
    // The user gone: the port is closed.
    workloads = [];
    await entry.refresh();
    expect(await exchange("127.0.0.1", hostPort, "ping")).toBe("");
  });
});
