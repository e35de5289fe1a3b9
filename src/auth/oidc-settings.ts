import { isIP } from "node:net";

/*
 * The identity settings (README, "Identity"): the public URL clients use, and the OpenID Connect provider whose
 * JWT access tokens the gateway and the API accept. Parsed once from the environment (src/config.ts); every
 * refusal names the variable.
 */

/** Signature algorithms a token may use: asymmetric only (never `none`, never an HMAC shared with anyone). */
export const SUPPORTED_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

export interface OidcSettings {
  /** The `iss` every token must carry, exactly; discovery is `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
  /**
   * Accepted at the gateway besides each server's own URL (RFC 8707): for providers that cannot issue one audience
   * per port. Undefined: only the server's exact URL.
   */
  audience: string | undefined;
  /** The REST API's audience; undefined: the API accepts no OIDC token. */
  apiAudience: string | undefined;
  /** The claim holding the portal user id (default preferred_username). */
  userClaim: string;
  /** Tokens whose `adminClaim` equals (or, as an array, contains) `adminValue` are admins. */
  admin: { claim: string; value: string } | undefined;
  algorithms: string[];
  /** Leeway for exp, nbf and iat. */
  clockSkewSeconds: number;
  /** Keys are fetched again after this long (and at once for an unknown key id, at most once per cooldown). */
  jwksCacheSeconds: number;
  /** Scopes clients should ask for: `scopes_supported` and the 401's `scope`. Empty: none advertised. */
  scopes: string[];
  /** Bound on each request to the provider (discovery, keys). */
  timeoutMs: number;
}

export interface RawOidcSettings {
  issuer: string | undefined;
  audience: string | undefined;
  apiAudience: string | undefined;
  userClaim: string;
  adminClaim: string | undefined;
  adminValue: string | undefined;
  algorithms: string;
  clockSkewSeconds: number;
  jwksCacheSeconds: number;
  scopes: string;
  timeoutSeconds: number;
}

const CLAIM_NAME = /^[A-Za-z0-9_:./-]{1,128}$/;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

export function parseOidcSettings(raw: RawOidcSettings): OidcSettings | undefined {
  const issuer = blank(raw.issuer);
  const others = {
    MCP_PORTAL_OIDC_AUDIENCE: blank(raw.audience),
    MCP_PORTAL_OIDC_API_AUDIENCE: blank(raw.apiAudience),
    MCP_PORTAL_OIDC_ADMIN_CLAIM: blank(raw.adminClaim),
  };
  if (issuer === undefined) {
    const stray = Object.entries(others).find(([, value]) => value !== undefined);
    if (stray) throw new Error(`${stray[0]} is set but MCP_PORTAL_OIDC_ISSUER is not`);
    return undefined;
  }
  checkIssuer(issuer);
  for (const name of ["MCP_PORTAL_OIDC_AUDIENCE", "MCP_PORTAL_OIDC_API_AUDIENCE"] as const) {
    const value = others[name];
    if (value !== undefined && (value.length > 1024 || /\s/.test(value)))
      throw new Error(`${name}: an audience is one string without spaces (at most 1024 characters)`);
  }
  if (!CLAIM_NAME.test(raw.userClaim))
    throw new Error(`MCP_PORTAL_OIDC_USER_CLAIM: "${raw.userClaim.slice(0, 64)}" is not a claim name`);
  const adminClaim = others.MCP_PORTAL_OIDC_ADMIN_CLAIM;
  const adminValue = blank(raw.adminValue);
  if ((adminClaim === undefined) !== (adminValue === undefined))
    throw new Error("set MCP_PORTAL_OIDC_ADMIN_CLAIM and MCP_PORTAL_OIDC_ADMIN_VALUE together, or neither");
  if (adminClaim !== undefined && !CLAIM_NAME.test(adminClaim))
    throw new Error(`MCP_PORTAL_OIDC_ADMIN_CLAIM: "${adminClaim.slice(0, 64)}" is not a claim name`);
  const algorithms = list(raw.algorithms);
  if (algorithms.length === 0) throw new Error("MCP_PORTAL_OIDC_ALGORITHMS: name at least one algorithm");
  for (const alg of algorithms) {
    if (!(SUPPORTED_ALGORITHMS as readonly string[]).includes(alg))
      throw new Error(
        `MCP_PORTAL_OIDC_ALGORITHMS: "${alg.slice(0, 32)}" is not one of ${SUPPORTED_ALGORITHMS.join(", ")}`,
      );
  }
  const scopes = list(raw.scopes.replace(/\s+/g, ","));
  for (const scope of scopes) {
    if (!SCOPE.test(scope)) throw new Error(`MCP_PORTAL_OIDC_SCOPES: "${scope.slice(0, 64)}" is not a scope`);
  }
  return {
    issuer,
    audience: others.MCP_PORTAL_OIDC_AUDIENCE,
    apiAudience: others.MCP_PORTAL_OIDC_API_AUDIENCE,
    userClaim: raw.userClaim,
    admin:
      adminClaim !== undefined && adminValue !== undefined
        ? { claim: adminClaim, value: adminValue }
        : undefined,
    algorithms,
    clockSkewSeconds: raw.clockSkewSeconds,
    jwksCacheSeconds: raw.jwksCacheSeconds,
    scopes,
    timeoutMs: raw.timeoutSeconds * 1000,
  };
}

/** https, or http to a loopback address (a provider on the same host, as in tests): tokens' keys come from it. */
function checkIssuer(issuer: string): void {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new Error(`MCP_PORTAL_OIDC_ISSUER: "${issuer.slice(0, 128)}" is not a URL`);
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "")
    throw new Error("MCP_PORTAL_OIDC_ISSUER: an issuer has no query, fragment or credentials");
  if (url.protocol === "https:") return;
  if (url.protocol === "http:" && isLoopbackHost(url.hostname)) return;
  throw new Error("MCP_PORTAL_OIDC_ISSUER: must be https (http only for a loopback address)");
}

/**
 * MCP_PORTAL_PUBLIC_URL: `http(s)://host`, without port, path or query (a server's port and `/mcp` are added);
 * default `http://<MCP_PORTAL_PUBLISH_HOST>`. Returned without a trailing slash.
 */
export function parsePublicUrl(value: string | undefined, publishHost: string): string {
  const given = blank(value);
  if (given === undefined) return `http://${isIP(publishHost) === 6 ? `[${publishHost}]` : publishHost}`;
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new Error(`MCP_PORTAL_PUBLIC_URL: "${given.slice(0, 128)}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new Error("MCP_PORTAL_PUBLIC_URL: must be http:// or https://");
  if (
    url.port !== "" ||
    (url.pathname !== "/" && url.pathname !== "") ||
    url.search !== "" ||
    url.hash !== ""
  )
    throw new Error(
      "MCP_PORTAL_PUBLIC_URL: give scheme and host only (each server's port and /mcp are added to it)",
    );
  if (url.username !== "" || url.password !== "")
    throw new Error("MCP_PORTAL_PUBLIC_URL: must not contain credentials");
  return `${url.protocol}//${url.host}`;
}

/** A server's MCP URL as clients use it: the resource its tokens are for (RFC 8707, RFC 9728). */
export function serverUrl(publicUrl: string, hostPort: number): string {
  return `${publicUrl}:${hostPort}/mcp`;
}

function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  if (bare === "localhost") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare === "::1";
}

function blank(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}

function list(value: string): string[] {
  return [
    ...new Set(
      value
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== ""),
    ),
  ];
}
