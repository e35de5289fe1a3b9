import { describe, expect, it } from "vitest";
import { decryptSecret, encryptSecret } from "../../../src/secrets/cipher.js";
import { SecretDecryptError } from "../../../src/secrets/errors.js";
import { generateKey, parseKeyList } from "../../../src/secrets/key-ring.js";

const k1 = generateKey("k1");
const k2 = generateKey("k2");
const ring = parseKeyList(k1);

function decryptErrorOf(fn: () => unknown): SecretDecryptError {
  try {
    fn();
  } catch (error) {
    if (error instanceof SecretDecryptError) return error;
    throw error;
  }
  throw new Error("expected a SecretDecryptError");
}

describe("secret cipher", () => {
  it("round-trips, with a fresh nonce each time", () => {
    const a = encryptSecret(ring, "alice", "TOKEN", "s3cr3t ✓");
    const b = encryptSecret(ring, "alice", "TOKEN", "s3cr3t ✓");
    expect(a.keyId).toBe("k1");
    expect(a.payload).not.toBe(b.payload);
    expect(decryptSecret(ring, "alice", "TOKEN", a)).toBe("s3cr3t ✓");
    expect(decryptSecret(ring, "alice", "TOKEN", b)).toBe("s3cr3t ✓");
    expect(decryptSecret(ring, "alice", "EMPTY", encryptSecret(ring, "alice", "EMPTY", ""))).toBe("");
  });

  it("rejects a tampered ciphertext", () => {
    const envelope = encryptSecret(ring, "alice", "TOKEN", "value");
    const bytes = Buffer.from(envelope.payload, "base64");
    for (const index of [0, 13, bytes.length - 1]) {
      const tampered = Buffer.from(bytes);
      tampered[index] = (tampered[index] ?? 0) ^ 1;
      const error = decryptErrorOf(() =>
        decryptSecret(ring, "alice", "TOKEN", { ...envelope, payload: tampered.toString("base64") }),
      );
      expect(error.code).toBe("SECRET_DECRYPT_FAILED");
    }
  });

  it("rejects a value moved to another user or renamed (AAD)", () => {
    const envelope = encryptSecret(ring, "alice", "TOKEN", "value");
    expect(decryptErrorOf(() => decryptSecret(ring, "bob", "TOKEN", envelope)).code).toBe(
      "SECRET_DECRYPT_FAILED",
    );
    expect(decryptErrorOf(() => decryptSecret(ring, "alice", "OTHER", envelope)).code).toBe(
      "SECRET_DECRYPT_FAILED",
    );
  });

  it("rejects the wrong key under the same id, and an unknown key id", () => {
    const envelope = encryptSecret(ring, "alice", "TOKEN", "value");
    const impostor = parseKeyList(generateKey("k1"));
    const wrong = decryptErrorOf(() => decryptSecret(impostor, "alice", "TOKEN", envelope));
    expect(wrong.code).toBe("SECRET_DECRYPT_FAILED");
    const unknown = decryptErrorOf(() => decryptSecret(parseKeyList(k2), "alice", "TOKEN", envelope));
    expect(unknown.code).toBe("SECRET_UNKNOWN_KEY");
    expect(unknown.message).toContain('"k1"');
    for (const error of [wrong, unknown]) {
      expect(error.message).not.toContain("value");
      expect(error.message).not.toContain(k1.slice(3));
    }
  });

  it("decrypts with a non-primary key of the ring", () => {
    const envelope = encryptSecret(ring, "alice", "TOKEN", "value");
    expect(decryptSecret(parseKeyList(`${k2},${k1}`), "alice", "TOKEN", envelope)).toBe("value");
  });
});
