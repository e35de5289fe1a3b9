import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/*
 * API tokens: `mcp_<id>_<secret>`. The id (8 random bytes, hex) is public and finds the record; the secret
 * (32 random bytes, base64url) makes the token unguessable. Only sha256(token) is stored: the token is
 * high-entropy, so a fast hash is enough and a stolen tokens.json yields no usable token.
 */

export const TOKEN_ID_PATTERN = /^[0-9a-f]{16}$/;
const TOKEN_PATTERN = /^mcp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface GeneratedToken {
  id: string;
  /** Shown once, never stored. */
  token: string;
  hash: string;
}

export function generateToken(): GeneratedToken {
  const id = randomBytes(8).toString("hex");
  const token = `mcp_${id}_${randomBytes(32).toString("base64url")}`;
  return { id, token, hash: hashToken(token) };
}

/** The id of a well-formed token, or undefined. */
export function tokenId(token: string): string | undefined {
  return TOKEN_PATTERN.exec(token)?.[1];
}

/** sha256 of the token, hex. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Constant-time comparison of two sha256 digests (hex or raw); false when either is malformed. */
export function digestsEqual(a: string | Buffer, b: string | Buffer): boolean {
  const left = typeof a === "string" ? Buffer.from(a, "hex") : a;
  const right = typeof b === "string" ? Buffer.from(b, "hex") : b;
  if (left.length !== 32 || right.length !== 32) return false;
  return timingSafeEqual(left, right);
}
