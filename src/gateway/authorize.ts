import type { AuthResult, Caller } from "../auth/authenticate.js";

/** What the gateway answers before anything reaches a server: allow (with the session owner) or an HTTP error. */
export type Authorization =
  | { ok: true; owner: string; caller: Caller }
  | { ok: false; status: 401 | 403 | 503; message: string; headers: Record<string, string> };

/** The session owner of a user's own token (sessions are bound to their owner). */
export function userOwner(userId: string): string {
  return `user:${userId}`;
}

export const ADMIN_OWNER = "admin";

/**
 * A server is reachable with a credential of its own user (label mcp.portal.user_id) or an admin's. No or an
 * invalid token: 401 with the `WWW-Authenticate` challenge `challenge` builds; another user's token (or an OIDC
 * token whose user claim is no valid user id): 403; an unreadable token store or an unreachable identity provider:
 * 503. With no credential configured at all nobody can be authenticated, so that is a 401 too (the API's
 * "disabled" 403 would tell an MCP client nothing useful).
 */
export function authorize(
  result: AuthResult,
  serverUserId: string,
  challenge: (refused: { invalidToken: boolean; description: string }) => string,
): Authorization {
  if (!result.ok) {
    if (result.code === "TOKEN_STORE_INVALID" || result.code === "IDENTITY_PROVIDER_UNAVAILABLE") {
      return { ok: false, status: 503, message: result.message, headers: { "retry-after": "5" } };
    }
    if (result.code === "INVALID_USER_CLAIM")
      return { ok: false, status: 403, message: result.message, headers: {} };
    const message = result.code === "API_DISABLED" ? "no token is configured on this host" : result.message;
    return {
      ok: false,
      status: 401,
      message,
      headers: {
        "www-authenticate": challenge({ invalidToken: result.invalidToken === true, description: message }),
      },
    };
  }
  const { caller } = result;
  if (caller.kind === "admin") return { ok: true, owner: ADMIN_OWNER, caller };
  if (caller.userId === serverUserId) return { ok: true, owner: userOwner(caller.userId), caller };
  return { ok: false, status: 403, message: "this token belongs to another user", headers: {} };
}
