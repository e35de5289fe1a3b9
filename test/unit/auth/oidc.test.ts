import { SignJWT, generateKeyPair } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type OidcResult, OidcVerifier } from "../../../src/auth/oidc.js";
import { type OidcSettings, parseOidcSettings } from "../../../src/auth/oidc-settings.js";
import { type TestIssuer, startTestIssuer } from "../../helpers/jwt-issuer.js";

const SERVER = "http://127.0.0.1:20001/mcp";
const OTHER = "http://127.0.0.1:20002/mcp";

function settings(issuer: string, extra: Partial<OidcSettings> = {}): OidcSettings {
  return {
    ...parseOidcSettings({
      issuer,
      audience: undefined,
      apiAudience: undefined,
      userClaim: "preferred_username",
      adminClaim: "groups",
      adminValue: "mcp-admins",
      algorithms: "RS256",
      clockSkewSeconds: 30,
      jwksCacheSeconds: 600,
      scopes: "",
      timeoutSeconds: 2,
    })!,
    ...extra,
  };
}

describe("OidcVerifier", () => {
  let issuer: TestIssuer;
  const results: OidcResult[] = [];
  beforeEach(async () => {
    issuer = await startTestIssuer();
    results.length = 0;
  });
  afterEach(() => issuer.close());

  const verifier = (extra: Partial<OidcSettings> = {}) =>
    new OidcVerifier(settings(issuer.issuer, extra), {
      onResult: (r) => results.push(r),
      retryDiscoveryMs: 0,
    });

  it("accepts a token for the server's URL: user from the configured claim, subject and client kept", async () => {
    const token = await issuer.sign({
      aud: SERVER,
      preferred_username: "alice",
      client_id: "cli-1",
      sub: "u-1",
    });
    const verified = await verifier().verify(token, [SERVER]);
    expect(verified).toMatchObject({
      ok: true,
      userId: "alice",
      admin: false,
      identity: {
        subject: "u-1",
        clientId: "cli-1",
        tokenKey: expect.stringMatching(/^[0-9a-f]{16}$/) as unknown,
      },
    });
    expect(verified.ok && verified.identity.expiresAt).toBeGreaterThan(Date.now());
    expect(results).toEqual(["ok"]);
  });

  it("refuses a token for another audience, another issuer, or not yet valid; accepts an aud array holding ours", async () => {
    const v = verifier();
    expect(
      await v.verify(await issuer.sign({ aud: OTHER, preferred_username: "alice" }), [SERVER]),
    ).toMatchObject({
      ok: false,
      result: "wrong_audience",
    });
    expect(
      await v.verify(await issuer.sign({ aud: [OTHER, SERVER], preferred_username: "alice" }), [SERVER]),
    ).toMatchObject({ ok: true });
    expect(
      await v.verify(
        await issuer.sign({ aud: SERVER, iss: "https://evil.example", preferred_username: "a" }),
        [SERVER],
      ),
    ).toMatchObject({ ok: false, result: "wrong_issuer" });
    const later = Math.floor(Date.now() / 1000) + 3600;
    expect(
      await v.verify(await issuer.sign({ aud: SERVER, nbf: later, preferred_username: "alice" }), [SERVER]),
    ).toMatchObject({ ok: false, result: "not_yet_valid" });
  });

  it("refuses an expired token beyond the clock skew, and accepts one within it", async () => {
    const now = Math.floor(Date.now() / 1000);
    const v = verifier({ clockSkewSeconds: 30 });
    const expired = await issuer.sign({
      aud: SERVER,
      preferred_username: "alice",
      iat: now - 600,
      exp: now - 60,
    });
    expect(await v.verify(expired, [SERVER])).toMatchObject({ ok: false, result: "expired" });
    const justExpired = await issuer.sign({
      aud: SERVER,
      preferred_username: "alice",
      iat: now - 600,
      exp: now - 10,
    });
    expect(await v.verify(justExpired, [SERVER])).toMatchObject({ ok: true });
    expect(await verifier({ clockSkewSeconds: 0 }).verify(justExpired, [SERVER])).toMatchObject({
      ok: false,
    });
  });

  it("refuses algorithms not configured, unknown keys and forged signatures", async () => {
    const ec = await verifier({ algorithms: ["ES256"] }).verify(
      await issuer.sign({ aud: SERVER, preferred_username: "alice" }),
      [SERVER],
    );
    expect(ec).toMatchObject({ ok: false, result: "algorithm_not_allowed" });
    // Signed by a key the provider does not publish, under a key id it does.
    const { privateKey } = await generateKeyPair("RS256");
    const forged = await new SignJWT({ aud: SERVER, preferred_username: "alice", sub: "x" })
      .setProtectedHeader({ alg: "RS256", kid: "test-key-1" })
      .setIssuer(issuer.issuer)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);
    expect(await verifier().verify(forged, [SERVER])).toMatchObject({ ok: false, result: "bad_signature" });
    const unknownKid = await new SignJWT({ aud: SERVER, preferred_username: "alice", sub: "x" })
      .setProtectedHeader({ alg: "RS256", kid: "nobody" })
      .setIssuer(issuer.issuer)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);
    expect(await verifier().verify(unknownKid, [SERVER])).toMatchObject({ ok: false, result: "unknown_key" });
    // Unsigned ("alg": "none") is never accepted.
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(
      JSON.stringify({ aud: SERVER, iss: issuer.issuer, sub: "x", exp: 9_999_999_999 }),
    ).toString("base64url")}.`;
    expect(await verifier().verify(none, [SERVER])).toMatchObject({ ok: false });
  });

  it("refuses a user claim that is no valid user id, with the reason; admins by the configured claim", async () => {
    const v = verifier();
    const bad = await v.verify(await issuer.sign({ aud: SERVER, preferred_username: "alice@example.com" }), [
      SERVER,
    ]);
    expect(bad).toEqual({
      ok: false,
      result: "invalid_user",
      message:
        'the token\'s preferred_username claim ("alice@example.com") is not a valid user id (^[a-zA-Z0-9-]{1,32}$)',
    });
    expect(await v.verify(await issuer.sign({ aud: SERVER }), [SERVER])).toMatchObject({
      ok: false,
      result: "invalid_user",
    });
    expect(
      await v.verify(await issuer.sign({ aud: SERVER, groups: ["staff", "mcp-admins"] }), [SERVER]),
    ).toMatchObject({ ok: true, admin: true, userId: undefined });
    expect(
      await v.verify(
        await issuer.sign({ aud: SERVER, groups: "mcp-admins-not", preferred_username: "bob" }),
        [SERVER],
      ),
    ).toMatchObject({ ok: true, admin: false, userId: "bob" });
  });

  it("follows a key rotation: a new key id fetches the keys again, the removed key stops after the cache window", async () => {
    const v = verifier({ jwksCacheSeconds: 1 });
    const old = await issuer.sign({ aud: SERVER, preferred_username: "alice" });
    expect(await v.verify(old, [SERVER])).toMatchObject({ ok: true });
    expect(issuer.jwksFetches).toBe(1);
    await issuer.rotate();
    // Within the cache window the old key is still trusted.
    expect(await v.verify(old, [SERVER])).toMatchObject({ ok: true });
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = await issuer.sign({ aud: SERVER, preferred_username: "alice" });
    expect(await v.verify(fresh, [SERVER])).toMatchObject({ ok: true });
    expect(await v.verify(old, [SERVER])).toMatchObject({ ok: false, result: "unknown_key" });
  });

  it("says unavailable (not invalid) when the provider cannot be reached or names another issuer", async () => {
    const token = await issuer.sign({ aud: SERVER, preferred_username: "alice" });
    issuer.setDown(true);
    expect(await verifier().verify(token, [SERVER])).toMatchObject({ ok: false, result: "unavailable" });
    issuer.setDown(false);
    issuer.setDiscovery({ issuer: "https://other.example" });
    const mismatch = await verifier().verify(token, [SERVER]);
    expect(mismatch).toMatchObject({ ok: false, result: "unavailable" });
    expect(!mismatch.ok && mismatch.message).toMatch(/names issuer "https:\/\/other.example"/);
    issuer.setDiscovery({ jwks_uri: "http://198.51.100.7/jwks" });
    expect(await verifier().verify(token, [SERVER])).toMatchObject({ ok: false, result: "unavailable" });
  });
});

describe("OIDC settings", () => {
  const raw = {
    issuer: "https://login.example.com/realms/acme",
    audience: undefined,
    apiAudience: undefined,
    userClaim: "preferred_username",
    adminClaim: undefined,
    adminValue: undefined,
    algorithms: "RS256,ES256",
    clockSkewSeconds: 60,
    jwksCacheSeconds: 600,
    scopes: "openid mcp",
    timeoutSeconds: 5,
  };

  it("parse, and refuse what would weaken verification, naming the variable", () => {
    expect(parseOidcSettings(raw)).toMatchObject({
      algorithms: ["RS256", "ES256"],
      scopes: ["openid", "mcp"],
    });
    expect(parseOidcSettings({ ...raw, issuer: undefined })).toBeUndefined();
    expect(() => parseOidcSettings({ ...raw, issuer: "http://login.example.com" })).toThrow(
      /MCP_PORTAL_OIDC_ISSUER: must be https/,
    );
    expect(parseOidcSettings({ ...raw, issuer: "http://127.0.0.1:9999" })?.issuer).toBe(
      "http://127.0.0.1:9999",
    );
    expect(() => parseOidcSettings({ ...raw, algorithms: "HS256" })).toThrow(/MCP_PORTAL_OIDC_ALGORITHMS/);
    expect(() => parseOidcSettings({ ...raw, algorithms: "none" })).toThrow(/MCP_PORTAL_OIDC_ALGORITHMS/);
    expect(() => parseOidcSettings({ ...raw, adminClaim: "groups" })).toThrow(
      /ADMIN_CLAIM and .*ADMIN_VALUE/,
    );
    expect(() => parseOidcSettings({ ...raw, issuer: undefined, audience: "x" })).toThrow(
      /MCP_PORTAL_OIDC_AUDIENCE is set but MCP_PORTAL_OIDC_ISSUER is not/,
    );
    expect(() => parseOidcSettings({ ...raw, userClaim: "a b" })).toThrow(/MCP_PORTAL_OIDC_USER_CLAIM/);
  });
});
