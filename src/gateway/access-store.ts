import { open, stat } from "node:fs/promises";
import { constants } from "node:fs";
import {
  type GatewayAccessFile,
  type ServerAccess,
  GatewayAccessFile as AccessFileSchema,
  gatewayAccessPath,
} from "../contracts/gateway-access.js";
import { ownValue } from "../util/own-property.js";

/*
 * The gateway's view of `<state-dir>/users/<id>/gateway-access.json` (src/contracts/gateway-access.ts), one entry
 * per user: loaded on first use, then checked again by `refresh` (the gateway calls it every
 * MCP_PORTAL_GATEWAY_POLICY_RECHECK_MS for the users it serves): one stat per user, a read only when the file
 * changed. A file that cannot be used keeps the last good version; with none, the user's tools are refused.
 */

export type UserAccess =
  /** No file: no tool policy and no rate limit. */
  | { kind: "open" }
  | { kind: "policy"; file: GatewayAccessFile }
  /** The file cannot be used and there is no good version to keep: every tool of the user is refused. */
  | { kind: "unusable"; message: string };

/** Largest access file read (the controller writes it; one from the largest valid inputs is far smaller). */
export const MAX_ACCESS_FILE_BYTES = 64 * 1024 * 1024;

/** What a server of a user gets: its entry, none (not enabled), or why nothing can be said. */
export type ServerAccessView =
  | { kind: "open" }
  | { kind: "server"; access: ServerAccess; userRateLimit: GatewayAccessFile["rate_limit"] }
  | { kind: "unlisted" }
  | { kind: "unusable"; message: string };

interface Entry {
  signature: string | undefined;
  /** The file's current version cannot be used. */
  invalid: boolean;
  access: UserAccess;
  /** The last good file, kept while a newer one is unusable. */
  good: GatewayAccessFile | undefined;
}

export interface AccessStoreOptions {
  /** A file turned unusable (logged once per version of the file). */
  onInvalid?: (userId: string, message: string) => void;
}

export class AccessStore {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<UserAccess>>();

  constructor(
    private readonly stateDir: string,
    private readonly options: AccessStoreOptions = {},
  ) {}

  /** The user's access, loaded on first use (and cached until `refresh` sees the file change). */
  get(userId: string): Promise<UserAccess> {
    const known = this.entries.get(userId);
    if (known) return Promise.resolve(known.access);
    return this.load(userId);
  }

  /** Users whose file's current version cannot be used. */
  get invalidCount(): number {
    let count = 0;
    for (const entry of this.entries.values()) if (entry.invalid) count += 1;
    return count;
  }

  /** The cached access of a user, if loaded. */
  peek(userId: string): UserAccess | undefined {
    return this.entries.get(userId)?.access;
  }

  /** Checks the files of `userIds` again; returns the users whose access changed. Forgets users not listed. */
  async refresh(userIds: Iterable<string>): Promise<string[]> {
    const wanted = new Set(userIds);
    for (const userId of this.entries.keys()) if (!wanted.has(userId)) this.entries.delete(userId);
    const changed: string[] = [];
    for (const userId of wanted) {
      const before = this.entries.get(userId)?.access;
      const after = await this.load(userId);
      if (before !== undefined && after !== before) changed.push(userId);
    }
    return changed;
  }

  private load(userId: string): Promise<UserAccess> {
    const running = this.loading.get(userId);
    if (running) return running;
    const attempt = this.read(userId).finally(() => this.loading.delete(userId));
    this.loading.set(userId, attempt);
    return attempt;
  }

  private async read(userId: string): Promise<UserAccess> {
    const file = gatewayAccessPath(this.stateDir, userId);
    const entry = this.entries.get(userId);
    let signature: string;
    try {
      const s = await stat(file, { bigint: true });
      signature = `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT")
        return this.settle(userId, undefined, { kind: "open" }, undefined, false);
      signature = `unreadable:${(error as NodeJS.ErrnoException).code ?? "error"}`;
    }
    if (entry && entry.signature === signature) return entry.access;
    let parsed: GatewayAccessFile;
    try {
      parsed = await readAccessFile(file, userId);
    } catch (error) {
      const message = `${file}: ${error instanceof Error ? error.message : String(error)}`;
      if (entry?.signature !== signature) this.options.onInvalid?.(userId, message);
      const good = entry?.good;
      const kept: UserAccess = good ? { kind: "policy", file: good } : { kind: "unusable", message };
      return this.settle(userId, signature, kept, good, true);
    }
    return this.settle(userId, signature, { kind: "policy", file: parsed }, parsed, false);
  }

  private settle(
    userId: string,
    signature: string | undefined,
    access: UserAccess,
    good: GatewayAccessFile | undefined,
    invalid: boolean,
  ): UserAccess {
    const entry = this.entries.get(userId);
    // Keep the same object when nothing that matters changed, so callers can compare by identity.
    const same = entry !== undefined && sameAccess(entry.access, access);
    const kept = same ? entry.access : access;
    this.entries.set(userId, { signature, invalid, access: kept, good: good ?? entry?.good });
    return kept;
  }
}

/** The access of one server of a user. */
export function serverAccess(access: UserAccess, serverId: string): ServerAccessView {
  if (access.kind === "open" || access.kind === "unusable") return access;
  const server = ownValue(access.file.servers, serverId);
  return server
    ? { kind: "server", access: server, userRateLimit: access.file.rate_limit }
    : { kind: "unlisted" };
}

async function readAccessFile(file: string, userId: string): Promise<GatewayAccessFile> {
  // O_NOFOLLOW: the state dir is the controller's, but a link there is never what it wrote.
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  let text: string;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error("not a regular file");
    if (info.size > MAX_ACCESS_FILE_BYTES) throw new Error(`over ${MAX_ACCESS_FILE_BYTES} bytes`);
    text = await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error("not valid JSON");
  }
  const parsed = AccessFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`$.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
  }
  if (parsed.data.user_id !== userId) throw new Error(`names user "${parsed.data.user_id}", not "${userId}"`);
  return parsed.data;
}

function sameAccess(a: UserAccess, b: UserAccess): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "policy" && b.kind === "policy") return JSON.stringify(a.file) === JSON.stringify(b.file);
  if (a.kind === "unusable" && b.kind === "unusable") return a.message === b.message;
  return true;
}
