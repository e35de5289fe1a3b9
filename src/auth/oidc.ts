import { createHash } from "node:crypto";
import { type JWTPayload, createRemoteJWKSet, customFetch, jwtVerify } from "jose";
import { z } from "zod";
import { isValidUserId } from "../util/ids.js";
import type { OidcSettings } from "./oidc-settings.js";

/*
 * OpenID Connect access tokens (JWT): the provider's discovery document names its keys (jwks_uri); keys are cached
 * for `jwksCacheSeconds` and fetched again at once for an unknown key id (at most once per cooldown), so a rotated
 * key works at once and a removed one stops working once the cache window has passed. A token must carry the
 * configured `iss`, an audience the caller accepts (RFC 8707: the server's exact URL, or a configured one), an
 * allowed algorithm, and be within exp/nbf (with the configured clock skew). The user id comes from a configured
 * claim and must be a valid user id; admins are named by a configured claim and value.
 */

/** Who an OIDC access token speaks for (never the token itself). */
export interface OidcIdentity {
  subject: string;
  /** `client_id` (RFC 9068) or `azp`, when the token names one. */
  clientId: string | undefined;
  /** sha256 of the token, 16 hex characters: stable per token, for per-token caps and logs. */
  tokenKey: string;
  /** When the token expires (ms since the epoch). */
  expiresAt: number;
}

/** Why a token was refused, as a metric label (bounded). */
export const OIDC_RESULTS = [
  "ok",
  "expired",
  "not_yet_valid",
  "wrong_audience",
  "wrong_issuer",
  "bad_signature",
  "unknown_key",
  "algorithm_not_allowed",
  "malformed",
  "invalid_user",
  "unavailable",
] as const;
export type OidcResult = (typeof OIDC_RESULTS)[number];

export type OidcVerification =
  | { ok: true; userId: string | undefined; admin: boolean; identity: OidcIdentity }
  | { ok: false; result: Exclude<OidcResult, "ok">; message: string };

export interface OidcVerifierOptions {
  fetch?: typeof fetch;
  /** Discovery is tried again at most this often after a failure (default 5 s). */
  retryDiscoveryMs?: number;
  now?: () => number;
  onResult?: (result: OidcResult) => void;
}

/** The discovery document's fields we use (RFC 8414 / OpenID Connect Discovery), the rest passes. */
const DiscoveryDocument = z.looseObject({ issuer: z.string(), jwks_uri: z.url() });

const MAX_DISCOVERY_BYTES = 1024 * 1024;
/** Fetches of the keys prompted by an unknown key id are at least this far apart. */
export const JWKS_COOLDOWN_MS = 5000;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Three base64url parts: worth handing to the verifier (static tokens never look like this). */
export function looksLikeJwt(token: string): boolean {
  return token.length <= 16 * 1024 && JWT_SHAPE.test(token);
}

export class OidcVerifier {
  private keys: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  private lastFailureAt = Number.NEGATIVE_INFINITY;
  private lastFailure = "";
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;

  constructor(
    readonly settings: OidcSettings,
    private readonly options: OidcVerifierOptions = {},
  ) {
    this.fetchImpl = options.fetch ?? fetch;
    this.now = options.now ?? Date.now;
  }

  /** Verifies a JWT access token for any of `audiences`; never throws. */
  async verify(token: string, audiences: readonly string[]): Promise<OidcVerification> {
    const outcome = await this.check(token, audiences);
    this.options.onResult?.(outcome.ok ? "ok" : outcome.result);
    return outcome;
  }

