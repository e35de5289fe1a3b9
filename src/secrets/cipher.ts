import { SecretDecryptError } from "./errors.js";
import type { Envelope } from "./envelope.js";
import type { KeyRing } from "./key-ring.js";

/**
 * Additional authenticated data binding a value to its owner and name: a ciphertext copied to another user
 * or renamed fails to decrypt. User ids and secret names cannot contain `:`, so the join is unambiguous.
 */
export function secretAad(userId: string, name: string): string {
  return `${userId}:${name}`;
}

/** Encrypts a secret value under the ring's primary key with a fresh nonce. */
export function encryptSecret(keyRing: KeyRing, userId: string, name: string, value: string): Envelope {
  const { keyId, sealed } = keyRing.seal(Buffer.from(value, "utf8"), secretAad(userId, name));
  return { keyId, payload: sealed.toString("base64") };
}

/** Decrypts a secret value; throws SecretDecryptError (naming user, secret and key id only) on failure. */
export function decryptSecret(keyRing: KeyRing, userId: string, name: string, envelope: Envelope): string {
  if (!keyRing.has(envelope.keyId)) {
    throw new SecretDecryptError(
      "SECRET_UNKNOWN_KEY",
      `secret ${name} of user ${userId} is encrypted with key "${envelope.keyId}", which is not in the key ring`,
    );
  }
  const plaintext = keyRing.open(
    envelope.keyId,
    Buffer.from(envelope.payload, "base64"),
    secretAad(userId, name),
  );
  if (plaintext === undefined) {
    throw new SecretDecryptError(
      "SECRET_DECRYPT_FAILED",
      `secret ${name} of user ${userId} failed to decrypt with key "${envelope.keyId}" ` +
        "(wrong key material, tampered, or copied from another user or secret name)",
    );
  }
  return plaintext.toString("utf8");
}
