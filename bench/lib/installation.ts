// Bench installation names carry the pid of the run that owns them, so `bench:cleanup` can tell what an
// interrupted run left behind from what a running benchmark is still using on the same host.
import { randomBytes } from "node:crypto";

const NAME = /^bench-([a-z]+)-(\d{1,10})-[0-9a-f]{6}$/;

/** `bench-<kind>-<pid>-<6 hex>`: every Docker object of one run carries it as `mcp.portal.installation`. */
export function benchInstallation(kind: string, pid: number = process.pid): string {
  if (!/^[a-z]{1,8}$/.test(kind)) throw new Error(`bench kind must be 1-8 lowercase letters: ${kind}`);
  return `bench-${kind}-${pid}-${randomBytes(3).toString("hex")}`;
}

/** The pid of the run that made this installation name, or undefined when the name has no owner in it. */
export function benchOwnerPid(installation: string): number | undefined {
  const match = NAME.exec(installation);
  return match ? Number(match[2]) : undefined;
}

export type CleanupVerdict = "remove" | "in-use" | "unknown-owner" | "not-bench";

/**
 * What `bench:cleanup` does with one installation: a bench installation whose owning process is gone is removed;
 * one whose owner still runs on this host is in use; a name without an owner (older runs, or made by hand) is
 * removed only when `all` is asked for. `alive` answers for a pid on this host.
 */
export function cleanupVerdict(
  installation: string,
  alive: (pid: number) => boolean,
  all: boolean,
): CleanupVerdict {
  if (!installation.startsWith("bench-")) return "not-bench";
  if (all) return "remove";
  const pid = benchOwnerPid(installation);
  if (pid === undefined) return "unknown-owner";
  return alive(pid) ? "in-use" : "remove";
}

/** Whether a process with this pid exists on this host (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
