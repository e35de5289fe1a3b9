// A fake stdio server for the multiplexer: records every line the gateway writes, answers on demand.
import type { JsonRpcMessage, JsonRpcRequest } from "../../../src/gateway/jsonrpc.js";
import {
  type MessageSink,
  StdioMultiplexer,
  type StdioMuxOptions,
  type UpstreamLink,
} from "../../../src/gateway/stdio-mux.js";
import { FakeClock, settle } from "../../helpers/fake-clock.js";

export const INIT_RESULT = {
  protocolVersion: "2025-06-18",
  capabilities: { tools: { listChanged: true }, resources: { subscribe: true } },
  serverInfo: { name: "fake", version: "1" },
};

export class FakeServer implements UpstreamLink {
  /** Everything the gateway wrote, parsed (each send is one line). */
  readonly received: JsonRpcMessage[] = [];
  accept = true;

  send(message: JsonRpcMessage): boolean {
    if (!this.accept) return false;
    // Serialised and parsed like the real line protocol, so nothing shares object identity.
    this.received.push(JSON.parse(JSON.stringify(message)) as JsonRpcMessage);
    return true;
  }

  requests(method?: string): JsonRpcRequest[] {
    return this.received.filter(
      (m): m is JsonRpcRequest => "method" in m && "id" in m && (method === undefined || m.method === method),
    );
  }

  notifications(method?: string): JsonRpcMessage[] {
    return this.received.filter(
      (m) => "method" in m && !("id" in m) && (method === undefined || m.method === method),
    );
  }

  last(method: string): JsonRpcRequest {
    const found = this.requests(method).at(-1);
    if (!found) throw new Error(`the server never got ${method}`);
    return found;
  }
}

export class RecordingSink implements MessageSink {
  readonly messages: JsonRpcMessage[] = [];
  open = true;

  send(message: JsonRpcMessage): void {
    this.messages.push(message);
  }
}

export interface Harness {
  clock: FakeClock;
  mux: StdioMultiplexer;
  server: FakeServer;
  /** The server answers the gateway's pending initialize. */
  initialize(server?: FakeServer): Promise<void>;
  reply(id: number | string, result: unknown): void;
}

export async function harness(options: Partial<StdioMuxOptions> = {}): Promise<Harness> {
  const clock = new FakeClock();
  let sessions = 0;
  const mux = new StdioMultiplexer({
    clock,
    serverUserId: "alice",
    clientInfo: { name: "gateway-test", version: "0" },
    newSessionId: () => `session-${++sessions}`,
    readyWaitMs: 5_000,
    ...options,
  });
  const server = new FakeServer();
  const h: Harness = {
    clock,
    mux,
    server,
    async initialize(target = server) {
      const init = target.last("initialize");
      mux.receive(JSON.stringify({ jsonrpc: "2.0", id: init.id, result: INIT_RESULT }));
      await settle();
    },
    reply(id, result) {
      mux.receive(JSON.stringify({ jsonrpc: "2.0", id, result }));
    },
  };
  mux.connect(server);
  await settle();
  return h;
}

export function initializeRequest(
  id: number | string,
  capabilities: Record<string, unknown> = {},
  version = "2025-06-18",
): JsonRpcRequest {
  return {
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion: version, capabilities, clientInfo: { name: "client", version: "1" } },
  };
}
