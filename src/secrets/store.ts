import * as path from "node:path";
import { type ReadOptions, readCappedFile } from "../catalog/read-json-file.js";
import { writeTreeFile } from "../catalog/tree-write.js";
import { SECRET_NAME_PATTERN, USER_ID_PATTERN } from "../util/ids.js";
import { decryptSecret, encryptSecret } from "./cipher.js";
import type { DigestKey } from "./digest.js";
import { SecretDecryptError, SecretsFileError, SecretUsageError } from "./errors.js";
import type { KeyRing } from "./key-ring.js";
import { parseSecretsFile, serializeSecretsFile, type SecretEntry } from "./secrets-file.js";

/*
 * users/<id>/secrets.env under the data dir, read and written with the data tree's rules (no links under users/,
 * size cap). Writes are atomic with mode 0600. Writers are not locked here: callers hold the user's lock
 * (the state dir's lock file, shared by the CLI and the API) around each read-modify-write.
 */

export const SECRETS_FILE_NAME = "secrets.env";
export const SECRETS_FILE_MODE = 0o600;
/** Upper bound for one value; environment variables are not the place for more. */
export const MAX_SECRET_VALUE_BYTES = 64 * 1024;

export type WriteFile = typeof writeTreeFile;

export function assertUserId(userId: string): void {
  if (!USER_ID_PATTERN.test(userId)) {
    throw new SecretUsageError("SECRET_INVALID_USER_ID", `user id must match ${USER_ID_PATTERN.source}`);
  }
}

export function assertSecretName(name: string): void {
  if (!SECRET_NAME_PATTERN.test(name)) {
    throw new SecretUsageError("SECRET_INVALID_NAME", `secret name must match ${SECRET_NAME_PATTERN.source}`);
  }
}

/** `users/<id>/secrets.env`, relative to the data dir (as used in messages). */
export function secretsFileLabel(userId: string): string {
  return `users/${userId}/${SECRETS_FILE_NAME}`;
}

export function secretsFilePath(dataDir: string, userId: string): string {
  assertUserId(userId);
  return path.join(dataDir, "users", userId, SECRETS_FILE_NAME);
}

/**
 * Reads and parses a user's secrets.env. A missing file (or user dir) means no secrets and yields `[]`;
 * a file that exists but cannot be read or parsed (or is refused: a link, a device, over the size cap) throws
 * SecretsFileError, never `[]`.
 */
export async function readSecretsFile(
  dataDir: string,
  userId: string,
  options: ReadOptions = {},
): Promise<SecretEntry[]> {
  assertUserId(userId);
  const label = secretsFileLabel(userId);
  // The same guarded read as every file of the tree: no links under users/, no devices or FIFOs, size-capped.
  const read = await readCappedFile(dataDir, label, options);
  if (read.status === "missing") return [];
  if (read.status === "invalid") {
    throw new SecretsFileError("SECRETS_FILE_UNREADABLE", label, [
      `${read.problem.file}: ${read.problem.message}`,
    ]);
  }
  const parsed = parseSecretsFile(read.bytes.toString("utf8"));
  if (!parsed.ok) {
    throw new SecretsFileError(
      "SECRETS_FILE_INVALID",
      label,
      parsed.problems.map((problem) => `${label}: ${problem}`),
    );
  }
  return parsed.entries;
}

export interface SecretsWriteOptions {
  /** Create users/<id>/ when it does not exist (the CLI, run by an admin); the API never does. */
  createUserDir?: boolean;
  writeFile?: WriteFile;
}

/** Writes the file atomically (0600); a missing user directory is an error unless `createUserDir`. */
export async function writeSecretsFile(
  dataDir: string,
  userId: string,
  entries: readonly SecretEntry[],
  options: SecretsWriteOptions = {},
): Promise<void> {
  assertUserId(userId);
  const write = options.writeFile ?? writeTreeFile;
  await write(dataDir, secretsFileLabel(userId), serializeSecretsFile(entries), {
    mode: SECRETS_FILE_MODE,
    createDirs: options.createUserDir === true,
  });
}

export interface SecretListing {
  name: string;
  keyId: string;
}

/** Names and key ids of a user's secrets; never values. */
export async function listSecrets(dataDir: string, userId: string): Promise<SecretListing[]> {
  const entries = await readSecretsFile(dataDir, userId);
  return entries.map(({ name, keyId }) => ({ name, keyId }));
}

/** Encrypts `value` under the primary key and stores it, replacing a secret of the same name. */
export async function setSecret(
  dataDir: string,
  userId: string,
  name: string,
  value: string,
  keyRing: KeyRing,
  options: SecretsWriteOptions & ReadOptions = {},
): Promise<{ created: boolean; keyId: string }> {
  assertUserId(userId);
  assertSecretName(name);
  if (value.includes("\0")) {
    throw new SecretUsageError(
      "SECRET_INVALID_VALUE",
      `secret ${name}: value must not contain NUL characters`,
    );
  }
  if (Buffer.byteLength(value, "utf8") > MAX_SECRET_VALUE_BYTES) {
    throw new SecretUsageError(
      "SECRET_INVALID_VALUE",
      `secret ${name}: value exceeds ${MAX_SECRET_VALUE_BYTES} bytes`,
    );
  }
  const entries = await readSecretsFile(dataDir, userId, options);
  const entry: SecretEntry = { name, ...encryptSecret(keyRing, userId, name, value) };
  const index = entries.findIndex((existing) => existing.name === name);
  if (index >= 0) entries[index] = entry;
  else entries.push(entry);
  await writeSecretsFile(dataDir, userId, entries, options);
  return { created: index < 0, keyId: entry.keyId };
}

/** Removes a secret; false when it did not exist (a missing file is not created). */
export async function removeSecret(
  dataDir: string,
  userId: string,
  name: string,
  options: ReadOptions = {},
): Promise<boolean> {
  assertSecretName(name);
  const entries = await readSecretsFile(dataDir, userId, options);
  const remaining = entries.filter((entry) => entry.name !== name);
  if (remaining.length === entries.length) return false;
  await writeSecretsFile(dataDir, userId, remaining);
  return true;
}

export type SecretResolution =
  | { ok: true; value: string; digest: string }
  | { ok: false; error: "MissingSecret" | "SecretDecryptFailed"; message: string };

/**
 * Decrypts the named secrets of one user. Each name gets its value and keyed digest, or an error whose message
 * names the user, the secret and the key id but never a value or key material.
 */
export function resolveSecrets(
  entries: readonly SecretEntry[],
  userId: string,
  names: readonly string[],
  keyRing: KeyRing,
  digestKey: DigestKey,
): Map<string, SecretResolution> {
  const byName = new Map(entries.map((entry) => [entry.name, entry]));
  const result = new Map<string, SecretResolution>();
  for (const name of names) {
    const entry = byName.get(name);
    if (entry === undefined) {
      result.set(name, {
        ok: false,
        error: "MissingSecret",
        message: `secret ${name} is not set for user ${userId} (${secretsFileLabel(userId)})`,
      });
      continue;
    }
    try {
      const value = decryptSecret(keyRing, userId, name, entry);
      result.set(name, { ok: true, value, digest: digestKey.digest(userId, name, value) });
    } catch (error) {
      if (!(error instanceof SecretDecryptError)) throw error;
      result.set(name, { ok: false, error: "SecretDecryptFailed", message: error.message });
    }
  }
  return result;
}
