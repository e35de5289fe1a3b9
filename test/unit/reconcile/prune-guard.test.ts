import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pruneLatchPath } from "../../../src/contracts/prune-latch.js";
import {
  PruneGuard,
  type PruneGuardOptions,
  pruneLimit,
  releaseLatchFile,
} from "../../../src/reconcile/prune-guard.js";
import { FakeClock } from "../../helpers/fake-clock.js";

const WINDOW = 60_000;
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function guard(options: Partial<PruneGuardOptions> = {}, stateDir?: string) {
  const clock = new FakeClock();
  const dir = stateDir ?? (await mkdtemp(path.join(tmpdir(), "prune-guard-")));
  if (!stateDir) dirs.push(dir);
  const events: string[] = [];
  const g = new PruneGuard(
    { share: 0.5, minimum: 3, windowMs: WINDOW, allow: false, ...options },
    dir,
    clock,
    (e) => events.push(`${e.kind}:${e.by}`),
  );
  await g.load();
  return { clock, g, dir, events };
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe("pruneLimit", () => {
  it("is the share of the managed total, never below the minimum", () => {
    expect(pruneLimit({ share: 0.5, minimum: 5 }, 100)).toBe(50);
    expect(pruneLimit({ share: 0.5, minimum: 5 }, 4)).toBe(5);
    expect(pruneLimit({ share: 0.5, minimum: 5 }, 41)).toBe(20);
  });
});

describe("PruneGuard (latch)", () => {
  it("approves nothing before a settle, then approves proposals within the limit", async () => {
    const { g } = await guard();
    g.propose("alice", ["a1", "a2"]);
    expect(g.isApproved(["a1", "a2"])).toBe(false);
    const result = await g.settle(100);
    expect(result).toEqual({ approvedUsers: ["alice"], tripped: false, released: false });
    expect(g.isApproved(["a1", "a2"])).toBe(true);
    expect(g.isApproved([])).toBe(true);
  });

  it("trips when all proposals of a pass together exceed the limit, and approves none of them", async () => {
    const { g, dir } = await guard();
    // 20 users x 2 containers, all about to go (users/ renamed away): 40 of 40 > 20.
    for (let u = 0; u < 20; u++) g.propose(`u${u}`, ids(`u${u}-`, 2));
    const result = await g.settle(40);
    expect(result.tripped).toBe(true);
    expect(result.approvedUsers).toEqual([]);
    expect(g.state).toMatchObject({ tripped: true, pending: 40 });
    expect(g.state.reason).toContain("would prune 40 of 40 managed containers within 60 s (limit 20)");
    for (let u = 0; u < 20; u++) expect(g.isApproved(ids(`u${u}-`, 2))).toBe(false);
    const file = JSON.parse(await readFile(pruneLatchPath(dir), "utf8")) as { tripped: boolean };
    expect(file.tripped).toBe(true);
  });

  it("counts a container once however often its user proposes it", async () => {
    const { g } = await guard();
    for (let i = 0; i < 5; i++) g.propose("alice", ["a1", "a2", "a3"]);
    expect((await g.settle(6)).tripped).toBe(false);
    expect(g.isApproved(["a1", "a2", "a3"])).toBe(true);
  });

  it("measures the limit against the total before any removal of the window, not the shrinking one", async () => {
    const { g, clock } = await guard({ minimum: 1 });
    g.propose("alice", ids("a", 20));
    expect((await g.settle(40)).approvedUsers).toEqual(["alice"]);
    g.done(ids("a", 20));
    g.propose("alice", []);
    // Removals happened; the next listing sees 20. One more within the window is 21 of the 40 before: over 20.
    clock.advance(10_000);
    g.propose("bob", ["b0"]);
    const again = await g.settle(20);
    expect(again.tripped).toBe(true);
    expect(g.isApproved(["b0"])).toBe(false);
  });

  it("lets the window pass: prunes older than the window no longer count", async () => {
    const { g, clock } = await guard({ minimum: 1 });
    g.propose("alice", ids("a", 20));
    await g.settle(40);
    g.done(ids("a", 20));
    g.propose("alice", []);
    clock.advance(WINDOW + 1);
    g.propose("bob", ids("b", 10));
    expect((await g.settle(20)).approvedUsers).toEqual(["bob"]);
  });

  it("stays tripped while the proposals exceed the limit, releases itself once the tree is fixed", async () => {
    const { g, events } = await guard();
    for (let u = 0; u < 10; u++) g.propose(`u${u}`, ids(`u${u}-`, 2));
    expect((await g.settle(20)).tripped).toBe(true);
    // A later pass still wants the same: nothing changes.
    expect(await g.settle(20)).toEqual({ approvedUsers: [], tripped: false, released: false });
    // Even a proposal within the limit on its own waits while tripped.
    g.propose("u0", ["u0-0"]);
    expect(g.isApproved(["u0-0"])).toBe(false);
    // The tree comes back: every user proposes nothing but u0, which wants one removal.
    for (let u = 1; u < 10; u++) g.propose(`u${u}`, []);
    const result = await g.settle(20);
    expect(result.released).toBe(true);
    expect(result.approvedUsers).toEqual(["u0"]);
    expect(g.state.tripped).toBe(false);
    expect(events).toEqual(["tripped:settle", "released:settle"]);
  });

  it("survives a restart tripped, and a release through the latch file (the CLI) approves what is pending", async () => {
    const first = await guard();
    for (let u = 0; u < 10; u++) first.g.propose(`u${u}`, ids(`u${u}-`, 2));
    await first.g.settle(20);
    const second = await guard({}, first.dir);
    expect(second.g.state.tripped).toBe(true);
    for (let u = 0; u < 10; u++) second.g.propose(`u${u}`, ids(`u${u}-`, 2));
    expect((await second.g.settle(20)).approvedUsers).toEqual([]);
    await releaseLatchFile(first.dir, "cli");
    await second.g.settle(20);
    expect(second.g.state.tripped).toBe(false);
    expect(second.g.isApproved(ids("u3-", 2))).toBe(true);
    expect(second.events).toEqual(["released:cli"]);
  });

  it("an operator release approves the pending prunes and records who released it", async () => {
    const { g, dir } = await guard();
    g.propose("alice", ids("a", 10));
    await g.settle(10);
    expect(g.state.tripped).toBe(true);
    const { approvedUsers } = await g.release("api:tok1");
    expect(approvedUsers).toEqual(["alice"]);
    expect(g.isApproved(ids("a", 10))).toBe(true);
    const file = JSON.parse(await readFile(pruneLatchPath(dir), "utf8")) as Record<string, unknown>;
    expect(file).toMatchObject({ tripped: false, released_by: "api:tok1" });
  });

  it("--allow-mass-prune approves everything and releases a latch tripped before the restart", async () => {
    const first = await guard();
    first.g.propose("alice", ids("a", 10));
    await first.g.settle(10);
    const allowed = await guard({ allow: true }, first.dir);
    expect(allowed.g.state.tripped).toBe(false);
    allowed.g.propose("alice", ids("a", 10));
    expect(allowed.g.isApproved(ids("a", 10))).toBe(true);
  });

  it("treats an unreadable latch file as tripped", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "prune-guard-"));
    dirs.push(dir);
    await writeFile(pruneLatchPath(dir), "{not json");
    const { g } = await guard({}, dir);
    expect(g.state.tripped).toBe(true);
    g.propose("alice", ids("a", 60));
    expect((await g.settle(100)).approvedUsers).toEqual([]);
    expect(g.state.tripped).toBe(true);
  });

  it("always allows up to the minimum on small installations", async () => {
    const { g } = await guard({ minimum: 3 });
    g.propose("alice", ids("a", 3));
    expect((await g.settle(3)).approvedUsers).toEqual(["alice"]);
    const small = await guard({ minimum: 3 });
    small.g.propose("alice", ids("a", 4));
    expect((await small.g.settle(4)).tripped).toBe(true);
  });
});
