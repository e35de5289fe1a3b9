import path from "node:path";
import { type LockSettings, withFileLock } from "./file-lock.js";
import { isValidUserId } from "./ids.js";
import { KeyedMutex } from "./keyed-mutex.js";

/*
 * The locks of one state dir: `<state-dir>/locks/<name>.lock`, one per resource, shared by every process that
 * writes it (the daemon's API, `mcp-portal secrets`, `mcp-portal tokens`). Within a process a keyed mutex queues
 * callers first, so the lock file is contended only between processes.
 */

export const LOCKS_DIR = "locks";

/** The resources and their lock names (the lock file is `<state-dir>/locks/<name>.lock`). */
export const LockNames = {
  /** users/<id>/enabled-servers.json and users/<id>/secrets.env. */
  user: (userId: string) => {
    // The name becomes a file name: never let a bad id make it a path.
    if (!isValidUserId(userId)) throw new Error(`not a valid user id: ${JSON.stringify(userId)}`);
    return `user-${userId}`;
  },
  /** <state-dir>/tokens.json. */
  tokens: "tokens",
  /** catalogs/base/*.json. */
  baseCatalogs: "catalogs-base",
} as const;

export function lockFile(stateDir: string, name: string): string {
  return path.join(stateDir, LOCKS_DIR, `${name}.lock`);
}

export class StateLocks {
  private readonly mutex = new KeyedMutex();

  constructor(
    private readonly stateDir: string,
    private readonly settings: LockSettings,
  ) {}

  /** Runs `task` holding lock `name`; `purpose` is shown to whoever waits for it (e.g. "api: enable server"). */
  run<T>(name: string, purpose: string, task: () => Promise<T>): Promise<T> {
    return this.mutex.run(name, () =>
      withFileLock(lockFile(this.stateDir, name), purpose, this.settings, task),
    );
  }
}
