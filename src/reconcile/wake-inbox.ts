import { type FSWatcher, watch } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import {
  MAX_WAKE_REQUEST_BYTES,
  WakeRequest,
  parseWakeRequestFileName,
  wakeRequestDir,
  wakeRequestFileName,
} from "../contracts/wake-request.js";
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
import { readStateFile } from "../util/read-state-file.js";

export interface WakeInboxOptions {
  stateDir: string;
  clock: Clock;
  logger: Logger;
  /** A wake request for this user arrived (or is still waiting): reconcile it. */
  onRequest: (userId: string) => void;
  /** The directory is listed this often whatever the watcher says (default 1000 ms): a lost event costs that. */
  pollMs?: number;
}

/**
 * The controller's end of the wake channel (src/contracts/wake-request.ts): the gateway drops a file per server
 * into `<state-dir>/gateway/wake/`; a watcher makes a wake fast, a listing every `pollMs` (and at start) makes it
 * level-triggered, so a lost event or a controller that was down when the file appeared delays a wake, never
 * loses it. A request stays pending (its file stays) until a reconcile decided about it and `consume`d it.
 */
export class WakeInbox {
  private readonly dir: string;
  /** `<user>` -> server ids with a request waiting. */
  private readonly pending = new Map<string, Set<string>>();
  private watcher: FSWatcher | undefined;
  private timer: unknown;
  private scanning: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly options: WakeInboxOptions) {
    this.dir = wakeRequestDir(options.stateDir);
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    try {
      this.watcher = watch(this.dir, () => void this.scan());
      this.watcher.on("error", () => undefined);
    } catch (error) {
      this.options.logger.warn(
        { err: String(error) },
        "cannot watch the wake request directory; polling only",
      );
    }
    await this.scan();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.options.clock.clearTimeout(this.timer);
    this.watcher?.close();
    await this.scanning;
  }

  /** Servers of this user with a wake request waiting. */
  pendingFor(userId: string): ReadonlySet<string> {
    return this.pending.get(userId) ?? new Set();
  }

  /** A reconcile decided about these requests (woken, refused or not idle): their files go. */
  async consume(userId: string, serverIds: Iterable<string>): Promise<void> {
    const set = this.pending.get(userId);
    for (const serverId of serverIds) {
      set?.delete(serverId);
      await rm(path.join(this.dir, wakeRequestFileName(userId, serverId)), { force: true }).catch(
        (error: unknown) => this.options.logger.warn({ err: String(error) }, "cannot remove a wake request"),
      );
    }
    if (set?.size === 0) this.pending.delete(userId);
  }

  /** Lists the directory now (serialized; a scan asked for during one runs right after it). */
  scan(): Promise<void> {
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.again = false;
        await this.scanOnce();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.scanning = undefined;
      this.schedule();
    });
    return this.scanning;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.options.clock.clearTimeout(this.timer);
    this.timer = this.options.clock.setTimeout(() => void this.scan(), this.options.pollMs ?? 1000);
  }

  private async scanOnce(): Promise<void> {
    if (this.stopped) return;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      this.options.logger.warn({ err: String(error) }, "cannot list wake requests");
      return;
    }
    const found = new Map<string, Set<string>>();
    for (const name of names) {
      if (name.startsWith(".")) continue; // a write in progress (atomic writes use dot-named temp files)
      const file = path.join(this.dir, name);
      const pair = parseWakeRequestFileName(name);
      const read = pair ? await readStateFile(file, WakeRequest, MAX_WAKE_REQUEST_BYTES) : undefined;
      if (read?.status === "missing") continue;
      if (
        !pair ||
        read?.status !== "ok" ||
        read.value.user_id !== pair.userId ||
        read.value.server_id !== pair.serverId
      ) {
        // Not a request of our gateway: it would otherwise be looked at every second forever.
        this.options.logger.warn(
          { file: name, reason: read?.status === "invalid" ? read.reason : "unexpected name or content" },
          "removing an invalid wake request",
        );
        await rm(file, { force: true }).catch(() => undefined);
        continue;
      }
      const set = found.get(pair.userId) ?? new Set<string>();
      set.add(pair.serverId);
      found.set(pair.userId, set);
    }
    for (const [userId, servers] of found) {
      const known = this.pending.get(userId) ?? new Set<string>();
      const before = known.size;
      for (const s of servers) known.add(s);
      this.pending.set(userId, known);
      // Only news reconciles at once; a request still waiting is seen by the user's next reconcile anyway.
      if (known.size > before) this.options.onRequest(userId);
    }
  }
}
