import { NONCE_BYTES, TAG_BYTES } from "./aead.js";
import { KEY_ID_PATTERN } from "./key-ring.js";

/** One sealed value as stored on disk: `enc:v1:<key-id>:<base64(nonce | ciphertext | tag)>`. */
export interface Envelope {
  keyId: string;
  /** base64 of nonce | ciphertext | tag. */
  payload: string;
}

export const ENVELOPE_PREFIX = "enc:v1:";
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function formatEnvelope(envelope: Envelope): string {
  return `${ENVELOPE_PREFIX}${envelope.keyId}:${envelope.payload}`;
}

/**
 * Parses an envelope; on failure returns a reason that never quotes the input (it may be a pasted plaintext).
 */
export function parseEnvelope(
  text: string,
): { ok: true; envelope: Envelope } | { ok: false; reason: string } {
  const parts = text.split(":");
  if (parts[0] !== "enc") {
    return { ok: false, reason: "value is not encrypted (expected enc:v1:<key-id>:<base64>)" };
  }
  if (parts[1] !== "v1") return { ok: false, reason: "unsupported encryption format (expected enc:v1:)" };
  const [, , keyId, payload] = parts;
  if (parts.length !== 4 || keyId === undefined || payload === undefined) {
    return { ok: false, reason: "expected enc:v1:<key-id>:<base64>" };
  }
  if (!KEY_ID_PATTERN.test(keyId)) return { ok: false, reason: `key id must match ${KEY_ID_PATTERN.source}` };
  if (!BASE64.test(payload) || payload.length % 4 !== 0) {
    return { ok: false, reason: "payload is not valid base64" };
  }
  if (Buffer.from(payload, "base64").length < NONCE_BYTES + TAG_BYTES) {
    return { ok: false, reason: "payload is too short to hold a nonce and a tag" };
  }
  return { ok: true, envelope: { keyId, payload } };
}
