import { describe, expect, it } from "vitest";
import { type CloseReason, type EventSink, LiveHub } from "../../../src/api/live/live-hub.js";
import { EventBus, type PortalEvent } from "../../../src/events/event-bus.js";
import { createLogger } from "../../../src/observability/logger.js";

function sink(
  overrides: Partial<EventSink> = {},
): EventSink & { got: PortalEvent[]; closed: string[]; beats: number } {
  const state = { got: [] as PortalEvent[], closed: [] as string[], beats: 0 };
  return Object.assign(state, {
    kind: "sse" as const,
    actor: "test",
    send: (event: PortalEvent) => void state.got.push(event),
    heartbeat: () => void state.beats++,
    buffered: () => 0,
    close: (reason: CloseReason) => void state.closed.push(reason),
    ...overrides,
  });
}

const ADMIN = { kind: "admin" } as const;
const token = (tokenId: string) => ({ kind: "token", tokenId }) as const;
const OPTIONS = {
  maxBufferedBytes: 100,
  heartbeatMs: 60_000,
  recheckMs: 60_000,
  validTokens: () => Promise.resolve(() => true),
};

const event = (userId: string): PortalEvent => ({
  event: "RESOURCE_USAGE_UPDATE",
  data: {
    user_id: userId,
    resources: { containers: 1, memory_mb: 1, cpu_shares: 1, ports_used: 1 },
    limits: { max_containers: 1, max_memory_mb: 1, max_cpu_shares: 1, max_ports: 1 },
    timestamp: "2024-01-01T00:00:00.000Z",
  },
});

describe("LiveHub", () => {
  it("filters per connection, subscribes only while someone listens, and closes everything on shutdown", () => {
    const bus = new EventBus();
    const hub = new LiveHub(bus, createLogger({ level: "silent" }), OPTIONS);
    const a = sink();
    const b = sink();
    const forgetA = hub.open(a, (e) => e.data.user_id === "a", token("t1"));
    hub.open(b, () => true, ADMIN);
    expect(bus.listenerCount).toBe(1);
    bus.publish(event("a"));
    bus.publish(event("b"));
    expect(a.got.map((e) => e.data.user_id)).toEqual(["a"]);
    expect(b.got.map((e) => e.data.user_id)).toEqual(["a", "b"]);
    forgetA();
    hub.closeAll();
    expect(b.closed).toEqual(["shutdown"]);
    expect(a.closed).toEqual([]);
    expect(hub.size).toBe(0);
    expect(bus.listenerCount).toBe(0);
  });

  it("drops a slow connection or one whose write throws, and the others still get the event", () => {
    const bus = new EventBus();
    const lines: string[] = [];
    const logger = createLogger({ level: "info", destination: { write: (l: string) => void lines.push(l) } });
    const hub = new LiveHub(bus, logger, OPTIONS);
    const slow = sink({ buffered: () => 101 });
    const broken = sink({
      send: () => {
        throw new Error("EPIPE");
      },
    });
    const fine = sink();
    hub.open(slow, () => true, ADMIN);
    hub.open(broken, () => true, ADMIN);
    hub.open(fine, () => true, ADMIN);
    bus.publish(event("a"));
    expect(fine.got).toHaveLength(1);
    expect(slow.closed).toEqual(["slow"]);
    expect(broken.closed).toEqual(["slow"]);
    expect(hub.size).toBe(1);
    expect(hub.dropped).toBe(1);
    expect(lines.join("")).toMatch(/"buffered_bytes":101.*"dropped_total":1.*live-event client too slow/);
    hub.closeAll();
  });

  it("closes the connections of tokens that are no longer valid at the next recheck, never the admin's", async () => {
    const bus = new EventBus();
    let valid = new Set(["t1", "t2"]);
    const hub = new LiveHub(bus, createLogger({ level: "silent" }), {
      ...OPTIONS,
      recheckMs: 10,
      validTokens: () => Promise.resolve((id: string) => valid.has(id)),
    });
    const [one, two, twoAgain, admin] = [sink(), sink(), sink(), sink()];
    hub.open(one, () => true, token("t1"));
    hub.open(two, () => true, token("t2"));
    hub.open(twoAgain, () => true, token("t2"));
    hub.open(admin, () => true, ADMIN);
    expect(hub.countFor(token("t2"))).toBe(2);
    expect(hub.countFor(ADMIN)).toBe(1);
    valid = new Set(["t1"]);
    await new Promise((r) => setTimeout(r, 50));
    expect(two.closed).toEqual(["revoked"]);
    expect(twoAgain.closed).toEqual(["revoked"]);
    expect(one.closed).toEqual([]);
    expect(admin.closed).toEqual([]);
    expect(hub.countFor(token("t2"))).toBe(0);
    bus.publish(event("a"));
    expect(two.got).toEqual([]);
    expect(one.got).toHaveLength(1);
    hub.closeAll();
  });
});
