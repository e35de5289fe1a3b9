import { z } from "zod";
import { EgressDenialLine } from "../contracts/egress-policy.js";
import { compareTimestamps, timestampParts } from "../docker/log-lines.js";
import type { LogLine } from "../docker/runtime.js";

/*
 * Pure part of reading users' egress proxies' denial lines back (README, "Network egress"): which log lines are
 * new since the cursor, which of them are valid denial lines of the proxy's own user, and the cursor's file
 * format. The collector (egress-denial-collector.ts) does the I/O.
 */

/** Most proxies the cursor file remembers (one per user with a restricted server). */
export const MAX_CURSOR_PROXIES = 100_000;

const Timestamp = z.string().refine((t) => timestampParts(t) !== undefined, "an RFC 3339 UTC timestamp");

/**
 * Where reading a proxy's log goes on: the engine timestamp of the last line taken, and how many lines carrying
 * exactly that timestamp were taken (the engine's `since` is inclusive, so they come back once more).
 */
export const ProxyCursor = z.strictObject({
  last: Timestamp,
  taken_at_last: z.number().int().min(1).max(1_000_000),
});
export type ProxyCursor = z.infer<typeof ProxyCursor>;

/** `<state-dir>/egress-denials.json`: per proxy container id, its cursor. */
export const DenialCursorFile = z.strictObject({
  version: z.literal(1),
  proxies: z
    .record(z.string().regex(/^[0-9a-zA-Z_.-]{1,128}$/), ProxyCursor)
    .refine((p) => Object.keys(p).length <= MAX_CURSOR_PROXIES, "too many proxies"),
});
export type DenialCursorFile = z.infer<typeof DenialCursorFile>;

export const DENIAL_CURSOR_FILE = "egress-denials.json";

/** The lines after `cursor` (in log order), and the cursor after them. */
export function linesAfter(
  lines: readonly LogLine[],
  cursor: ProxyCursor | undefined,
): { fresh: LogLine[]; cursor: ProxyCursor | undefined } {
  let skipAtLast = cursor?.taken_at_last ?? 0;
  const fresh: LogLine[] = [];
  for (const line of lines) {
    if (cursor) {
      const order = compareTimestamps(line.timestamp, cursor.last);
      if (order < 0) continue;
      if (order === 0 && skipAtLast > 0) {
        skipAtLast--;
        continue;
      }
    }
    fresh.push(line);
  }
  return { fresh, cursor: advance(cursor, fresh) };
}

/** The cursor once `taken` (consecutive lines following `cursor`) have been handled. */
export function advance(cursor: ProxyCursor | undefined, taken: readonly LogLine[]): ProxyCursor | undefined {
  let next = cursor;
  for (const line of taken) {
    next =
      next && compareTimestamps(line.timestamp, next.last) === 0
        ? { last: next.last, taken_at_last: next.taken_at_last + 1 }
        : { last: line.timestamp, taken_at_last: 1 };
  }
  return next;
}

export type DenialParse =
  | { kind: "denial"; line: EgressDenialLine }
  /** Another line of the proxy (its start message): not a denial, skipped. */
  | { kind: "other" }
  /** Says it is a denial but breaks the contract, or names another user: skipped and counted. */
  | { kind: "invalid"; reason: string };

/** A proxy's stdout line as a denial line of `user`'s proxy (zod-checked: it crossed a process boundary). */
export function parseDenialLine(text: string, user: string): DenialParse {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: "other" };
  }
  if (typeof value !== "object" || value === null || (value as { msg?: unknown }).msg !== "egress_denied")
    return { kind: "other" };
  const parsed = EgressDenialLine.safeParse(value);
  if (!parsed.success)
    return { kind: "invalid", reason: parsed.error.issues[0]?.message ?? "not a denial line" };
  if (parsed.data.user !== user)
    return { kind: "invalid", reason: `names user "${parsed.data.user}", the proxy is "${user}"'s` };
  return { kind: "denial", line: parsed.data };
}
