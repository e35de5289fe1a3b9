import type { SecretResolution } from "../desired/user-desired.js";
import type { DigestKey } from "../secrets/digest.js";
import type { KeyRing } from "../secrets/key-ring.js";
import { readSecretsFile, resolveSecrets } from "../secrets/store.js";

export interface SecretKeys {
  keyRing: KeyRing;
  digestKey: DigestKey;
  /** Size cap of secrets.env (MCP_PORTAL_MAX_FILE_BYTES); the default cap when absent. */
  maxFileBytes?: number;
}

/**
 * Decrypts the secrets one user's servers need. Anything that stops us from reading them (no key ring, an
 * unreadable or invalid file) is SecretDecryptFailed, which keeps running containers as they are; only a name
 * that a valid file does not have is MissingSecret.
 */
export async function loadUserSecrets(
  dataDir: string,
  userId: string,
  names: ReadonlySet<string>,
  keys: SecretKeys | undefined,
): Promise<(name: string) => SecretResolution> {
  if (names.size === 0)
    return () => ({ ok: false, reason: "MissingSecret", message: "no secrets requested" });
  if (!keys) {
    return (name) => ({
      ok: false,
      reason: "SecretDecryptFailed",
      message: `secret ${name} cannot be read: no MCP_PORTAL_SECRET_KEYS (or _FILE) configured`,
    });
  }
  let entries;
  try {
    entries = await readSecretsFile(
      dataDir,
      userId,
      keys.maxFileBytes === undefined ? {} : { maxBytes: keys.maxFileBytes },
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return () => ({ ok: false, reason: "SecretDecryptFailed", message });
  }
  const resolved = resolveSecrets(entries, userId, [...names], keys.keyRing, keys.digestKey);
  return (name) => {
    const r = resolved.get(name);
    if (!r)
      return { ok: false, reason: "MissingSecret", message: `secret ${name} is not set for user ${userId}` };
    return r.ok ? r : { ok: false, reason: r.error, message: r.message };
  };
}
