// The REST API and its live events with OpenID Connect access tokens: accepted for the API's own audience only,
// held to their user like static tokens, and a live stream ends when its token expires.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type OidcSettings, parseOidcSettings } from "../../../src/auth/oidc-settings.js";
import { type TestIssuer, startTestIssuer } from "../../helpers/jwt-issuer.js";
import { openSse } from "../../helpers/net.js";
import { type ApiFixture, apiFixture } from "./api-fixture.js";

const API_AUDIENCE = "mcp-portal-api";

function settings(issuer: string): OidcSettings {
  const parsed = parseOidcSettings({
    issuer,
    audience: undefined,
    apiAudience: API_AUDIENCE,
    userClaim: "preferred_username",
    adminClaim: "groups",
    adminValue: "mcp-admins",
    algorithms: "RS256",
    clockSkewSeconds: 0,
    jwksCacheSeconds: 600,
    scopes: "",
    timeoutSeconds: 2,
  });
  if (!parsed) throw new Error("no settings");
  return parsed;
}

describe("the API with OpenID Connect tokens", () => {
  let issuer: TestIssuer;
  const fixtures: ApiFixture[] = [];
  beforeEach(async () => {
    issuer = await startTestIssuer();
  });
  afterEach(async () => {
    await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
    await issuer.close();
  });

  async function listening(oidc: OidcSettings | undefined) {
    const f = await apiFixture({ ...(oidc ? { oidc } : {}), limits: { tokenRecheckMs: 50 } });
    fixtures.push(f);
    await f.http.listen({ host: "127.0.0.1", port: 0 });
    const address = f.http.server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    return { f, base: `http://127.0.0.1:${port}/api/v1` };
  }
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it("accepts a token for the API's audience as its user (or admin); refuses a gateway audience", async () => {
    const { f } = await listening(settings(issuer.issuer));
    const session = (token: string) =>
      f.http.inject({ method: "GET", url: "/api/v1/session", headers: bearer(token) });
    const alice = await issuer.sign({ aud: API_AUDIENCE, preferred_username: "alice" });
    expect((await session(alice)).json()).toMatchObject({ caller: { kind: "user", user_id: "alice" } });
    const admin = await issuer.sign({ aud: API_AUDIENCE, preferred_username: "ops", groups: ["mcp-admins"] });
    expect((await session(admin)).json()).toMatchObject({ caller: { kind: "admin" } });

    // A token for a server's URL (the gateway's audience) is not one for the API.
    const forServer = await issuer.sign({ aud: "http://127.0.0.1:20000/mcp", preferred_username: "alice" });
    const refused = await session(forServer);
    expect(refused.statusCode).toBe(401);
    expect(refused.headers["www-authenticate"]).toContain('error="invalid_token"');
    // Another user's paths stay closed, as with a static token.
    const other = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/bob/secrets",
      headers: bearer(alice),
    });
    expect(other.statusCode).toBe(403);
  });

  it("accepts no OIDC token without an API audience", async () => {
    const { f } = await listening({ ...settings(issuer.issuer), apiAudience: undefined });
    const token = await issuer.sign({ aud: API_AUDIENCE, preferred_username: "alice" });
    const answer = await f.http.inject({ method: "GET", url: "/api/v1/session", headers: bearer(token) });
    expect(answer.statusCode).toBe(401);
  });

  it("ends a live stream when its token expires", async () => {
    const { base } = await listening(settings(issuer.issuer));
    const token = await issuer.sign({ aud: API_AUDIENCE, preferred_username: "alice" }, { ttlSeconds: 2 });
    const stream = await openSse(`${base}/events`, bearer(token));
    expect(stream.status).toBe(200);
    const opened = Date.now();
    await Promise.race([
      stream.ended,
      new Promise((_, reject) => setTimeout(() => reject(new Error("the stream did not end")), 5000)),
    ]);
    // exp is a whole second (at most 2 s away): the stream lived until then, plus one recheck at most.
    expect(Date.now() - opened).toBeLessThan(3000);
  });
});
