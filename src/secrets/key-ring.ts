import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { KEY_BYTES, open, seal } from "./aead.js";
import { SecretKeyError } from "./errors.js";

export const KEY_ID_PATTERN = /^[a-zA-Z0-9_-]{1,32}$/;
export const SECRET_KEYS_ENV = "MCP_PORTAL_SECRET_KEYS";
export const SECRET_KEYS_FILE_ENV = "MCP_PORTAL_SECRET_KEYS_FILE";

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * The encryption keys, primary first. The primary key encrypts; every key decrypts (chosen by key id).
 * Key bytes live in a private field: they never appear in `JSON.stringify`, `util.inspect` or error messages.
 */
export class KeyRing {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly primaryKeyId: string;
  readonly keyIds: readonly string[];

  private constructor(keys: ReadonlyMap<string, Buffer>) {
    const ids = [...keys.keys()];
    const primary = ids[0];
    if (primary === undefined) throw new SecretKeyError("SECRET_KEYS_MISSING", "the key ring holds no keys");
    this.#keys = keys;
    this.primaryKeyId = primary;
    this.keyIds = ids;
  }

  /** Builds a ring from `[id, 32 key bytes]` pairs, primary first. */
  static fromKeys(keys: Iterable<readonly [string, Uint8Array]>): KeyRing {
    const map = new Map<string, Buffer>();
    let index = 0;
    for (const [id, bytes] of keys) {
      index += 1;
      if (!KEY_ID_PATTERN.test(id)) {
        throw new SecretKeyError(
          "SECRET_KEY_INVALID_ID",
          `key ${index}: key id must match ${KEY_ID_PATTERN.source}`,
        );
      }
      if (bytes.length !== KEY_BYTES) {
        throw new SecretKeyError(
          "SECRET_KEY_INVALID_LENGTH",
          `key ${index} ("${id}"): must be ${KEY_BYTES} bytes, got ${bytes.length}`,
        );
      }
      if (map.has(id)) {
        throw new SecretKeyError("SECRET_KEY_DUPLICATE_ID", `key ${index}: duplicate key id "${id}"`);
      }
      map.set(id, Buffer.from(bytes));
    }
    return new KeyRing(map);
  }

  has(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  /** Encrypts under the primary key. */
  seal(plaintext: Uint8Array, aad: string): { keyId: string; sealed: Buffer } {
    const key = this.#keys.get(this.primaryKeyId);
    if (key === undefined) throw new Error("unreachable: primary key missing");
    return { keyId: this.primaryKeyId, sealed: seal(key, plaintext, aad) };
  }

  /** Decrypts with the named key; undefined for an unknown key id or a failed authentication. */
  open(keyId: string, sealed: Uint8Array, aad: string): Buffer | undefined {
    const key = this.#keys.get(keyId);
    return key === undefined ? undefined : open(key, sealed, aad);
  }

  toJSON(): { primaryKeyId: string; keyIds: readonly string[] } {
    return { primaryKeyId: this.primaryKeyId, keyIds: this.keyIds };
  }
}

/**
 * Parses `<key-id>:<base64 of 32 bytes>` items. `items` are [label, text] pairs where the label says where the
 * item came from ("MCP_PORTAL_SECRET_KEYS item 2", "keys.txt line 3"); errors name the label, never the text.
 */
function parseKeyItems(items: readonly (readonly [string, string])[], source: string): KeyRing {
  if (items.length === 0) throw new SecretKeyError("SECRET_KEYS_MISSING", `${source} contains no keys`);
  const map = new Map<string, Buffer>();
  for (const [label, text] of items) {
    const colon = text.indexOf(":");
    if (colon < 0) {
      throw new SecretKeyError(
        "SECRET_KEY_MALFORMED",
        `${label}: expected <key-id>:<base64 of ${KEY_BYTES} bytes>`,
      );
    }
    const id = text.slice(0, colon).trim();
    const encoded = text.slice(colon + 1).trim();
    if (!KEY_ID_PATTERN.test(id)) {
      throw new SecretKeyError(
        "SECRET_KEY_INVALID_ID",
        `${label}: key id must match ${KEY_ID_PATTERN.source}`,
      );
    }
    if (!BASE64.test(encoded) || encoded.length % 4 !== 0) {
      throw new SecretKeyError("SECRET_KEY_MALFORMED", `${label} ("${id}"): key is not valid base64`);
    }
    const bytes = Buffer.from(encoded, "base64");
    if (bytes.length !== KEY_BYTES) {
      throw new SecretKeyError(
        "SECRET_KEY_INVALID_LENGTH",
        `${label} ("${id}"): key must decode to ${KEY_BYTES} bytes, got ${bytes.length}`,
      );
    }
    if (map.has(id)) {
      throw new SecretKeyError("SECRET_KEY_DUPLICATE_ID", `${label}: duplicate key id "${id}"`);
    }
    map.set(id, bytes);
  }
  return KeyRing.fromKeys(map);
}

/** Parses the comma-separated `MCP_PORTAL_SECRET_KEYS` form. Empty items (a trailing comma) are ignored. */
export function parseKeyList(text: string, source = SECRET_KEYS_ENV): KeyRing {
  const items = text
    .split(",")
    .map((item, i) => [`${source} item ${i + 1}`, item.trim()] as const)
    .filter(([, item]) => item !== "");
  return parseKeyItems(items, source);
}

/** Parses a key file: one key per line; blank lines and `#` comments are ignored. */
export function parseKeyFile(text: string, source: string): KeyRing {
  const items = text
    .split(/\r?\n/)
    .map((line, i) => [`${source} line ${i + 1}`, line.trim()] as const)
    .filter(([, line]) => line !== "" && !line.startsWith("#"));
  return parseKeyItems(items, source);
}

/**
 * Loads the ring from `MCP_PORTAL_SECRET_KEYS` or the file named by `MCP_PORTAL_SECRET_KEYS_FILE`.
 * Setting both is an error (which one wins would be a guess).
 */
export async function loadKeyRing(env: NodeJS.ProcessEnv): Promise<KeyRing> {
  const list = env[SECRET_KEYS_ENV];
  const file = env[SECRET_KEYS_FILE_ENV];
  const hasList = list !== undefined && list.trim() !== "";
  const hasFile = file !== undefined && file.trim() !== "";
  if (hasList && hasFile) {
    throw new SecretKeyError(
      "SECRET_KEYS_AMBIGUOUS",
      `set either ${SECRET_KEYS_ENV} or ${SECRET_KEYS_FILE_ENV}, not both`,
    );
  }
  if (hasList) return parseKeyList(list);
  if (hasFile) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
      throw new SecretKeyError(
        "SECRET_KEYS_FILE_UNREADABLE",
        `${SECRET_KEYS_FILE_ENV}: cannot read ${file} (${code})`,
      );
    }
    return parseKeyFile(text, file);
  }
  throw new SecretKeyError(
    "SECRET_KEYS_MISSING",
    `no secret keys configured: set ${SECRET_KEYS_ENV} or ${SECRET_KEYS_FILE_ENV} (generate one with "mcp-portal secrets gen-key <id>")`,
  );
}

/** A new key line `<id>:<base64 of 32 random bytes>` for MCP_PORTAL_SECRET_KEYS or a key file. */
export function generateKey(id: string): string {
  if (!KEY_ID_PATTERN.test(id)) {
    throw new SecretKeyError("SECRET_KEY_INVALID_ID", `key id must match ${KEY_ID_PATTERN.source}`);
  }
  return `${id}:${randomBytes(KEY_BYTES).toString("base64")}`;
}