  private async check(token: string, audiences: readonly string[]): Promise<OidcVerification> {
    const { settings } = this;
    let keys: ReturnType<typeof createRemoteJWKSet>;
    try {
      keys = await this.jwks();
    } catch (error) {
      return refused("unavailable", `the identity provider cannot be reached: ${errorText(error)}`);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: settings.issuer,
        audience: [...audiences],
        algorithms: settings.algorithms,
        clockTolerance: settings.clockSkewSeconds,
        requiredClaims: ["exp", "sub", "iss", "aud"],
        currentDate: new Date(this.now()),
      }));
    } catch (error) {
      return classify(error);
    }
    const subject = String(payload.sub);
    const clientId = stringClaim(payload, "client_id") ?? stringClaim(payload, "azp");
    const identity: OidcIdentity = {
      subject,
      clientId,
      tokenKey: createHash("sha256").update(token, "utf8").digest("hex").slice(0, 16),
      expiresAt: (payload.exp ?? 0) * 1000,
    };
    const admin =
      settings.admin !== undefined && claimHas(payload, settings.admin.claim, settings.admin.value);
    const user = payload[settings.userClaim];
    if (typeof user === "string" && isValidUserId(user)) return { ok: true, userId: user, admin, identity };
    if (admin) return { ok: true, userId: undefined, admin, identity };
    const shown =
      typeof user === "string" ? `"${user.slice(0, 64)}"` : user === undefined ? "absent" : typeof user;
    return refused(
      "invalid_user",
      `the token's ${settings.userClaim} claim (${shown}) is not a valid user id (^[a-zA-Z0-9-]{1,32}$)`,
    );
  }

  /** The provider's key set, from its discovery document (looked up once; again after a failure, rate-limited). */
  private jwks(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (this.keys) return this.keys;
    const retryMs = this.options.retryDiscoveryMs ?? 5000;
    if (this.now() - this.lastFailureAt < retryMs) return Promise.reject(new Error(this.lastFailure));
    const attempt = this.discover();
    this.keys = attempt;
    attempt.catch((error: unknown) => {
      if (this.keys === attempt) this.keys = undefined;
      this.lastFailureAt = this.now();
      this.lastFailure = errorText(error);
    });
    return attempt;
  }

  private async discover(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    const { settings } = this;
    const url = `${settings.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
    const response = await this.fetchImpl(url, {
      redirect: "error",
      signal: AbortSignal.timeout(settings.timeoutMs),
      headers: { accept: "application/json" },
    });
    if (!response.ok) throw new Error(`discovery ${url}: HTTP ${response.status}`);
    const text = await boundedText(response, MAX_DISCOVERY_BYTES);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new Error(`discovery ${url}: not JSON`);
    }
    const parsed = DiscoveryDocument.safeParse(raw);
    if (!parsed.success) throw new Error(`discovery ${url}: no issuer or jwks_uri`);
    if (parsed.data.issuer !== settings.issuer)
      throw new Error(
        `discovery ${url}: names issuer "${parsed.data.issuer.slice(0, 128)}", not ${settings.issuer}`,
      );
    const jwksUri = new URL(parsed.data.jwks_uri);
    const issuerUrl = new URL(settings.issuer);
    // Keys come over https, or over http only from where the (loopback) issuer itself is served.
    if (jwksUri.protocol !== "https:" && !(jwksUri.protocol === "http:" && jwksUri.host === issuerUrl.host))
      throw new Error(`discovery ${url}: jwks_uri must be https`);
    const cacheMs = settings.jwksCacheSeconds * 1000;
    return createRemoteJWKSet(jwksUri, {
      cacheMaxAge: cacheMs,
      // An unknown key id fetches the keys again at most this often: a new key is usable within seconds, and tokens
      // with made-up key ids cannot make the gateway hammer the provider.
      cooldownDuration: Math.min(JWKS_COOLDOWN_MS, cacheMs),
      timeoutDuration: settings.timeoutMs,
      [customFetch]: (input, init) => this.fetchImpl(input, init),
    });
  }
}

function classify(error: unknown): OidcVerification {
  const code = (error as { code?: unknown }).code;
  const claim = (error as { claim?: unknown }).claim;
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return refused("expired", "the token has expired");
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (claim === "aud") return refused("wrong_audience", "the token is for another audience");
      if (claim === "iss") return refused("wrong_issuer", "the token comes from another issuer");
      if (claim === "nbf" || claim === "iat") return refused("not_yet_valid", "the token is not valid yet");
      return refused("malformed", `the token lacks a valid ${typeof claim === "string" ? claim : "claim"}`);
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return refused("bad_signature", "the token's signature does not verify");
    case "ERR_JWKS_NO_MATCHING_KEY":
      return refused("unknown_key", "the token is signed by a key the identity provider does not publish");
    case "ERR_JOSE_ALG_NOT_ALLOWED":
    case "ERR_JOSE_NOT_SUPPORTED":
      return refused("algorithm_not_allowed", "the token's signature algorithm is not allowed");
    case "ERR_JWT_INVALID":
    case "ERR_JWS_INVALID":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return refused("malformed", "the token is not a valid JWT");
    default:
      // The key set could not be fetched (timeout, network, HTTP error, invalid set): not the token's fault.
      return refused("unavailable", `the identity provider's keys cannot be fetched: ${errorText(error)}`);
  }
}

function refused(result: Exclude<OidcResult, "ok">, message: string): OidcVerification {
  return { ok: false, result, message };
}

function stringClaim(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name];
  return typeof value === "string" ? value : undefined;
}

/** The claim equals `value`, or holds it as an array element (or, for `scope`, as one of its space-separated words). */
function claimHas(payload: JWTPayload, name: string, value: string): boolean {
  const claim = payload[name];
  if (typeof claim === "string")
    return claim === value || (name === "scope" && claim.split(" ").includes(value));
  return Array.isArray(claim) && claim.includes(value);
}

async function boundedText(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) throw new Error(`answer over ${maxBytes} bytes`);
  const reader = response.body?.getReader() as ReadableStreamDefaultReader<Uint8Array> | undefined;
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new Error(`answer over ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function errorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : "";
  return `${message}${cause}`.slice(0, 300);
}
