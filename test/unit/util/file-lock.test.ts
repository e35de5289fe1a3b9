import { spawn } from "node:child_process";
import { mkdir, readFile, readdir, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { LockTimeoutError, withFileLock } from "../../../src/util/file-lock.js";
import { StateLocks, lockFile } from "../../../src/util/state-locks.js";
import { useTempDirs } from "../catalog/fixtures.js";

const tempDir = useTempDirs("mcp-portal-lock-");
const FAST = { waitMs: 5000, staleMs: 30_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  const pid = child.pid ?? 0;
  await new Promise((r) => child.once("exit", r));
  return pid;
}

function owner(pid: number, extra: Record<string, unknown> = {}) {
  return {
    pid,
    host: hostname(),
    process_start: 1,
    purpose: "test holder",
    acquired_at: new Date().toISOString(),
    nonce: "0".repeat(32),
    ...extra,
  };
}

describe("file lock", () => {
  it("lets two independent holders (no shared in-process state) in one at a time", async () => {
    const stateDir = await tempDir();
    const a = new StateLocks(stateDir, FAST);
    const b = new StateLocks(stateDir, FAST);
    let inside = 0;
    let maxInside = 0;
    const log: string[] = [];
    const task = (who: string, i: number) => async () => {
      inside++;
      maxInside = Math.max(maxInside, inside);
      await sleep(3);
      log.push(`${who}${i}`);
      inside--;
    };
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => [
        a.run("user-alice", "a", task("a", i)),
        b.run("user-alice", "b", task("b", i)),
      ]).flat(),
    );
    expect(maxInside).toBe(1);
    expect(log).toHaveLength(20);
    expect(await readdir(path.join(stateDir, "locks"))).toEqual([]);
  });

  it("gives up after the wait bound with an error naming the holder, leaving the holder's lock alone", async () => {
    const stateDir = await tempDir();
    const holder = new StateLocks(stateDir, FAST);
    const waiter = new StateLocks(stateDir, { waitMs: 150, staleMs: 30_000 });
    let release: () => void = () => undefined;
    const held = holder.run("tokens", "cli: tokens create", () => new Promise<void>((r) => (release = r)));
    await sleep(20);
    const started = Date.now();
    const error = await waiter.run("tokens", "api", () => Promise.resolve()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as Error).message).toMatch(
      /tokens is locked by another process \(cli: tokens create, pid \d+/,
    );
    expect(Date.now() - started).toBeLessThan(1000);
    expect(JSON.parse(await readFile(lockFile(stateDir, "tokens"), "utf8"))).toMatchObject({
      purpose: "cli: tokens create",
    });
    release();
    await held;
  });

  it("takes over at once a lock whose process is gone, or one left by an earlier process with our pid", async () => {
    const stateDir = await tempDir();
    const file = lockFile(stateDir, "user-bob");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(owner(await deadPid())));
    const started = Date.now();
    expect(await withFileLock(file, "t", FAST, () => Promise.resolve("got it"))).toBe("got it");
    await writeFile(file, JSON.stringify(owner(process.pid, { process_start: 12345 })));
    expect(await withFileLock(file, "t", FAST, () => Promise.resolve("again"))).toBe("again");
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("takes over a lock not refreshed within the stale age (a hung or remote holder, a half-written file)", async () => {
    const stateDir = await tempDir();
    const file = lockFile(stateDir, "user-bob");
    await mkdir(path.dirname(file), { recursive: true });
    // pid 1 is alive (and not us): only its age can make it stale.
    await writeFile(file, JSON.stringify(owner(1)));
    const old = new Date(Date.now() - 60_000);
    await utimes(file, old, old);
    expect(await withFileLock(file, "t", FAST, () => Promise.resolve(1))).toBe(1);
    await writeFile(file, "{");
    await utimes(file, old, old);
    expect(await withFileLock(file, "t", FAST, () => Promise.resolve(2))).toBe(2);
    // A fresh lock of a live holder is not taken over.
    await writeFile(file, JSON.stringify(owner(1)));
    await expect(
      withFileLock(file, "t", { waitMs: 100, staleMs: 30_000 }, () => Promise.resolve(3)),
    ).rejects.toThrow(LockTimeoutError);
  });

  it("keeps a long-held lock fresh, so waiters do not take it over", async () => {
    const stateDir = await tempDir();
    const settings = { waitMs: 2000, staleMs: 1000 };
    const a = new StateLocks(stateDir, settings);
    const b = new StateLocks(stateDir, settings);
    let overlapped = false;
    let holding = false;
    const long = a.run("user-x", "long", async () => {
      holding = true;
      await sleep(1500);
      holding = false;
    });
    await sleep(20);
    await b
      .run("user-x", "short", () => {
        overlapped = holding;
        return Promise.resolve();
      })
      .catch(() => undefined);
    await long;
    expect(overlapped).toBe(false);
  });
});
