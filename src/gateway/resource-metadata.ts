import { type OidcSettings, serverUrl } from "../auth/oidc-settings.js";

/*
 * What MCP clients discover on a user's port (the MCP authorization spec, RFC 9728 and RFC 6750): the protected
 * resource metadata at `/.well-known/oauth-protected-resource` and its path-suffixed form for `/mcp`, and the
 * `WWW-Authenticate` challenge of a 401 that points at it. Without an identity provider there is nothing to
 * discover: every `/.well-known/` path answers a JSON 404, so a client's discovery fails cleanly.
 */

export interface ResourceIdentity {
  /** MCP_PORTAL_PUBLIC_URL (scheme and host). */
  publicUrl: string;
  oidc: OidcSettings | undefined;
}

export const PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource";

/** The resource a server's tokens are for, which is the URL clients use: `<public url>:<port>/mcp`. */
export function resourceUrl(identity: ResourceIdentity, hostPort: number): string {
  return serverUrl(identity.publicUrl, hostPort);
}

export function metadataUrl(identity: ResourceIdentity, hostPort: number): string {
  return `${identity.publicUrl}:${hostPort}${PROTECTED_RESOURCE_PATH}/mcp`;
}

export function isWellKnown(pathname: string): boolean {
  return pathname === "/.well-known" || pathname.startsWith("/.well-known/");
}

/** The answer to a `/.well-known/` request on a user's port (public: no token needed). */
export function wellKnownAnswer(
  identity: ResourceIdentity,
  hostPort: number,
  pathname: string,
): { status: 200 | 404; body: Record<string, unknown> } {
  const { oidc } = identity;
  const known = pathname === PROTECTED_RESOURCE_PATH || pathname === `${PROTECTED_RESOURCE_PATH}/mcp`;
  if (!known || !oidc) {
    return {
      status: 404,
      body: {
        error: "not_found",
        error_description: oidc
          ? `no such metadata; see ${PROTECTED_RESOURCE_PATH}/mcp`
          : "no identity provider is configured: use a bearer token from `mcp-portal tokens create`",
      },
    };
  }
  return {
    status: 200,
    body: {
      resource: resourceUrl(identity, hostPort),
      authorization_servers: [oidc.issuer],
      bearer_methods_supported: ["header"],
      ...(oidc.scopes.length > 0 ? { scopes_supported: oidc.scopes } : {}),
      resource_name: "mcp-portal MCP server",
    },
  };
}

/** `WWW-Authenticate` of a 401: where the metadata is (with a provider), and why a presented token failed. */
export function challenge(
  identity: ResourceIdentity,
  hostPort: number,
  refused: { invalidToken: boolean; description: string },
): string {
  const parts = ['Bearer realm="mcp-portal"'];
  if (identity.oidc) {
    parts.push(`resource_metadata="${metadataUrl(identity, hostPort)}"`);
    if (identity.oidc.scopes.length > 0) parts.push(`scope="${identity.oidc.scopes.join(" ")}"`);
  }
  if (refused.invalidToken) {
    parts.push('error="invalid_token"');
    parts.push(`error_description="${quotable(refused.description)}"`);
  }
  return parts.join(", ");
}

/** A quoted-string value: printable ASCII without `"` and `\` (RFC 6750 section 3), at most 200 characters. */
function quotable(text: string): string {
  return text.replace(/[^\x20-\x7e]|["\\]/g, "'").slice(0, 200);
}
