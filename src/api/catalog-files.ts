import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { DATA_PATHS, listUserDirs } from "../catalog/data-tree.js";
import { readCappedFile } from "../catalog/read-json-file.js";
import type { BaseCatalogFile } from "../schema/catalog.js";
import { writeTreeFile } from "../catalog/tree-write.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { sha256Hex } from "../util/canonical-json.js";
import { LockNames } from "../util/state-locks.js";
import { type ApiContext, dataRoot } from "./deps.js";
import { ApiError, invalidDesiredState, notFound } from "./errors.js";
import { baseCatalogProblems } from "./write-checks.js";

export interface CatalogWriteOutcome {
  name: string;
  file: string;
  created: boolean;
  changed: boolean;
  /** Path of the previous version, relative to the state dir. */
  backup?: string;
  users_enqueued: number;
}

export function baseCatalogFile(name: string): string {
  return `${DATA_PATHS.baseDir}/${name}.json`;
}

/**
 * Stores a base catalog: validated against the rest of the tree first (422 with validate's messages, nothing
 * written), the previous version copied to `<state-dir>/backups/catalogs/base/<name>.<timestamp>.json`, the new
 * one written atomically, then every user reconciles. `catalog` is the body as sent (input shape) and
 * `parsed` its validated form.
 */
export function storeBaseCatalog(
  ctx: ApiContext,
  name: string,
  catalog: z.input<typeof BaseCatalogFile>,
  parsed: BaseCatalogFile,
  options: { mustExist: boolean },
): Promise<CatalogWriteOutcome> {
  const { overlays, maxFileBytes } = ctx.deps.config;
  const file = baseCatalogFile(name);
  const text = `${JSON.stringify(catalog, null, 2)}\n`;
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > maxFileBytes) {
    return Promise.reject(
      new ApiError(
        413,
        "CATALOG_TOO_LARGE",
        `${file} would be ${bytes} bytes, over the ${maxFileBytes}-byte cap`,
      ),
    );
  }
  return ctx.locks.run(LockNames.baseCatalogs, "api: store base catalog", async () => {
    const dataDir = await dataRoot(ctx);
    const existing = await readCappedFile(dataDir, file, { maxBytes: Number.MAX_SAFE_INTEGER });
    if (existing.status === "invalid") {
      // Unreadable or not a regular file: never overwrite what we cannot back up.
      throw new ApiError(409, "CATALOG_UNREADABLE", `${file} cannot be read, so it is not replaced`, [
        existing.problem,
      ]);
    }
    if (options.mustExist && existing.status === "missing")
      throw notFound(`base catalog "${name}" does not exist (${file})`);
    const created = existing.status === "missing";
    if (!created && existing.bytes.toString("utf8") === text) {
      return { name, file, created, changed: false, users_enqueued: 0 };
    }
    const problems = await baseCatalogProblems(
      { dataDir, overlays, read: { maxBytes: maxFileBytes } },
      { file, hash: sha256Hex(text), catalog: parsed },
    );
    if (problems.length > 0) throw invalidDesiredState(problems);
    let backup: string | undefined;
    if (existing.status === "ok") backup = await writeBackup(ctx, name, existing.bytes);
    await writeTreeFile(dataDir, file, text, { createDirs: true });
    ctx.deps.global.invalidate();
    const users = await enqueueAllUsers(ctx, dataDir);
    return { name, file, created, changed: true, ...(backup ? { backup } : {}), users_enqueued: users };
  });
}

async function writeBackup(ctx: ApiContext, name: string, bytes: Buffer): Promise<string> {
  const dir = path.join(ctx.deps.config.stateDir, "backups", DATA_PATHS.baseDir);
  // Sortable and free of ":" (Windows-safe, shell-friendly): 20240131T120000.123Z
  const stamp = ctx.now().toISOString().replace(/[-:]/g, "");
  let target = `${name}.${stamp}.json`;
  const taken = new Set(await readdir(dir).catch(() => [] as string[]));
  for (let n = 1; taken.has(target); n++) target = `${name}.${stamp}-${n}.json`;
  await writeFileAtomic(path.join(dir, target), bytes, { mode: 0o600 });
  await pruneBackups(dir, name, ctx.limits.backupsKept);
  return path.posix.join("backups", DATA_PATHS.baseDir, target);
}

/** Keeps the newest `keep` backups of one catalog (names sort by time). */
async function pruneBackups(dir: string, name: string, keep: number): Promise<void> {
  const pattern = new RegExp(`^${name}\\.\\d{8}T\\d{6}\\.\\d{3}Z(?:-\\d+)?\\.json$`);
  const mine = (await readdir(dir)).filter((f) => pattern.test(f)).sort(compareBackups);
  for (const old of mine.slice(0, Math.max(0, mine.length - keep)))
    await rm(path.join(dir, old), { force: true });
}

function compareBackups(a: string, b: string): number {
  const key = (f: string) => {
    const m = /\.(\d{8}T\d{6}\.\d{3}Z)(?:-(\d+))?\.json$/.exec(f);
    return [m?.[1] ?? "", Number(m?.[2] ?? 0)] as const;
  };
  const [ta, na] = key(a);
  const [tb, nb] = key(b);
  return ta !== tb ? (ta < tb ? -1 : 1) : na - nb;
}

/** Every user with a valid directory is looked at again (the watcher would notice the file too). */
export async function enqueueAllUsers(ctx: ApiContext, root: string): Promise<number> {
  const { names } = await listUserDirs(root);
  for (const userId of names) ctx.deps.controller.enqueue(userId);
  return names.length;
}
