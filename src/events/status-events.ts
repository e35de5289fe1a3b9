import type { UserStatus } from "../contracts/status-file.js";
import { type EventBus, usageEvent } from "./event-bus.js";

/** Turns a status transition into the live events subscribers see. */
export function publishStatusChange(
  bus: EventBus,
  previous: UserStatus | undefined,
  next: UserStatus,
  now: Date,
): void {
  const before = new Map((previous?.servers ?? []).map((s) => [s.id, s]));
  const after = new Map(next.servers.map((s) => [s.id, s]));
  for (const id of new Set([...before.keys(), ...after.keys()])) {
    const old = before.get(id);
    const cur = after.get(id);
    const oldStatus = old ? `${old.phase}${old.reason ? `:${old.reason}` : ""}` : "Absent";
    const newStatus = cur ? `${cur.phase}${cur.reason ? `:${cur.reason}` : ""}` : "Absent";
    if (oldStatus === newStatus && old?.container_id === cur?.container_id) continue;
    bus.publish({
      event: "SERVER_STATUS_CHANGED",
      data: {
        user_id: next.user_id,
        server_id: id,
        old_status: old?.phase ?? "Absent",
        new_status: cur?.phase ?? "Absent",
        ...(cur?.reason ? { reason: cur.reason } : {}),
        container_id: cur?.container_id ?? old?.container_id ?? "",
        timestamp: now.toISOString(),
      },
    });
  }
  if (next.resources && JSON.stringify(previous?.resources) !== JSON.stringify(next.resources)) {
    bus.publish(usageEvent(next.user_id, next.resources.used, next.resources.limits, now));
  }
  if (previous && previous.observed_generation !== next.observed_generation) {
    const changes: { server_id: string; change: "added" | "removed" | "changed" }[] = [];
    for (const id of new Set([...before.keys(), ...after.keys()])) {
      const old = before.get(id);
      const cur = after.get(id);
      if (!old) changes.push({ server_id: id, change: "added" });
      else if (!cur) changes.push({ server_id: id, change: "removed" });
      else if (old.spec_hash !== cur.spec_hash) changes.push({ server_id: id, change: "changed" });
    }
    bus.publish({
      event: "USER_CATALOG_UPDATED",
      data: {
        user_id: next.user_id,
        catalog_version: next.observed_generation,
        changes,
        timestamp: now.toISOString(),
      },
    });
  }
}
