// The crash-loop backoff counts how long a container really ran (started -> seen stopped), not how long the engine
// took to start it: on a slow engine a server that dies at once must still back off, doubling each time.
import { describe, expect, it } from "vitest";
import { StartBackoff } from "../../../src/reconcile/start-backoff.js";
import { FakeClock } from "../../helpers/fake-clock.js";

const OPTIONS = { baseMs: 500, maxMs: 5_000, healthyAfterMs: 3_000 };

describe("StartBackoff", () => {
  it("a container that dies at once backs off, doubling, however long each start call takes", () => {
    const clock = new FakeClock();
    const backoff = new StartBackoff(OPTIONS, clock);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      // The engine takes 4 s to start it (longer than healthyAfterMs); it dies as soon as it runs.
      clock.advance(4_000);
      backoff.recordStart("c");
      clock.advance(50);
      const wait = backoff.waitMs("c");
      waits.push(wait);
      clock.advance(wait);
      expect(backoff.waitMs("c")).toBe(0);
    }
    expect(waits).toEqual([500, 1_000, 2_000, 4_000]);
  });

  it("a container that ran for healthyAfterMs before it stopped starts again at once, and its count starts over", () => {
    const clock = new FakeClock();
    const backoff = new StartBackoff(OPTIONS, clock);
    backoff.recordStart("c");
    clock.advance(100);
    expect(backoff.waitMs("c")).toBe(500);
    clock.advance(500);
    backoff.recordStart("c");
    clock.advance(3_000);
    expect(backoff.waitMs("c")).toBe(0);
    backoff.recordStart("c");
    clock.advance(10);
    expect(backoff.waitMs("c")).toBe(500);
  });

  it("the wait runs from when the death was first seen; asking again does not move it", () => {
    const clock = new FakeClock();
    const backoff = new StartBackoff(OPTIONS, clock);
    backoff.recordStart("c");
    clock.advance(200);
    expect(backoff.waitMs("c")).toBe(500);
    clock.advance(300);
    expect(backoff.waitMs("c")).toBe(200);
    backoff.forget("c");
    expect(backoff.waitMs("c")).toBe(0);
  });
});
