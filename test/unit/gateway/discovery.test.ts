import { afterEach, describe, expect, it } from "vitest";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import type { ActualContainer, EventFilter, RuntimeEvent } from "../../../src/docker/runtime.js";
import { Discovery, serverTargets } from "../../../src/gateway/discovery.js";
import type { ServerTarget } from "../../../src/gateway/endpoint.js";
import { DEFAULT_HEALTH_POLICY } from "../../../src/gateway/health.js";
import { LABELS, MANAGED_BY } from "../../../src/labels.js";
import { systemClock } from "../../../src/util/clock.js";
import { waitFor } from "../../helpers/daemon.js";
import { capturedLogger } from "../../helpers/logs.js";

function container(
  id: string,
  labels: Record<string, string>,
  state: ActualContainer["state"] = "running",
  created = 1,
): ActualContainer {
  return {
    id,
    name: `mcp-${id}`,
    image: "img",
    state,
    created,
    networkIds: [],
    labels: {
      [LABELS.userId]: "alice",
      [LABELS.serverId]: "time",
      [LABELS.hostPort]: "20001",
      [LABELS.transport]: "stdio",
      ...labels,
    },
  };
}

describe("serverTargets", () => {
  it("reads user, server, host port, transport, container port and probe policy from labels", () => {
    const targets = serverTargets([
      container("c1", {
        [LABELS.transport]: "streamable-http",
        [LABELS.containerPort]: "8080",
        [LABELS.healthCheck]:
          '{"interval_seconds":2,"retries":1,"start_period_seconds":0,"timeout_seconds":1}',
      }),
    ]);
    expect(targets.get("alice/time")).toEqual({
      key: "alice/time",
      userId: "alice",
      serverId: "time",
      hostPort: 20001,
      transport: "streamable-http",
      containerId: "c1",
      state: "running",
      policy: { intervalMs: 2000, timeoutMs: 1000, retries: 1, startPeriodMs: 0 },
      containerPort: 8080,
    });
    expect(serverTargets([container("c2", {})]).get("alice/time")).toMatchObject({
      policy: DEFAULT_HEALTH_POLICY,
      containerPort: undefined,
    });
  });

  it("prefers the running container, the newest among equals (a replace runs two briefly)", () => {
    const targets = serverTargets([
      container("old", {}, "running", 10),
      container("new", {}, "running", 20),
      container("next", {}, "created", 30),
      container("dead", {}, "exited", 40),
    ]);
    expect(targets.get("alice/time")?.containerId).toBe("new");
    expect(
      serverTargets([container("a", {}, "exited", 1), container("b", {}, "exited", 2)]).get("alice/time"),
    ).toMatchObject({
      containerId: "b",
      state: "exited",
    });
  });

  it("skips containers whose labels cannot be trusted", () => {
    const bad = [
      container("1", { [LABELS.userId]: "../x" }),
      container("2", { [LABELS.serverId]: "" }),
      container("3", { [LABELS.hostPort]: "70000" }),
      container("4", { [LABELS.hostPort]: "abc" }),
      container("5", { [LABELS.transport]: "websocket" }),
    ];
    expect(serverTargets(bad).size).toBe(0);
  });
});

/** An engine whose event subscription takes effect only when the test says so (as a slow `/events` answer). */
class LateSubscriptionRuntime extends MemoryRuntime {
  private release: () => void = () => undefined;
  private readonly subscribable = new Promise<void>((resolve) => (this.release = resolve));

  subscribe(): void {
    this.release();
  }

  override events(
    filter: EventFilter,
    signal: AbortSignal,
    onSubscribed?: () => void,
  ): AsyncIterable<RuntimeEvent> {
    const gate = this.subscribable;
    const inner = (f: EventFilter, s: AbortSignal, cb?: () => void) => super.events(f, s, cb);
    return {
      async *[Symbol.asyncIterator]() {
        await gate;
        yield* inner(filter, signal, onSubscribed);
      },
    };
  }
}

describe("Discovery", () => {
  const INSTALLATION = "disc-test";
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  function serverLabels(serverId: string): Record<string, string> {
    return {
      [LABELS.managedBy]: MANAGED_BY,
      [LABELS.installation]: INSTALLATION,
      [LABELS.userId]: "alice",
      [LABELS.serverId]: serverId,
      [LABELS.hostPort]: "20001",
      [LABELS.transport]: "stdio",
    };
  }

  async function started(runtime: MemoryRuntime) {
    let latest = new Map<string, ServerTarget>();
    let lists = 0;
    const discovery = new Discovery({
      runtime,
      installation: INSTALLATION,
      clock: systemClock,
      logger: capturedLogger("silent").logger,
      // Long enough that no test here is rescued by the periodic list.
      resyncMs: 60_000,
      debounceMs: 10,
      onTargets: (targets) => {
        lists++;
        latest = targets;
      },
    });
    const starting = discovery.start();
    stops.push(async () => {
      await starting.catch(() => undefined);
      await discovery.stop();
    });
    await starting;
    return { state: (key: string) => latest.get(key)?.state, lists: () => lists };
  }

  it("lists once at start when the engine confirms the subscription at once, then follows events", async () => {
    const runtime = new MemoryRuntime();
    const id = runtime.addForeignContainer("mcp-alice-time", serverLabels("time"));
    const view = await started(runtime);
    expect(view.state("alice/time")).toBe("running");
    expect(runtime.callCount("container_list")).toBe(1);
    runtime.killContainer(id);
    await waitFor("the die event's list", () => view.state("alice/time") === "exited");
  });

  it("lists again once the subscription exists: a change between the start list and it is not lost", async () => {
    const runtime = new LateSubscriptionRuntime();
    const id = runtime.addForeignContainer("mcp-alice-time", serverLabels("time"));
    const view = await started(runtime);
    expect(view.state("alice/time")).toBe("running");
    // The engine has no subscriber yet: this die event reaches nobody.
    runtime.killContainer(id);
    await new Promise((r) => setTimeout(r, 50));
    expect(view.state("alice/time")).toBe("running");
    runtime.subscribe();
    await waitFor("a list after the subscription", () => view.state("alice/time") === "exited", 5_000);
  });

  it("after the event stream dropped, lists once it is subscribed again and sees what changed meanwhile", async () => {
    const runtime = new MemoryRuntime();
    const id = runtime.addForeignContainer("mcp-alice-time", serverLabels("time"));
    const view = await started(runtime);
    runtime.stopEngine();
    // While the engine is down (stream broken, lists failing) the container dies: no one hears its event.
    runtime.killContainer(id);
    await new Promise((r) => setTimeout(r, 50));
    expect(view.state("alice/time")).toBe("running");
    const listsBefore = view.lists();
    runtime.startEngine();
    await waitFor("a list after resubscribing", () => view.state("alice/time") === "exited", 10_000);
    expect(view.lists()).toBeGreaterThan(listsBefore);
  });
});
