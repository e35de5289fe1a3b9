import { readdir } from "node:fs/promises";
import * as path from "node:path";
import { writeTreeFile } from "../catalog/tree-write.js";
import { isValidUserId } from "../util/ids.js";
import { decryptSecret, encryptSecret } from "./cipher.js";
import { rotateDigestKey, type DigestKeyRotation } from "./digest.js";
import type { KeyRing } from "./key-ring.js";
import type { SecretEntry } from "./secrets-file.js";
import { readSecretsFile, secretsFileLabel, writeSecretsFile, type WriteFile } from "./store.js";

export interface RotateOptions {
  dataDir: string;
  /** When given, `<stateDir>/secret-digest.key` is re-sealed too (its seed, and so every digest, is kept). */
  stateDir?: string;
  keyRing: KeyRing;
  /** Injectable for tests (crash simulation); defaults to the data tree's atomic writer. */
  writeFile?: WriteFile;
  /**
   * Runs one user's read-modify-write under that user's lock (the CLI passes the state dir's lock files, so a
   * concurrent API write is never lost); unlocked when absent.
   */
  lockUser?: <T>(userId: string, task: () => Promise<T>) => Promise<T>;
}

export type FileRotation =
  | { userId: string; file: string; status: "rotated" | "current"; total: number; reencrypted: number }
  | { userId: string; file: string; status: "failed"; error: string };

export interface RotationReport {
  files: FileRotation[];
  /** Entries under users/ that are not user directories; never touched. */
  skipped: { entry: string; reason: string }[];
  digestKey: DigestKeyRotation;
  ok: boolean;
}

/**
 * Re-encrypts every users/<id>/secrets.env under the primary key. A file is rewritten (atomically) only after
 * every value in it decrypted and every new value was checked to decrypt back to the same plaintext; a file with
 * any undecryptable value is left untouched and reported. A crash leaves each file either old or new, and both
 * decrypt with a ring that holds the old and the new key. Files already on the primary key are not rewritten.
 */
export async function rotateSecrets(options: RotateOptions): Promise<RotationReport> {
  const { dataDir, keyRing } = options;
  const writeFile = options.writeFile ?? writeTreeFile;
  const lockUser = options.lockUser ?? (<T>(_userId: string, task: () => Promise<T>) => task());
  const files: FileRotation[] = [];
  const skipped: RotationReport["skipped"] = [];

  for (const dirent of await listUserDirs(dataDir)) {
    if (!dirent.isDirectory()) {
      if (dirent.isSymbolicLink())
        skipped.push({ entry: dirent.name, reason: "symbolic link, not a directory" });
      continue;
    }
    if (!isValidUserId(dirent.name)) {
      skipped.push({ entry: dirent.name, reason: "directory name is not a valid user id" });
      continue;
    }
    const userId = dirent.name;
    const result = await lockUser(userId, () => rotateUser(dataDir, userId, keyRing, writeFile)).catch(
      (error: unknown): FileRotation => ({
        userId,
        file: secretsFileLabel(userId),
        status: "failed",
        error: error instanceof Error ? error.message : String(error),
      }),
    );
    if (result !== undefined) files.push(result);
  }

  const digestKey: DigestKeyRotation =
    options.stateDir === undefined ? { status: "absent" } : await rotateDigestKey(options.stateDir, keyRing);
  const ok = files.every((file) => file.status !== "failed") && digestKey.status !== "failed";
  return { files, skipped, digestKey, ok };
}

async function listUserDirs(dataDir: string) {
  try {
    const dirents = await readdir(path.join(dataDir, "users"), { withFileTypes: true });
    return dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

/** Undefined when the user has no secrets file (or an empty one): nothing to report. */
async function rotateUser(
  dataDir: string,
  userId: string,
  keyRing: KeyRing,
  writeFile: WriteFile,
): Promise<FileRotation | undefined> {
  const file = secretsFileLabel(userId);
  const fail = (error: unknown): FileRotation => ({
    userId,
    file,
    status: "failed",
    error: error instanceof Error ? error.message : String(error),
  });

  let entries: SecretEntry[];
  try {
    entries = await readSecretsFile(dataDir, userId);
  } catch (error) {
    return fail(error);
  }
  if (entries.length === 0) return undefined;

  const problems: string[] = [];
  const next: SecretEntry[] = [];
  let reencrypted = 0;
  for (const entry of entries) {
    try {
      const value = decryptSecret(keyRing, userId, entry.name, entry);
      if (entry.keyId === keyRing.primaryKeyId) {
        next.push(entry);
        continue;
      }
      const sealed: SecretEntry = { name: entry.name, ...encryptSecret(keyRing, userId, entry.name, value) };
      if (decryptSecret(keyRing, userId, entry.name, sealed) !== value) {
        throw new Error(`secret ${entry.name}: re-encryption did not round-trip`);
      }
      next.push(sealed);
      reencrypted += 1;
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
    }
  }
  if (problems.length > 0) return fail(new Error(`${file}: not rewritten: ${problems.join("; ")}`));
  if (reencrypted === 0) return { userId, file, status: "current", total: entries.length, reencrypted };

  try {
    await writeSecretsFile(dataDir, userId, next, { writeFile });
  } catch (error) {
    return fail(error);
  }
  return { userId, file, status: "rotated", total: entries.length, reencrypted };
}
