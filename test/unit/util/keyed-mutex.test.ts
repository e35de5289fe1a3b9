import { describe, expect, it } from "vitest";
import { KeyedMutex } from "../../../src/util/keyed-mutex.js";

const tick = () => new Promise((r) => setTimeout(r, 1));

describe("KeyedMutex", () => {
  it("runs one task at a time per key, in order, keys in parallel, and survives failures", async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const task =
      (name: string, fail = false) =>
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        log.push(`start ${name}`);
        await tick();
        log.push(`end ${name}`);
        running--;
        if (fail) throw new Error(name);
        return name;
      };
    const results = await Promise.allSettled([
      mutex.run("a", task("a1")),
      mutex.run("a", task("a2", true)),
      mutex.run("a", task("a3")),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(log).toEqual(["start a1", "end a1", "start a2", "end a2", "start a3", "end a3"]);
    expect(maxRunning).toBe(1);
    let both = 0;
    await Promise.all([
      mutex.run("x", async () => {
        both++;
        await tick();
        expect(both).toBe(2);
      }),
      mutex.run("y", async () => {
        both++;
        await tick();
      }),
    ]);
    await tick();
    expect(mutex.size).toBe(0);
  });
});
