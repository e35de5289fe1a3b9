// The gateway's chain of discovery updates: one update that fails to apply must not stall every later one.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import type { ContainerAttacher } from "../../../src/docker/attach.js";
import type { ActualContainer, ContainerRuntime, RuntimeEvent } from "../../../src/docker/runtime.js";
import { loadGatewayConfig } from "../../../src/gateway/config.js";
import type { Upstream } from "../../../src/gateway/endpoint.js";
import { Gateway } from "../../../src/gateway/gateway.js";
import { createGatewayMetrics } from "../../../src/gateway/metrics.js";
import { LABELS } from "../../../src/labels.js";
import { freePort } from "../../helpers/net.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { capturedLogger } from "../../helpers/logs.js";

/** Lists what the test says; its event stream stays quiet until aborted. Nothing else is used by the gateway. */
class ListingRuntime {
  containers: ActualContainer[] = [];
  listContainers(): Promise<ActualContainer[]> {
    return Promise.resolve(this.containers);
  }
  events(_filter: unknown, signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: () =>
          new Promise<IteratorResult<RuntimeEvent>>((resolve) =>
            signal.addEventListener("abort", () => resolve({ done: true, value: undefined }), { once: true }),
          ),
      }),
    };
  }
}

const quietUpstream = (): Upstream => ({
  handler: { handle: (_req, res) => void res.writeHead(204).end() },
  update: () => undefined,
  probe: () => Promise.resolve(),
  close: () => Promise.resolve(),
});

describe("Gateway: applying discovery updates", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("logs and counts an update that failed to apply, and applies the next ones", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "gw-apply-"));
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    const { logger, logs } = capturedLogger("info");
    const metrics = createGatewayMetrics(new Registry(), { defaultMetrics: false });
    const runtime = new ListingRuntime();
    const container = (serverId: string, hostPort: number): ActualContainer => ({
      id: `c-${serverId}`,
      name: `mcp-alice-${serverId}`,
      image: "img",
      state: "running",
      created: 1,
      networkIds: [],
      labels: {
        [LABELS.userId]: "alice",
        [LABELS.serverId]: serverId,
        [LABELS.hostPort]: String(hostPort),
        [LABELS.transport]: "stdio",
      },
    });
    runtime.containers = [container("broken", await freePort())];
    let failNext = true;
    const gateway = new Gateway({
      config: loadGatewayConfig({ MCP_PORTAL_STATE_DIR: stateDir, MCP_PORTAL_INSTALLATION: "apply-test" }),
      runtime: runtime as unknown as ContainerRuntime,
      attacher: {} as ContainerAttacher,
      authenticate: () => Promise.resolve({ ok: true, caller: { kind: "admin" } }),
      clock: new FakeClock(),
      logger,
      metrics,
      createUpstream: () => {
        if (failNext) {
          failNext = false;
          throw new Error("upstream construction failed");
        }
        return quietUpstream();
      },
    });
    cleanups.push(() => gateway.stop());
    await gateway.start();
    expect(gateway.endpoints.size).toBe(0);
    expect(logs.join("")).toContain("applying discovered servers failed");
    expect(await metrics.registry.metrics()).toMatch(/mcp_portal_gateway_apply_failures_total 1/);
    // The next update (a re-list: events, the resync, or here by hand) is applied.
    runtime.containers.push(container("time", await freePort()));
    await gateway.resync();
    expect([...gateway.endpoints.keys()].sort()).toEqual(["alice/broken", "alice/time"]);
  });
});
