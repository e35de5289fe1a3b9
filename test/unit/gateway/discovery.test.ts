import { describe, expect, it } from "vitest";
import type { ActualContainer } from "../../../src/docker/runtime.js";
import { serverTargets } from "../../../src/gateway/discovery.js";
import { DEFAULT_HEALTH_POLICY } from "../../../src/gateway/health.js";
import { LABELS } from "../../../src/labels.js";

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
