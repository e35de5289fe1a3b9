import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open, rename, rm } from "node:fs/promises";
import path from "node:path";

export interface AtomicWriteOptions {
  mode?: number;
  /** Open flags of the temp file (default "wx": create, fail if it exists); the data tree adds O_NOFOLLOW. */
  flags?: string | number;
  /** Checks the opened temp file before anything is written (e.g. that it is where it was asked to be). */
  verify?: (handle: FileHandle, tmp: string) => Promise<void>;
  /** Create the directory when missing (default true). */
  mkdir?: boolean;
}

/**
 * Writes via a temp file in the same directory, fsyncs it, renames it over the target and fsyncs the
 * directory, so readers (and a crash) see either the old or the new content, never a mix.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const dir = path.dirname(file);
  if (options.mkdir !== false) await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const mode = options.mode ?? 0o644;
  const handle = await open(tmp, options.flags ?? "wx", mode);
  try {
    await options.verify?.(handle, tmp);
    await handle.writeFile(data);
    await handle.chmod(mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

/** fsync of a directory, so a rename in it survives a crash (best effort: some filesystems refuse it). */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}

export async function writeJsonAtomic(
  file: string,
  value: unknown,
  options: AtomicWriteOptions = {},
): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, options);
}
