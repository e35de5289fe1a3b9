import type { AuthResult } from "../auth/authenticate.js";

/** What the gateway answers before anything reaches a server: allow (with the session owner) or an HTTP error. */
export type Authorization =
  | { ok: true; owner: string }
  | { ok: false; status: 401 | 403 | 503; message: string; headers: Record<string, string> };

const REALM = 'Bearer realm="mcp-portal"';

/** The session owner of a user's own token (sessions are bound to their owner). */
export function userOwner(userId: string): string {
  return `user:${userId}`;
}

export const ADMIN_OWNER = "admin";

/**
 * A server is reachable with a token of its own user (label mcp.portal.user_id) or the admin token. No or an
 * invalid token: 401 with WWW-Authenticate; another user's token: 403; an unreadable token store: 503. With no
 * token configured at all nobody can be authenticated, so that is a 401 too (the API's "disabled" 403 would tell
 * an MCP client nothing useful).
 */
export function authorize(result: AuthResult, serverUserId: string): Authorization {
  if (!result.ok) {
    if (result.code === "TOKEN_STORE_INVALID") {
      return { ok: false, status: 503, message: result.message, headers: { "retry-after": "5" } };
    }
    const presented = result.code === "UNAUTHENTICATED" && result.message === "invalid token";
    return {
      ok: false,
      status: 401,
      message: result.code === "API_DISABLED" ? "no token is configured on this host" : result.message,
      headers: { "www-authenticate": presented ? `${REALM}, error="invalid_token"` : REALM },
    };
  }
  const { caller } = result;
  if (caller.kind === "admin") return { ok: true, owner: ADMIN_OWNER };
  if (caller.userId === serverUserId) return { ok: true, owner: userOwner(caller.userId) };
  return { ok: false, status: 403, message: "this token belongs to another user", headers: {} };
}
