import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import { link, mkdir, open, readFile, rm } from "node:fs/promises";
import * as path from "node:path";
import { writeFileAtomic } from "../util/atomic-write.js";
import { formatEnvelope, parseEnvelope } from "./envelope.js";
import { SecretKeyError } from "./errors.js";
import type { KeyRing } from "./key-ring.js";

/*
 * Secret digests go into the container spec hash (a label anyone with `docker inspect` can read), so a changed
 * value replaces the container without the value leaking. Choices:
 *  - Keyed, never a bare hash: a label reader must not be able to brute-force a low-entropy secret offline.
 *  - Stable across key rotation: deriving the HMAC key from the primary key (or from all keys, or the oldest one)
 *    would change every digest on rotation or on retiring an old key, and so replace every container at once.
 * So the HMAC key comes from a random 32-byte seed created once and stored in the state dir as
 * `secret-digest.key`, sealed under the key ring like any secret (AAD "mcp-portal/secret-digest-key", which no
 * user secret can have since user ids contain no `/`). `secrets rotate` re-encrypts the seed under the new
 * primary key, so the seed (and every digest) survives rotation and retirement of old keys. HMAC key =
 * HKDF-SHA256(seed, info "mcp-portal secret digest"); digest = hex HMAC-SHA256 over `<user>:<NAME>:<value>`.
 * An existing seed that cannot be read or decrypted is an error, never silently replaced. Deleting the state
 * dir makes a new seed: every container with secrets is then replaced once (no data is lost).
 */

export const DIGEST_KEY_FILE = "secret-digest.key";
const DIGEST_KEY_AAD = "mcp-portal/secret-digest-key";
const HKDF_INFO = "mcp-portal secret digest";
const SEED_BYTES = 32;

export class DigestKey {
  readonly #hmacKey: Buffer;

  private constructor(hmacKey: Buffer) {
    this.#hmacKey = hmacKey;
  }

  static fromSeed(seed: Uint8Array): DigestKey {
    return new DigestKey(Buffer.from(hkdfSync("sha256", seed, Buffer.alloc(0), HKDF_INFO, 32)));
  }

  /** Hex HMAC-SHA256 of `<user>:<NAME>:<value>`. */
  digest(userId: string, name: string, value: string): string {
    return createHmac("sha256", this.#hmacKey).update(`${userId}:${name}:${value}`, "utf8").digest("hex");
  }

  toJSON(): string {
    return "[DigestKey]";
  }
}

export function digestKeyPath(stateDir: string): string {
  return path.join(stateDir, DIGEST_KEY_FILE);
}

function invalid(file: string, reason: string): SecretKeyError {
  return new SecretKeyError("SECRET_DIGEST_KEY_INVALID", `${file}: ${reason}`);
}

async function readDigestKeyFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    throw invalid(file, `cannot read (${code ?? "unknown error"})`);
  }
}

/** Decrypts the stored seed; returns it with the id of the key that sealed it. */
function openSeed(text: string, file: string, keyRing: KeyRing): { seed: Buffer; keyId: string } {
  const parsed = parseEnvelope(text.trim());
  if (!parsed.ok) throw invalid(file, parsed.reason);
  const { keyId, payload } = parsed.envelope;
  if (!keyRing.has(keyId)) throw invalid(file, `sealed with key "${keyId}", which is not in the key ring`);
  const seed = keyRing.open(keyId, Buffer.from(payload, "base64"), DIGEST_KEY_AAD);
  if (seed === undefined) throw invalid(file, `failed to decrypt with key "${keyId}"`);
  if (seed.length !== SEED_BYTES) throw invalid(file, `seed must be ${SEED_BYTES} bytes`);
  return { seed, keyId };
}

function sealSeed(seed: Uint8Array, keyRing: KeyRing): string {
  const { keyId, sealed } = keyRing.seal(seed, DIGEST_KEY_AAD);
  return `${formatEnvelope({ keyId, payload: sealed.toString("base64") })}\n`;
}

/**
 * Writes `text` to `file` only if `file` does not exist yet, atomically (temp file + link), so two processes
 * starting at once agree on one seed. Returns false when another writer won.
 */
async function createExclusive(file: string, text: string): Promise<boolean> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx", 0o600);
  try {
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(tmp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    await rm(tmp, { force: true });
  }
  await syncDirectory(dir);
  return true;
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the link is still atomic there.
  }
}

/** Loads the digest key from `<stateDir>/secret-digest.key`, creating a random one on first use. */
export async function loadDigestKey(stateDir: string, keyRing: KeyRing): Promise<DigestKey> {
  const file = digestKeyPath(stateDir);
  let text = await readDigestKeyFile(file);
  if (text === undefined) {
    const seed = randomBytes(SEED_BYTES);
    if (await createExclusive(file, sealSeed(seed, keyRing))) return DigestKey.fromSeed(seed);
    text = await readDigestKeyFile(file);
    if (text === undefined) throw invalid(file, "vanished while being created");
  }
  return DigestKey.fromSeed(openSeed(text, file, keyRing).seed);
}

export type DigestKeyRotation =
  | { status: "absent" }
  | { status: "current"; keyId: string }
  | { status: "rotated"; fromKeyId: string; toKeyId: string }
  | { status: "failed"; error: string };

/** Re-seals the digest seed under the primary key (same seed, so digests do not change). */
export async function rotateDigestKey(
  stateDir: string,
  keyRing: KeyRing,
  writeFile: typeof writeFileAtomic = writeFileAtomic,
): Promise<DigestKeyRotation> {
  const file = digestKeyPath(stateDir);
  try {
    const text = await readDigestKeyFile(file);
    if (text === undefined) return { status: "absent" };
    const { seed, keyId } = openSeed(text, file, keyRing);
    if (keyId === keyRing.primaryKeyId) return { status: "current", keyId };
    const sealed = sealSeed(seed, keyRing);
    const check = openSeed(sealed, file, keyRing);
    if (!check.seed.equals(seed)) throw invalid(file, "re-encryption did not round-trip");
    await writeFile(file, sealed, { mode: 0o600 });
    return { status: "rotated", fromKeyId: keyId, toKeyId: keyRing.primaryKeyId };
  } catch (error) {
    return { status: "failed", error: error instanceof Error ? error.message : String(error) };
  }
}
