import { createHash } from "node:crypto";
import { type OidcIdentity, type OidcResult, type OidcVerifier, looksLikeJwt } from "./oidc.js";
import { digestsEqual, hashToken, tokenId } from "./token-format.js";
import type { TokenCache } from "./token-store.js";

export type { OidcIdentity } from "./oidc.js";

/**
 * Who is calling. Static tokens: the admin token, or a user token of tokens.json (`tokenId` its id). OIDC access
 * tokens carry `oidc` (subject, client, expiry); their `tokenId` is `oidc:` and a digest of the token.
 */
export type Caller =
  | { kind: "admin"; oidc?: OidcIdentity }
  | { kind: "user"; userId: string; tokenId: string; oidc?: OidcIdentity };

export type AuthFailure = {
  ok: false;
  statusCode: 401 | 403 | 503;
  code:
    | "API_DISABLED"
    | "UNAUTHENTICATED"
    | "TOKEN_STORE_INVALID"
    | "IDENTITY_PROVIDER_UNAVAILABLE"
    | "INVALID_USER_CLAIM";
  message: string;
  /** A token was presented and refused (RFC 6750 `error="invalid_token"`). */
  invalidToken?: boolean;
};
export type AuthResult = { ok: true; caller: Caller } | AuthFailure;

export interface AuthenticateOptions {
  /**
   * Audiences an OIDC access token may carry here (RFC 8707); empty or absent: OIDC tokens are not accepted
   * (the API without MCP_PORTAL_OIDC_API_AUDIENCE).
   */
  audiences?: readonly string[];
}

const DUMMY_DIGEST = Buffer.alloc(32);

/**
 * Bearer tokens: the admin token (compared as sha256 digests in constant time), a user token from tokens.json
 * (looked up by its id, compared by hash in constant time), or an OIDC access token (a JWT, when a provider is
 * configured and the caller names the audiences it accepts). With no credential configured at all the API is
 * disabled rather than open.
 */
export class Authenticator {
  private readonly adminDigest: Buffer | undefined;

  constructor(
    adminToken: string | undefined,
    private readonly tokens: TokenCache,
    private readonly oidc?: OidcVerifier,
  ) {
    this.adminDigest =
      adminToken === undefined ? undefined : createHash("sha256").update(adminToken, "utf8").digest();
  }

  /** Whether OIDC access tokens can be accepted for `audiences`. */
  acceptsOidc(audiences: readonly string[] | undefined): boolean {
    return this.oidc !== undefined && audiences !== undefined && audiences.length > 0;
  }

  async authenticate(
    authorization: string | undefined,
    options: AuthenticateOptions = {},
  ): Promise<AuthResult> {
    const presented = bearer(authorization);
    const oidcHere = this.acceptsOidc(options.audiences);
    const digest = presented === undefined ? undefined : Buffer.from(hashToken(presented), "hex");
    if (digest !== undefined && this.adminDigest !== undefined && digestsEqual(digest, this.adminDigest)) {
      return { ok: true, caller: { kind: "admin" } };
    }
    if (presented !== undefined && this.oidc && looksLikeJwt(presented)) {
      if (!oidcHere)
        return unauthenticated("invalid token: OpenID Connect tokens are not accepted here", true);
      return this.verifyOidc(this.oidc, presented, options.audiences ?? []);
    }
    const snapshot = await this.tokens.current();
    const userTokens = snapshot.status === "ok" ? snapshot.byId.size : 0;
    if (this.adminDigest === undefined && !oidcHere && snapshot.status === "ok" && userTokens === 0) {
      return {
        ok: false,
        statusCode: 403,
        code: "API_DISABLED",
        message:
          "the API is disabled: no token is configured (set MCP_PORTAL_ADMIN_TOKEN or MCP_PORTAL_ADMIN_TOKEN_FILE, " +
          "or create a user token with `mcp-portal tokens create <user>`)",
      };
    }
    if (presented === undefined || digest === undefined) {
      return unauthenticated("missing bearer token (Authorization: Bearer <token>)");
    }
    const id = tokenId(presented);
    if (id === undefined) return unauthenticated("invalid token", true);
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
    if (record === undefined || !matches) return unauthenticated("invalid token", true);
    return { ok: true, caller: { kind: "user", userId: record.user_id, tokenId: record.id } };
  }

  private async verifyOidc(
    oidc: OidcVerifier,
    token: string,
    audiences: readonly string[],
  ): Promise<AuthResult> {
    const verified = await oidc.verify(token, audiences);
    if (!verified.ok) return oidcFailure(verified.result, verified.message);
    const { identity } = verified;
    if (verified.admin) return { ok: true, caller: { kind: "admin", oidc: identity } };
    if (verified.userId === undefined) return oidcFailure("invalid_user", "the token names no user");
    return {
      ok: true,
      caller: { kind: "user", userId: verified.userId, tokenId: `oidc:${identity.tokenKey}`, oidc: identity },
    };
  }
}

function oidcFailure(result: Exclude<OidcResult, "ok">, message: string): AuthFailure {
  if (result === "unavailable")
    return { ok: false, statusCode: 503, code: "IDENTITY_PROVIDER_UNAVAILABLE", message };
  if (result === "invalid_user") return { ok: false, statusCode: 403, code: "INVALID_USER_CLAIM", message };
  return unauthenticated(`invalid token: ${message}`, true);
}

/** Who a caller is, for logs and audit lines: `admin`, `token:<id>`, or `oidc:<subject>` (never a token). */
export function actorOf(caller: Caller | undefined): string {
  if (caller === undefined) return "anonymous";
  if (caller.oidc) return `oidc:${caller.oidc.subject.slice(0, 128)}`;
  return caller.kind === "admin" ? "admin" : `token:${caller.tokenId}`;
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

function unauthenticated(message: string, invalidToken = false): AuthFailure {
  return {
    ok: false,
    statusCode: 401,
    code: "UNAUTHENTICATED",
    message,
    ...(invalidToken ? { invalidToken: true } : {}),
  };
}
