import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { UserStatus, statusFilePath } from "../contracts/status-file.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import { sha256Hex } from "../util/canonical-json.js";

/** Writes status files atomically, and only when something in them changed (a no-op resync writes nothing). */
export class StatusStore {
  private readonly current = new Map<string, UserStatus>();
  /** A digest of what each file holds now: an unchanged status is not written again (kept small per user). */
  private readonly written = new Map<string, string>();

  constructor(private readonly stateDir: string) {}

  file(userId: string): string {
    return statusFilePath(this.stateDir, userId);
  }

  async previous(userId: string): Promise<UserStatus | undefined> {
    const known = this.current.get(userId);
    if (known) return known;
    try {
      const parsed = UserStatus.safeParse(JSON.parse(await readFile(this.file(userId), "utf8")));
      if (parsed.success && parsed.data.user_id === userId) {
        this.current.set(userId, parsed.data);
        this.written.set(userId, sha256Hex(JSON.stringify(parsed.data)));
        return parsed.data;
      }
    } catch {
      // No usable previous status: conditions start fresh.
    }
    return undefined;
  }

  get(userId: string): UserStatus | undefined {
    return this.current.get(userId);
  }

  all(): UserStatus[] {
    return [...this.current.values()];
  }

  /** Returns true when the file was written. */
  async write(status: UserStatus): Promise<boolean> {
    const digest = sha256Hex(JSON.stringify(status));
    this.current.set(status.user_id, status);
    if (this.written.get(status.user_id) === digest) return false;
    await writeJsonAtomic(this.file(status.user_id), status);
    this.written.set(status.user_id, digest);
    return true;
  }

  async remove(userId: string): Promise<void> {
    this.current.delete(userId);
    this.written.delete(userId);
    await rm(path.dirname(this.file(userId)), { recursive: true, force: true });
  }
}
