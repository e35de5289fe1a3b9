import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_GATEWAY_LOG_KEEP, RotatingLogFile } from "../../../src/gateway/log-file.js";

describe("the gateway's rotated log file", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it("rotates by size and keeps a bounded number of files: gateway.log, .1 (newest) .. .5", async () => {
    expect(DEFAULT_GATEWAY_LOG_KEEP).toBe(5);
    const dir = await mkdtemp(path.join(tmpdir(), "gw-log-"));
    dirs.push(dir);
    const file = path.join(dir, "gateway.log");
    await writeFile(file, "x".repeat(900) + "\n");
    const log = new RotatingLogFile(file, { maxBytes: 1000 });
    // 100 lines of 100 bytes: 10 KB through a 1000-byte file.
    for (let i = 0; i < 100; i++) log.write(`${String(i).padStart(3, "0")}${"-".repeat(96)}\n`);
    log.close();
    const names = (await readdir(dir)).sort();
    expect(names).toEqual([
      "gateway.log",
      "gateway.log.1",
      "gateway.log.2",
      "gateway.log.3",
      "gateway.log.4",
      "gateway.log.5",
    ]);
    for (const name of names) expect((await stat(path.join(dir, name))).size).toBeLessThanOrEqual(1000);
    // Whole lines, newest in gateway.log, and the previous file right before it.
    const current = (await readFile(file, "utf8")).split("\n").filter(Boolean);
    expect(current.at(-1)).toMatch(/^099-/);
    const previous = (await readFile(`${file}.1`, "utf8")).split("\n").filter(Boolean);
    expect(Number(previous.at(-1)!.slice(0, 3))).toBe(Number(current[0]!.slice(0, 3)) - 1);
    // A line is never split across files.
    for (const name of names) expect(await readFile(path.join(dir, name), "utf8")).toMatch(/\n$/);
  });

  it("appends to an existing file, and rotates it first when it is already over the size", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "gw-log-"));
    dirs.push(dir);
    const file = path.join(dir, "gateway.log");
    await writeFile(file, "old\n");
    const log = new RotatingLogFile(file, { maxBytes: 1000, keep: 2 });
    log.write("new\n");
    log.close();
    expect(await readFile(file, "utf8")).toBe("old\nnew\n");
    await writeFile(file, "y".repeat(5000));
    const again = new RotatingLogFile(file, { maxBytes: 1000, keep: 2 });
    again.write("fresh\n");
    again.close();
    expect(await readFile(file, "utf8")).toBe("fresh\n");
    expect((await readdir(dir)).sort()).toEqual(["gateway.log", "gateway.log.1"]);
  });
});
