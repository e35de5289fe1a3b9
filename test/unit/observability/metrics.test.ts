import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import {
  BLOCKED_REASONS,
  CONTAINER_STATES,
  createMetrics,
  DOCKER_DURATION_BUCKETS,
  setGaugeSnapshot,
} from "../../../src/observability/metrics.js";
import { promtool, skipPromtool } from "./promtool.js";

const CONTRACT_NAMES = [
  "mcp_portal_reconcile_total",
  "mcp_portal_reconcile_duration_seconds",
  "mcp_portal_workqueue_depth",
  "mcp_portal_workqueue_adds_total",
  "mcp_portal_workqueue_retries_total",
  "mcp_portal_workqueue_queue_duration_seconds",
  "mcp_portal_docker_operations_total",
  "mcp_portal_docker_operation_duration_seconds",
  "mcp_portal_managed_containers",
  "mcp_portal_desired_servers",
  "mcp_portal_drift_corrections_total",
  "mcp_portal_invalid_files",
  "mcp_portal_port_pool_allocated",
  "mcp_portal_port_pool_capacity",
  "mcp_portal_subnet_pool_allocated",
  "mcp_portal_subnet_pool_capacity",
  "mcp_portal_last_resync_timestamp_seconds",
  "mcp_portal_build_info",
];

function exercise(): Registry {
  const m = createMetrics(new Registry(), { version: "1.2.3" });
  m.reconcileTotal.inc({ result: "success" });
  m.reconcileDurationSeconds.observe(0.2);
  m.workqueueDepth.set(3);
  m.workqueueAddsTotal.inc();
  m.workqueueRetriesTotal.inc();
  m.workqueueQueueDurationSeconds.observe(0.01);
  m.dockerOperationsTotal.inc({ operation: "container_create", result: "success" });
  m.dockerOperationDurationSeconds.observe({ operation: "container_create" }, 0.05);
  m.managedContainers.set({ state: "running" }, 2);
  m.desiredServers.set(2);
  m.driftCorrectionsTotal.inc({ kind: "stopped_container" });
  m.invalidFiles.set(0);
  m.portPoolAllocated.set(100);
  m.portPoolCapacity.set(10000);
  m.subnetPoolAllocated.set(3);
  m.subnetPoolCapacity.set(2048);
  m.lastResyncTimestampSeconds.set(Date.now() / 1000);
  m.users.set({ phase: "Ready" }, 1);
  m.blockedServers.set({ reason: "MissingSecret" }, 1);
  m.dockerUp.set(1);
  m.dockerEventsReconnectsTotal.inc();
  m.auditWriteErrorsTotal.inc();
  return m.registry;
}

describe("createMetrics", () => {
  it("registers every contract metric on the given registry, not the global one", async () => {
    const registry = new Registry();
    createMetrics(registry);
    const names = (await registry.getMetricsAsJSON()).map((metric) => metric.name);
    for (const name of CONTRACT_NAMES) expect(names).toContain(name);
    expect(names).toContain("process_cpu_user_seconds_total");
    expect(names).toContain("nodejs_eventloop_lag_seconds");
  });

  it("creates independent registries (no module singletons)", async () => {
    const a = createMetrics(undefined, { defaultMetrics: false });
    const b = createMetrics(undefined, { defaultMetrics: false });
    a.workqueueAddsTotal.inc(5);
    expect(a.registry).not.toBe(b.registry);
    expect(await b.registry.getSingleMetricAsString("mcp_portal_workqueue_adds_total")).toContain(
      "mcp_portal_workqueue_adds_total 0",
    );
  });

  it("publishes build_info = 1 with the version and zero series for every bounded label value", async () => {
    const { registry } = createMetrics(new Registry(), { version: "9.9.9", defaultMetrics: false });
    const text = await registry.metrics();
    expect(text).toContain('mcp_portal_build_info{version="9.9.9"} 1');
    expect(text).toContain('mcp_portal_reconcile_total{result="error"} 0');
    expect(text).toContain('mcp_portal_reconcile_total{result="blocked"} 0');
    for (const reason of BLOCKED_REASONS)
      expect(text).toContain(`mcp_portal_blocked_servers{reason="${reason}"} 0`);
    expect(text).toContain('mcp_portal_users{phase="NotReady"} 0');
  });

  it("uses Docker-sized buckets from 5 ms to 60 s", async () => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    m.dockerOperationDurationSeconds.observe({ operation: "image_pull" }, 42);
    const text = await m.registry.getSingleMetricAsString("mcp_portal_docker_operation_duration_seconds");
    expect(DOCKER_DURATION_BUCKETS[0]).toBe(0.005);
    expect(DOCKER_DURATION_BUCKETS.at(-1)).toBe(60);
    expect(text).toContain('le="0.005",operation="image_pull"} 0');
    expect(text).toContain('le="60",operation="image_pull"} 1');
  });

  it("has a meaningful help text on every metric", async () => {
    const json = await createMetrics(new Registry(), { defaultMetrics: false }).registry.getMetricsAsJSON();
    for (const metric of json) expect(metric.help.length, metric.name).toBeGreaterThan(20);
  });

  it("setGaugeSnapshot zeroes known label values missing from the snapshot", async () => {
    const m = createMetrics(new Registry(), { defaultMetrics: false });
    setGaugeSnapshot(m.managedContainers, "state", CONTAINER_STATES, { running: 3, exited: 1 });
    setGaugeSnapshot(m.managedContainers, "state", CONTAINER_STATES, { running: 2 });
    const text = await m.registry.getSingleMetricAsString("mcp_portal_managed_containers");
    expect(text).toContain('mcp_portal_managed_containers{state="running"} 2');
    expect(text).toContain('mcp_portal_managed_containers{state="exited"} 0');
  });

  it.skipIf(skipPromtool)("passes promtool check metrics cleanly", async () => {
    const result = promtool(["check", "metrics"], await exercise().metrics());
    expect(result.output).toBe("");
    expect(result.status).toBe(0);
  });
});
