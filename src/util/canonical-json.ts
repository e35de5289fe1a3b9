import { createHash } from "node:crypto";

/** JSON with object keys sorted at every depth, so equal values always serialise (and hash) the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export function canonicalHash(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}

/**
 * The first `hexChars` (even) hex digits of canonicalHash(value), as a string of their own: a slice of the full
 * digest would keep all 64 characters alive, which adds up over a fleet's specs.
 */
export function canonicalHashPrefix(value: unknown, hexChars: number): string {
  return createHash("sha256")
    .update(canonicalJson(value))
    .digest()
    .toString("hex", 0, hexChars / 2);
}
