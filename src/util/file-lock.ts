import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, rm, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { z } from "zod";

/*
 * An advisory lock between processes (the daemon's API and `mcp-portal secrets|tokens`), without native addons:
 * a lock file created with O_EXCL holds its owner (pid, host, process start) and is refreshed while held. A lock
 * whose owner is gone (same host, pid not alive or a previous process with the same pid) or that was not
 * refreshed for `staleMs` is taken over; taking over is itself guarded by an O_EXCL "break" file, so two
 * waiters never both remove a lock. Waiting is bounded by `waitMs` and ends with a LockTimeoutError that names
 * the holder.
 */

export interface LockSettings {
  /** How long to wait for a lock another holder has (MCP_PORTAL_LOCK_WAIT_MS). */
  waitMs: number;
  /** A lock not refreshed for this long is stale (MCP_PORTAL_LOCK_STALE_MS); held locks refresh at a third. */
  staleMs: number;
}

export const DEFAULT_LOCK_SETTINGS: LockSettings = { waitMs: 10_000, staleMs: 30_000 };

const LockOwner = z.strictObject({
  pid: z.number().int().positive(),
  host: z.string().max(255),
  /** When the owning process started (ms since the epoch): tells a previous process with the same pid apart. */
  process_start: z.number(),
  purpose: z.string().max(200),
  acquired_at: z.string().max(64),
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
});
export type LockOwner = z.infer<typeof LockOwner>;

export class LockTimeoutError extends Error {
  readonly code = "LOCK_TIMEOUT";
  override readonly name = "LockTimeoutError";
  constructor(
    readonly file: string,
    readonly holder: LockOwner | undefined,
    readonly waitedMs: number,
  ) {
    super(
      `${path.basename(file, ".lock")} is locked by another process` +
        (holder
          ? ` (${holder.purpose}, pid ${holder.pid} on ${holder.host}, since ${holder.acquired_at})`
          : "") +
        `; gave up after ${waitedMs} ms (${file})`,
    );
  }
}

/** Runs `task` while holding the lock file `file` (created, with its directory, as needed). */
export async function withFileLock<T>(
  file: string,
  purpose: string,
  settings: LockSettings,
  task: () => Promise<T>,
): Promise<T> {
  const release = await acquire(file, purpose, settings);
  try {
    return await task();
  } finally {
    await release();
  }
}

const PROCESS_START = Math.round(performance.timeOrigin);
const MAX_LOCK_FILE_BYTES = 4096;
const MAX_POLL_MS = 100;

interface Seen {
  owner: LockOwner | undefined;
  mtimeMs: number;
  ino: number;
}

async function acquire(file: string, purpose: string, settings: LockSettings): Promise<() => Promise<void>> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const started = Date.now();
  let poll = 5;
  for (;;) {
    const owner: LockOwner = {
      pid: process.pid,
      host: hostname(),
      process_start: PROCESS_START,
      purpose: purpose.slice(0, 200),
      acquired_at: new Date().toISOString(),
      nonce: randomBytes(16).toString("hex"),
    };
    if (await tryCreate(file, owner)) return hold(file, owner, settings);
    const seen = await inspect(file);
    if (seen === undefined) continue; // released in between
    if (isStale(seen, settings)) {
      await breakStale(file, seen, settings);
      continue;
    }
    const waited = Date.now() - started;
    if (waited >= settings.waitMs) throw new LockTimeoutError(file, seen.owner, waited);
    await sleep(Math.min(poll * (0.5 + Math.random()), settings.waitMs - waited));
    poll = Math.min(poll * 2, MAX_POLL_MS);
  }
}

/** Creates `file` holding `owner`, or false when it exists. */
async function tryCreate(file: string, owner: LockOwner): Promise<boolean> {
  let handle;
  try {
    handle = await open(
      file,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    await handle.writeFile(`${JSON.stringify(owner)}\n`);
  } finally {
    await handle.close();
  }
  return true;
}

function hold(file: string, owner: LockOwner, settings: LockSettings): () => Promise<void> {
  const refresh = setInterval(
    () => {
      const now = new Date();
      utimes(file, now, now).catch(() => undefined);
    },
    Math.max(10, Math.floor(settings.staleMs / 3)),
  );
  refresh.unref();
  return async () => {
    clearInterval(refresh);
    // Remove only our own lock: one taken over as stale belongs to someone else now.
    const seen = await inspect(file);
    if (seen?.owner?.nonce === owner.nonce) await rm(file, { force: true });
  };
}

async function inspect(file: string): Promise<Seen | undefined> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const info = await handle.stat();
    const buffer = Buffer.alloc(Math.min(info.size, MAX_LOCK_FILE_BYTES));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    let owner: LockOwner | undefined;
    try {
      const parsed = LockOwner.safeParse(JSON.parse(buffer.subarray(0, bytesRead).toString("utf8")));
      owner = parsed.success ? parsed.data : undefined;
    } catch {
      owner = undefined; // being written, or left half-written by a crash: judged by age alone
    }
    return { owner, mtimeMs: info.mtimeMs, ino: info.ino };
  } finally {
    await handle.close();
  }
}

function isStale(seen: Seen, settings: LockSettings): boolean {
  const { owner } = seen;
  if (owner !== undefined && owner.host === hostname()) {
    if (owner.pid === process.pid) {
      if (owner.process_start !== PROCESS_START) return true;
    } else if (!isAlive(owner.pid)) {
      return true;
    }
  }
  return Date.now() - seen.mtimeMs > settings.staleMs;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another uid.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function breakStale(file: string, seen: Seen, settings: LockSettings): Promise<void> {
  const breaker = `${file}.break`;
  const me: LockOwner = {
    pid: process.pid,
    host: hostname(),
    process_start: PROCESS_START,
    purpose: "taking over a stale lock",
    acquired_at: new Date().toISOString(),
    nonce: randomBytes(16).toString("hex"),
  };
  if (!(await tryCreate(breaker, me))) {
    // Someone else is taking it over; a breaker left by a crash is itself stale after staleMs.
    const other = await inspect(breaker);
    if (other !== undefined && Date.now() - other.mtimeMs > settings.staleMs)
      await rm(breaker, { force: true });
    await sleep(5);
    return;
  }
  try {
    const again = await inspect(file);
    const same =
      again !== undefined &&
      again.ino === seen.ino &&
      (again.owner?.nonce ?? "") === (seen.owner?.nonce ?? "");
    if (same && isStale(again, settings)) await rm(file, { force: true });
  } finally {
    await rm(breaker, { force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
