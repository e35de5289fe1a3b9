import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "../util/atomic-write.js";
import { DEFAULT_LOCK_SETTINGS, type LockSettings, withFileLock } from "../util/file-lock.js";
import { UserId } from "../util/ids.js";
import { LockNames, lockFile } from "../util/state-locks.js";
import { TOKEN_ID_PATTERN, generateToken } from "./token-format.js";

/*
 * <state-dir>/tokens.json: `{ "tokens": [{ "id", "user_id", "hash", "created_at" }] }`, mode 0600, written
 * atomically by `mcp-portal tokens` under the state dir's `tokens` lock (so concurrent commands lose nothing),
 * read by the API (re-read whenever the file changes).
 */

export const TOKENS_FILE_NAME = "tokens.json";
export const TOKENS_FILE_MODE = 0o600;

export const TokenRecord = z.strictObject({
  id: z.string().regex(TOKEN_ID_PATTERN, "token id must be 16 hex characters"),
  user_id: UserId,
  hash: z.string().regex(/^[0-9a-f]{64}$/, "hash must be a hex sha256 digest"),
  created_at: z.iso.datetime({ offset: true }),
});
export type TokenRecord = z.infer<typeof TokenRecord>;

export const TokensFile = z
  .strictObject({ tokens: z.array(TokenRecord).max(100_000) })
  .superRefine((file, ctx) => {
    const seen = new Set<string>();
    file.tokens.forEach((token, i) => {
      if (seen.has(token.id))
        ctx.addIssue({
          code: "custom",
          path: ["tokens", i, "id"],
          message: `duplicate token id ${token.id}`,
        });
      seen.add(token.id);
    });
  });

export class TokenStoreError extends Error {
  readonly code = "TOKEN_STORE_INVALID";
  override readonly name = "TokenStoreError";
}

export function tokensFilePath(stateDir: string): string {
  return path.join(stateDir, TOKENS_FILE_NAME);
}

/** The records of tokens.json; `[]` when the file does not exist; throws TokenStoreError when it is unusable. */
export async function readTokens(stateDir: string): Promise<TokenRecord[]> {
  const file = tokensFilePath(stateDir);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new TokenStoreError(`${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  return parseTokens(file, text);
}

function parseTokens(file: string, text: string): TokenRecord[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new TokenStoreError(`${file}: not valid JSON`);
  }
  const parsed = TokensFile.safeParse(raw);
  if (!parsed.success) {
    const reasons = parsed.error.issues.map((i) => `$.${i.path.join(".")}: ${i.message}`).join("; ");
    throw new TokenStoreError(`${file}: ${reasons}`);
  }
  return parsed.data.tokens;
}

export async function writeTokens(stateDir: string, tokens: readonly TokenRecord[]): Promise<void> {
  await writeJsonAtomic(tokensFilePath(stateDir), { tokens }, { mode: TOKENS_FILE_MODE });
}

/** Adds a token for `userId`; the plain token is returned once and never stored. */
export async function createToken(
  stateDir: string,
  userId: string,
  now: Date = new Date(),
  locks: LockSettings = DEFAULT_LOCK_SETTINGS,
): Promise<{ record: TokenRecord; token: string }> {
  const user = UserId.safeParse(userId);
  if (!user.success) throw new TokenStoreError(`user id must match ^[a-zA-Z0-9-]{1,32}$`);
  const generated = generateToken();
  const record: TokenRecord = {
    id: generated.id,
    user_id: user.data,
    hash: generated.hash,
    created_at: now.toISOString(),
  };
  await withTokensLock(stateDir, "tokens create", locks, async () => {
    await writeTokens(stateDir, [...(await readTokens(stateDir)), record]);
  });
  return { record, token: generated.token };
}

/** Removes a token by id; false when there was none. */
export function revokeToken(
  stateDir: string,
  id: string,
  locks: LockSettings = DEFAULT_LOCK_SETTINGS,
): Promise<boolean> {
  return withTokensLock(stateDir, "tokens revoke", locks, async () => {
    const tokens = await readTokens(stateDir);
    const remaining = tokens.filter((token) => token.id !== id);
    if (remaining.length === tokens.length) return false;
    await writeTokens(stateDir, remaining);
    return true;
  });
}

function withTokensLock<T>(
  stateDir: string,
  purpose: string,
  locks: LockSettings,
  task: () => Promise<T>,
): Promise<T> {
  return withFileLock(lockFile(stateDir, LockNames.tokens), purpose, locks, task);
}

export type TokenSnapshot =
  { status: "ok"; byId: ReadonlyMap<string, TokenRecord> } | { status: "invalid"; message: string };

/**
 * tokens.json as the API sees it, re-read only when the file changes (one stat per call; an atomic rename
 * always changes the inode). A file that cannot be used is `invalid`, never mistaken for "no tokens".
 */
export class TokenCache {
  private signature: string | undefined;
  private snapshot: TokenSnapshot = { status: "ok", byId: new Map() };

  constructor(
    private readonly stateDir: string,
    private readonly onInvalid: (message: string) => void = () => undefined,
  ) {}

  async current(): Promise<TokenSnapshot> {
    const file = tokensFilePath(this.stateDir);
    let signature: string;
    try {
      const s = await stat(file, { bigint: true });
      signature = `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        this.signature = undefined;
        this.snapshot = { status: "ok", byId: new Map() };
        return this.snapshot;
      }
      signature = "unreadable";
    }
    if (signature === this.signature) return this.snapshot;
    try {
      const tokens = await readTokens(this.stateDir);
      this.snapshot = { status: "ok", byId: new Map(tokens.map((t) => [t.id, t])) };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.snapshot = { status: "invalid", message };
      this.onInvalid(message);
    }
    this.signature = signature;
    return this.snapshot;
  }
}
