import { open } from "node:fs/promises";
import path from "node:path";
import { AUDIT_FILE_NAME } from "../../observability/audit.js";

/*
 * How often the controller started a container. Containers run with restart policy "no" (the controller owns
 * restarts), so the engine's RestartCount stays 0; the audit log records every `start_container` instead. Only
 * the end of the log is read (a fixed byte budget), so the count covers that window: `exact` says whether the
 * window reaches back to the container's creation.
 */

/** Bytes of the audit log (audit.log, then audit.log.1) read per request. */
export const RESTART_AUDIT_WINDOW_BYTES = 1024 * 1024;

export interface AuditWindow {
  lines: string[];
  /** Time of the oldest whole line read; undefined when the log is empty. */
  oldest: string | undefined;
  /** The window holds the whole log (nothing older exists). */
  complete: boolean;
}

async function tail(file: string, maxBytes: number): Promise<{ text: string; size: number; cut: boolean }> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch {
    return { text: "", size: 0, cut: false };
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, size - length);
    return { text: buffer.subarray(0, bytesRead).toString("utf8"), size, cut: size > length };
  } finally {
    await handle.close();
  }
}

/** The last `budget` bytes of the audit log as whole lines, oldest first. */
export async function readAuditWindow(
  stateDir: string,
  budget = RESTART_AUDIT_WINDOW_BYTES,
): Promise<AuditWindow> {
  const current = await tail(path.join(stateDir, AUDIT_FILE_NAME), budget);
  let text = current.text;
  // Whether the oldest text read starts inside a line, and whether anything older exists at all.
  let partial = current.cut;
  let complete = !current.cut;
  if (!current.cut && budget > current.size) {
    const rotated = await tail(path.join(stateDir, `${AUDIT_FILE_NAME}.1`), budget - current.size);
    text = rotated.text + text;
    partial = rotated.cut;
    // A rotated file read whole may have older ones behind it (audit.log.2, ...).
    complete = rotated.size === 0;
  }
  const lines = text.split("\n").filter((line) => line !== "");
  if (partial) lines.shift();
  return { lines, oldest: timestampOf(lines[0]), complete };
}

function timestampOf(line: string | undefined): string | undefined {
  if (line === undefined) return undefined;
  try {
    const value = (JSON.parse(line) as { timestamp?: unknown }).timestamp;
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Restarts of one container: successful `start_container` lines of its user for its name at or after its
 * creation, minus the first start. `exact` is false when the window begins after the creation.
 */
export function countRestarts(
  window: AuditWindow,
  container: { userId: string; name: string; createdAt: string },
): { restarts: number; exact: boolean } {
  const since = Date.parse(container.createdAt);
  let starts = 0;
  for (const line of window.lines) {
    if (!line.includes('"start_container"')) continue;
    let event: {
      timestamp?: unknown;
      user_id?: unknown;
      action?: unknown;
      resource?: unknown;
      result?: unknown;
    };
    try {
      event = JSON.parse(line) as typeof event;
    } catch {
      continue;
    }
    if (
      event.action === "start_container" &&
      event.result === "success" &&
      event.user_id === container.userId &&
      event.resource === container.name &&
      typeof event.timestamp === "string" &&
      Date.parse(event.timestamp) >= since
    ) {
      starts++;
    }
  }
  const exact = window.complete || (window.oldest !== undefined && Date.parse(window.oldest) <= since);
  // When the window misses the first start, every start it saw was a restart.
  return { restarts: exact ? Math.max(0, starts - 1) : starts, exact };
}
