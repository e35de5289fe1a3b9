import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { UserStatus, statusFilePath } from "../contracts/status-file.js";
import { writeJsonAtomic } from "../util/atomic-write.js";

/** Writes status files atomically, and only when something in them changed (a no-op resync writes nothing). */
export class StatusStore {
  private readonly current = new Map<string, UserStatus>();
  private readonly serialized = new Map<string, string>();

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
        this.serialized.set(userId, JSON.stringify(parsed.data));
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
    const text = JSON.stringify(status);
    this.current.set(status.user_id, status);
    if (this.serialized.get(status.user_id) === text) return false;
    await writeJsonAtomic(this.file(status.user_id), status);
    this.serialized.set(status.user_id, text);
    return true;
  }

  async remove(userId: string): Promise<void> {
    this.current.delete(userId);
    this.serialized.delete(userId);
    await rm(path.dirname(this.file(userId)), { recursive: true, force: true });
  }
}
