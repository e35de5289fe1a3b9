import { PORTAL_VERSION } from "../../version.js";
import type { ApiContext } from "../deps.js";
import { ApiError } from "../errors.js";
import { type ApiRoute, defineRoute } from "../route.js";

/*
 * What a client (the console) needs before and right after sign-in: which sign-in methods exist (public), then who
 * the token belongs to and how this controller runs (mode, version, where MCP servers are reached).
 */

/** Sign-in methods; identity providers (OIDC) will add theirs here. */
export interface SignInMethods {
  /** Bearer tokens: the admin token or a user token from `mcp-portal tokens create`. */
  token: true;
  /** An OpenID Connect provider for authorization code + PKCE; null until one is configured. */
  oidc: null;
}

/** GET /info. */
export interface InfoAnswer {
  api: "mcp-portal/v1";
  sign_in: SignInMethods;
}

/** GET /session. */
export interface SessionAnswer {
  caller: { kind: "admin" } | { kind: "user"; user_id: string; token_id: string };
  version: string;
  read_only: boolean;
  mcp: { publish_host: string | null; gateway: boolean | null };
}

export function sessionRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "GET",
      path: "/info",
      access: "public",
      tag: "meta",
      summary: "How to sign in (no token needed)",
      description:
        "The sign-in methods this controller offers. Version and mode are given only to a signed-in caller " +
        "(`GET /session`).",
      responses: { 200: "`{api, sign_in: {token, oidc}}`" },
      handle: () => {
        const signIn: SignInMethods = { token: true, oidc: null };
        const body: InfoAnswer = { api: "mcp-portal/v1", sign_in: signIn };
        return Promise.resolve({ body });
      },
    }),
    defineRoute({
      method: "GET",
      path: "/session",
      access: "token",
      tag: "meta",
      summary: "Who the token belongs to, and how this controller runs",
      description:
        "`caller` is `{kind: admin}` or `{kind: user, user_id, token_id}`. `read_only` is true with " +
        "`--read-only-api` (every write answers 403 READ_ONLY). `mcp.publish_host` is the address users' MCP " +
        "servers listen on (`http://<publish_host>:<host_port>/mcp`; `0.0.0.0` or `::` mean every address of " +
        "the host); `mcp.gateway` says whether the gateway serves them (and reports MCP-level health).",
      responses: { 200: "The session", 401: "Missing or invalid token", 403: "The API is disabled" },
      handle: ({ caller, reply }) => {
        if (caller === undefined) throw new ApiError(401, "UNAUTHENTICATED", "missing bearer token");
        reply.header("cache-control", "no-store");
        const body: SessionAnswer = {
          caller:
            caller.kind === "admin"
              ? { kind: "admin" }
              : { kind: "user", user_id: caller.userId, token_id: caller.tokenId },
          version: PORTAL_VERSION,
          read_only: ctx.deps.readOnly === true,
          mcp: {
            publish_host: ctx.deps.console?.publishHost ?? null,
            gateway: ctx.deps.console?.gateway ?? null,
          },
        };
        return Promise.resolve({ body });
      },
    }),
  ];
}
