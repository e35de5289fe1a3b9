import {
  IDLE_STATE_VERSION,
  type IdleServer,
  IdleStateFile,
  MAX_IDLE_STATE_BYTES,
  type WakeRefusal,
  idleKey,
  idleStatePath,
} from "../contracts/idle-state.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import type { Clock } from "../util/clock.js";
import { readStateFile } from "../util/read-state-file.js";
import type { IdleMark } from "./idle.js";

/**
 * The controller's memory of idle servers, kept in `<state-dir>/idle.json` (the contract is
 * src/contracts/idle-state.ts): loaded at start, written atomically after each change, before the engine is
 * touched (a crash between the two leaves a mark on a running server, which the next reconcile takes as woken).
 */
export class IdleStore {
  private readonly servers = new Map<string, IdleServer>();
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;
  /** idle.json existed but could not be used at start: see IdleInputs.adoptStopped. */
  private unreadable: string | undefined;

  constructor(
    private readonly stateDir: string,
    private readonly clock: Clock,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {}

  /** Why idle.json could not be read at start (stopped idle-eligible containers are then taken as idle). */
  get loadProblem(): string | undefined {
    return this.unreadable;
  }

  async load(): Promise<void> {
    const read = await readStateFile(idleStatePath(this.stateDir), IdleStateFile, MAX_IDLE_STATE_BYTES);
    this.servers.clear();
    if (read.status === "invalid") {
      this.unreadable = `${idleStatePath(this.stateDir)}: ${read.reason}`;
      return;
    }
    this.unreadable = undefined;
    if (read.status === "ok")
      for (const s of read.value.servers) this.servers.set(idleKey(s.user_id, s.server_id), s);
  }

  /** The first full sync after an unreadable idle.json is done: from now on idle.json is what this store says. */
  settleLoadProblem(): void {
    this.unreadable = undefined;
    this.dirty = true;
  }

  /** The user's idle servers (server id -> mark). */
  marksOf(userId: string): Map<string, IdleMark> {
    const marks = new Map<string, IdleMark>();
    const prefix = `${userId}/`;
    for (const [key, s] of this.servers)
      if (key.startsWith(prefix))
        marks.set(s.server_id, { containerId: s.container_id, since: Date.parse(s.since) });
    return marks;
  }

  /** A digest of the user's idle state, for the reconciler's no-op shortcut. */
  keyOf(userId: string): string {
    const prefix = `${userId}/`;
    let key = "";
    for (const [k, s] of this.servers)
      if (k.startsWith(prefix)) key += `${s.server_id}:${s.container_id}:${s.wake_refused?.at ?? ""};`;
    return key;
  }

  get size(): number {
    return this.servers.size;
  }

  mark(userId: string, serverId: string, containerId: string): void {
    const key = idleKey(userId, serverId);
    const existing = this.servers.get(key);
    if (existing?.container_id === containerId) return;
    this.servers.set(key, {
      user_id: userId,
      server_id: serverId,
      container_id: containerId,
      since: existing?.since ?? new Date(this.clock.now()).toISOString(),
    });
    this.dirty = true;
  }

  refuse(userId: string, serverId: string, refusal: Omit<WakeRefusal, "at">): void {
    const existing = this.servers.get(idleKey(userId, serverId));
    if (!existing) return;
    existing.wake_refused = { ...refusal, at: new Date(this.clock.now()).toISOString() };
    this.dirty = true;
  }

  clear(userId: string, serverId: string): void {
    if (this.servers.delete(idleKey(userId, serverId))) this.dirty = true;
  }

  forgetUser(userId: string): void {
    for (const key of [...this.servers.keys()])
      if (key.startsWith(`${userId}/`)) this.clear(userId, key.slice(userId.length + 1));
  }

  /** Writes the changes made so far; resolves once they are on disk (rejects when they could not be written). */
  flush(): Promise<void> {
    if (!this.dirty) return this.writing;
    this.dirty = false;
    const content: IdleStateFile = {
      version: IDLE_STATE_VERSION,
      updated_at: new Date(this.clock.now()).toISOString(),
      servers: [...this.servers.values()].sort((a, b) =>
        a.user_id === b.user_id ? cmp(a.server_id, b.server_id) : cmp(a.user_id, b.user_id),
      ),
    };
    const write = this.writing
      .catch(() => undefined)
      .then(() => writeJsonAtomic(idleStatePath(this.stateDir), content));
    this.writing = write.catch((error: unknown) => {
      this.dirty = true;
      this.onError(error);
    });
    return write;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
