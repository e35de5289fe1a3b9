import { z } from "zod";

/*
 * MCP-level health of one server as the gateway sees it (pure: every transition takes `now`).
 * Starting: no probe has passed yet on this container. Ready: initialize (then initialized and ping) passed.
 * Unhealthy: `retries` probes in a row failed (or, while Starting, the start period plus `retries` intervals
 * passed without a success), or the container is not running. A success makes any state Ready.
 */

export type HealthStateName = "Starting" | "Ready" | "Unhealthy";

export interface HealthPolicy {
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface HealthState {
  containerId: string;
  state: HealthStateName;
  /** When `state` last changed (ms). */
  since: number;
  /** When this container's probing began (ms), for the start period. */
  startedAt: number;
  lastProbeAt: number | undefined;
  consecutiveFailures: number;
  message: string;
}

/** The catalog's defaults when the container has no `mcp.portal.health_check` label. */
export const DEFAULT_HEALTH_POLICY: HealthPolicy = {
  intervalMs: 10_000,
  timeoutMs: 5_000,
  retries: 3,
  startPeriodMs: 0,
};

/** While Starting, probes come this often at most, so a server is Ready soon after it listens. */
export const STARTING_PROBE_INTERVAL_MS = 1_000;

const HealthLabel = z.object({
  interval_seconds: z.number().positive().max(86_400).optional(),
  timeout_seconds: z.number().positive().max(3_600).optional(),
  retries: z.number().int().min(0).max(1_000).optional(),
  start_period_seconds: z.number().min(0).max(86_400).optional(),
});

/** The policy of a container's `mcp.portal.health_check` label (JSON); defaults for absent or invalid labels. */
export function parseHealthLabel(value: string | undefined): HealthPolicy {
  if (value === undefined || value === "") return DEFAULT_HEALTH_POLICY;
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    return DEFAULT_HEALTH_POLICY;
  }
  const parsed = HealthLabel.safeParse(raw);
  if (!parsed.success) return DEFAULT_HEALTH_POLICY;
  const d = DEFAULT_HEALTH_POLICY;
  return {
    intervalMs:
      parsed.data.interval_seconds !== undefined ? parsed.data.interval_seconds * 1000 : d.intervalMs,
    timeoutMs: parsed.data.timeout_seconds !== undefined ? parsed.data.timeout_seconds * 1000 : d.timeoutMs,
    retries: parsed.data.retries ?? d.retries,
    startPeriodMs:
      parsed.data.start_period_seconds !== undefined
        ? parsed.data.start_period_seconds * 1000
        : d.startPeriodMs,
  };
}

export function startingHealth(
  containerId: string,
  now: number,
  message = "waiting for the first MCP probe",
): HealthState {
  return {
    containerId,
    state: "Starting",
    since: now,
    startedAt: now,
    lastProbeAt: undefined,
    consecutiveFailures: 0,
    message,
  };
}

function moveTo(
  health: HealthState,
  state: HealthStateName,
  now: number,
): Pick<HealthState, "state" | "since"> {
  return { state, since: health.state === state ? health.since : now };
}

export function afterProbeSuccess(health: HealthState, now: number): HealthState {
  return {
    ...health,
    ...moveTo(health, "Ready", now),
    lastProbeAt: now,
    consecutiveFailures: 0,
    message: "MCP initialize and ping succeeded",
  };
}

export function afterProbeFailure(
  health: HealthState,
  policy: HealthPolicy,
  now: number,
  reason: string,
): HealthState {
  const failures = health.consecutiveFailures + 1;
  const retries = Math.max(1, policy.retries);
  let state: HealthStateName;
  if (health.state === "Starting") {
    const deadline = health.startedAt + policy.startPeriodMs + policy.intervalMs * retries;
    state = now >= deadline ? "Unhealthy" : "Starting";
  } else {
    state = failures >= retries ? "Unhealthy" : health.state;
  }
  return {
    ...health,
    ...moveTo(health, state, now),
    lastProbeAt: now,
    consecutiveFailures: failures,
    message: `MCP probe failed (${failures} in a row): ${reason}`,
  };
}

/** The container is not running (or the gateway cannot serve its port): Unhealthy at once, no retries. */
export function markUnavailable(health: HealthState, now: number, reason: string): HealthState {
  return { ...health, ...moveTo(health, "Unhealthy", now), message: reason };
}

/** Delay until the next probe. */
export function nextProbeDelay(health: HealthState, policy: HealthPolicy): number {
  return health.state === "Starting"
    ? Math.min(policy.intervalMs, STARTING_PROBE_INTERVAL_MS)
    : policy.intervalMs;
}
