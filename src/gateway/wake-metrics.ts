import { Counter, Histogram, type Registry } from "prom-client";

/** `result` of mcp_portal_gateway_wakes_total (README, "Idle servers"). */
export const WAKE_RESULTS = ["success", "refused", "timeout", "error"] as const;
export type WakeResult = (typeof WAKE_RESULTS)[number];

const WAKE_DURATION_BUCKETS = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60];

export interface WakeMetrics {
  readonly wakesTotal: Counter<"result">;
  readonly wakeDurationSeconds: Histogram;
}

/** The gateway's wake metrics, on its registry (kept apart from metrics.ts: one concern per module). */
export function createWakeMetrics(registry: Registry): WakeMetrics {
  const registers = [registry];
  const metrics: WakeMetrics = {
    wakesTotal: new Counter({
      name: "mcp_portal_gateway_wakes_total",
      help: "Wakes of idle servers the gateway asked the controller for (concurrent requests share one), by result.",
      labelNames: ["result"],
      registers,
    }),
    wakeDurationSeconds: new Histogram({
      name: "mcp_portal_gateway_wake_duration_seconds",
      help: "From the first request to an idle server until it could be served again (successful wakes).",
      buckets: WAKE_DURATION_BUCKETS,
      registers,
    }),
  };
  for (const result of WAKE_RESULTS) metrics.wakesTotal.inc({ result }, 0);
  return metrics;
}
