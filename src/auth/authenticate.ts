import { createHash } from "node:crypto";
import { digestsEqual, hashToken, tokenId } from "./token-format.js";
import type { TokenCache } from "./token-store.js";

export type Caller = { kind: "admin" } | { kind: "user"; userId: string; tokenId: string };

export type AuthFailure = {
  ok: false;
  statusCode: 401 | 403 | 503;
  code: "API_DISABLED" | "UNAUTHENTICATED" | "TOKEN_STORE_INVALID";
  message: string;
};
export type AuthResult = { ok: true; caller: Caller } | AuthFailure;

const DUMMY_DIGEST = Buffer.alloc(32);

/**
 * Bearer tokens: the admin token (compared as sha256 digests in constant time) or a user token from
 * tokens.json (looked up by its id, compared by hash in constant time). With no token configured at all the
 * API is disabled rather than open.
 */
export class Authenticator {
  private readonly adminDigest: Buffer | undefined;

  constructor(
    adminToken: string | undefined,
    private readonly tokens: TokenCache,
  ) {
    this.adminDigest =
      adminToken === undefined ? undefined : createHash("sha256").update(adminToken, "utf8").digest();
  }

  async authenticate(authorization: string | undefined): Promise<AuthResult> {
    const snapshot = await this.tokens.current();
    const userTokens = snapshot.status === "ok" ? snapshot.byId.size : 0;
    if (this.adminDigest === undefined && snapshot.status === "ok" && userTokens === 0) {
      return {
        ok: false,
        statusCode: 403,
        code: "API_DISABLED",
        message:
          "the API is disabled: no token is configured (set MCP_PORTAL_ADMIN_TOKEN or MCP_PORTAL_ADMIN_TOKEN_FILE, " +
          "or create a user token with `mcp-portal tokens create <user>`)",
      };
    }
    const presented = bearer(authorization);
    if (presented === undefined) {
      return unauthenticated("missing bearer token (Authorization: Bearer <token>)");
    }
    const digest = Buffer.from(hashToken(presented), "hex");
    if (this.adminDigest !== undefined && digestsEqual(digest, this.adminDigest)) {
      return { ok: true, caller: { kind: "admin" } };
    }
    const id = tokenId(presented);
    if (id === undefined) return unauthenticated("invalid token");
    if (snapshot.status === "invalid") {
      return {
        ok: false,
        statusCode: 503,
        code: "TOKEN_STORE_INVALID",
        message: "user tokens cannot be checked: the token store is unreadable (see the controller's log)",
      };
    }
    const record = snapshot.byId.get(id);
    // Compare even when the id is unknown, so both paths cost the same.
    const matches = digestsEqual(digest, record ? Buffer.from(record.hash, "hex") : DUMMY_DIGEST);
    if (record === undefined || !matches) return unauthenticated("invalid token");
    return { ok: true, caller: { kind: "user", userId: record.user_id, tokenId: record.id } };
  }
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

function unauthenticated(message: string): AuthFailure {
  return { ok: false, statusCode: 401, code: "UNAUTHENTICATED", message };
}
