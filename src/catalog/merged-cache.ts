import { open, rm } from "node:fs/promises";
import path from "node:path";
import { writeJsonAtomic } from "../util/atomic-write.js";
import { isValidUserId } from "../util/ids.js";
import { type MergedCatalog, catalogServers } from "./merge.js";

/** Bytes read from the head of a cache file to find its inputs_hash (written second, right after user_id). */
const HEAD_BYTES = 512;

interface Entry {
  inputsHash: string;
  catalog: MergedCatalog;
}

export interface CachedCatalog {
  catalog: MergedCatalog;
  /** True when `compute` ran for this call. */
  recomputed: boolean;
}

/**
 * Users' merged catalogs, kept in memory by inputs hash and mirrored to `<state-dir>/cache/merged-<user>.json`
 * (derived, safe to delete; docs/architecture.md, "State dir"). A catalog is recomputed only when its inputs hash changes, and
 * its file is rewritten only when the file on disk holds another hash, so a restart does not rewrite every file.
 */
export class MergedCatalogCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly stateDir: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** `cache/merged-<user>.json` under the state dir; throws on an id that is not a valid user id. */
  filePath(userId: string): string {
    if (!isValidUserId(userId))
      throw new Error(`not a valid user id: ${JSON.stringify(userId.slice(0, 64))}`);
    return path.join(this.stateDir, "cache", `merged-${userId}.json`);
  }

  async get(userId: string, inputsHash: string, compute: () => MergedCatalog): Promise<CachedCatalog> {
    const file = this.filePath(userId);
    const cached = this.entries.get(userId);
    if (cached?.inputsHash === inputsHash) return { catalog: cached.catalog, recomputed: false };
    const catalog = compute();
    if ((await readCachedHash(file, userId)) !== inputsHash) {
      await writeJsonAtomic(file, {
        user_id: userId,
        inputs_hash: inputsHash,
        generated_at: this.now().toISOString(),
        servers: catalogServers(catalog),
      });
    }
    this.entries.set(userId, { inputsHash, catalog });
    return { catalog, recomputed: true };
  }

  /** Forgets a user (their directory is gone) and deletes their cache file. */
  async remove(userId: string): Promise<void> {
    const file = this.filePath(userId);
    this.entries.delete(userId);
    await rm(file, { force: true });
  }
}

/** The inputs_hash recorded in this user's cache file, or undefined (missing, unreadable, another user's). */
async function readCachedHash(file: string, userId: string): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(file, "r");
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEAD_BYTES, 0);
    const head = buffer.subarray(0, bytesRead).toString("utf8");
    // userId is a valid user id (letters, digits, "-"), so it is safe inside the pattern.
    const pattern = new RegExp(`^\\{\\s*"user_id": "${userId}",\\s*"inputs_hash": "([^"\\\\]{1,256})"`);
    return pattern.exec(head)?.[1];
  } catch {
    return undefined;
  } finally {
    await handle?.close();
  }
}
