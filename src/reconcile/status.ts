import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import type { Limits } from "../config.js";
import type { ResourceUsage } from "../desired/types.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import type { Problem } from "../validate/problem.js";

export type ServerPhase = "Running" | "Unhealthy" | "Pending" | "Blocked" | "Failed";
export type UserPhase = "Ready" | "Progressing" | "Degraded" | "Stalled" | "Suspended";

export interface ServerStatus {
  id: string;
  phase: ServerPhase;
  reason?: string;
  message?: string;
  container_id?: string;
  container_name?: string;
  host_port?: number;
  spec_hash?: string;
  image?: string;
  /** MCP-level health from the gateway's probes (absent when the gateway is off). */
  health?: "Starting" | "Ready" | "Unhealthy";
}

export interface Condition {
  type: "Ready" | "Degraded" | "Stalled";
  status: "True" | "False";
  reason: string;
  message: string;
  last_transition_time: string;
}

export interface ReconcileRecord {
  time: string;
  result: "success" | "error" | "blocked";
  mutations: number;
  duration_ms: number;
  summary: string;
}

/** `users/<id>/status.json` in the state dir: what the controller observed and did (DESIGN.md section 2). */
export interface UserStatus {
  api_version: "mcp-portal/v1";
  user_id: string;
  phase: UserPhase;
  /** Hash of the inputs this status was computed from. */
  observed_generation: string;
  network: { name: string; id?: string; subnet?: string } | null;
  port_block: { start: number; end: number } | null;
  servers: ServerStatus[];
  resources: { used: ResourceUsage; limits: Limits } | null;
  conditions: Condition[];
  errors: Problem[];
  last_reconciles: ReconcileRecord[];
}

export interface Observation {
  userId: string;
  generation: string;
  suspended: boolean;
  network: UserStatus["network"];
  portBlock: UserStatus["port_block"];
  servers: ServerStatus[];
  resources: UserStatus["resources"];
  errors: Problem[];
  /** Why the user as a whole cannot make progress, if it cannot. */
  stalled?: { reason: string; message: string };
  record: ReconcileRecord;
}

const HISTORY = 5;

/** Pure: the next status from the previous one, keeping condition transition times unless a status flips. */
export function nextStatus(previous: UserStatus | undefined, o: Observation, now: Date): UserStatus {
  const notRunning = o.servers.filter(
    (s) => s.phase !== "Running" || (s.health !== undefined && s.health !== "Ready"),
  );
  const ready = !o.stalled && o.errors.length === 0 && notRunning.length === 0;
  const degraded = o.servers.find(
    (s) =>
      s.phase === "Blocked" ||
      s.phase === "Failed" ||
      s.phase === "Unhealthy" ||
      s.reason === "ImagePullBackOff",
  );
  const conditions: Condition[] = [
    condition(previous, "Ready", ready, now, {
      reason: ready
        ? "AllServersRunning"
        : (o.stalled?.reason ?? (o.errors.length > 0 ? "InvalidDesiredState" : "ServersNotRunning")),
      message: ready
        ? `${o.servers.length} server(s) running`
        : (o.stalled?.message ??
          (o.errors.length > 0
            ? `${o.errors.length} problem(s) in the desired state; the last good state is kept`
            : `${notRunning.map((s) => `${s.id}: ${s.phase}${s.reason ? ` (${s.reason})` : s.health ? ` (${s.health})` : ""}`).join(", ")}`)),
    }),
    condition(previous, "Degraded", degraded !== undefined, now, {
      reason: degraded?.reason ?? "AsExpected",
      message: degraded ? `${degraded.id}: ${degraded.message ?? degraded.phase}` : "",
    }),
    condition(previous, "Stalled", o.stalled !== undefined || o.errors.length > 0, now, {
      reason: o.stalled?.reason ?? (o.errors.length > 0 ? "InvalidDesiredState" : "AsExpected"),
      message:
        o.stalled?.message ??
        (o.errors.length > 0 ? o.errors.map((e) => `${e.file}: ${e.path}: ${e.message}`).join("; ") : ""),
    }),
  ];
  const phase: UserPhase = o.suspended
    ? "Suspended"
    : o.stalled
      ? "Stalled"
      : ready
        ? "Ready"
        : degraded || o.errors.length > 0
          ? "Degraded"
          : "Progressing";
  const history = [...(previous?.last_reconciles ?? [])];
  const last = history[history.length - 1];
  if (
    !last ||
    o.record.mutations > 0 ||
    last.result !== o.record.result ||
    last.summary !== o.record.summary
  ) {
    history.push(o.record);
  }
  return {
    api_version: "mcp-portal/v1",
    user_id: o.userId,
    phase,
    observed_generation: o.generation,
    network: o.network,
    port_block: o.portBlock,
    servers: o.servers,
    resources: o.resources,
    conditions,
    errors: o.errors,
    last_reconciles: history.slice(-HISTORY),
  };
}

function condition(
  previous: UserStatus | undefined,
  type: Condition["type"],
  isTrue: boolean,
  now: Date,
  detail: { reason: string; message: string },
): Condition {
  const status = isTrue ? "True" : "False";
  const before = previous?.conditions.find((c) => c.type === type);
  return {
    type,
    status,
    reason: detail.reason,
    message: detail.message,
    last_transition_time:
      before && before.status === status ? before.last_transition_time : now.toISOString(),
  };
}

/** Writes status files atomically, and only when something in them changed (a no-op resync writes nothing). */
export class StatusStore {
  private readonly current = new Map<string, UserStatus>();
  private readonly serialized = new Map<string, string>();

  constructor(private readonly stateDir: string) {}

  file(userId: string): string {
    return path.join(this.stateDir, "users", userId, "status.json");
  }

  async previous(userId: string): Promise<UserStatus | undefined> {
    const known = this.current.get(userId);
    if (known) return known;
    try {
      const text = await readFile(this.file(userId), "utf8");
      const parsed = JSON.parse(text) as UserStatus;
      if (parsed.api_version === "mcp-portal/v1" && parsed.user_id === userId) {
        this.current.set(userId, parsed);
        this.serialized.set(userId, JSON.stringify(parsed));
        return parsed;
      }
    } catch {
      // No usable previous status: conditions start fresh.
    }
    return undefined;
  }

  get(userId: string): UserStatus | undefined {
    return this.current.get(userId);
  }

  all(): UserStatus[] {
    return [...this.current.values()];
  }

  /** Returns true when the file was written. */
  async write(status: UserStatus): Promise<boolean> {
    const text = JSON.stringify(status);
    this.current.set(status.user_id, status);
    if (this.serialized.get(status.user_id) === text) return false;
    await writeJsonAtomic(this.file(status.user_id), status);
    this.serialized.set(status.user_id, text);
    return true;
  }

  async remove(userId: string): Promise<void> {
    this.current.delete(userId);
    this.serialized.delete(userId);
    await rm(path.join(this.stateDir, "users", userId), { recursive: true, force: true });
  }
}
