// A real OpenID provider (the `oidc-provider` package) on 127.0.0.1 for integration tests: dynamic client
// registration, authorization code with PKCE, resource indicators (RFC 8707) issuing JWT access tokens whose
// audience is the requested resource, and the user id in `preferred_username`. Its interactions are approved
// headlessly: `approve` follows the authorization URL as a browser would, signs in as the given user and grants
// the request. The signing key can be rotated (the old key is then no longer published).
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { type JWK, exportJWK, generateKeyPair } from "jose";
import Provider, { type Configuration } from "oidc-provider";

/** The redirect URI of every client here; nothing listens on it: `approve` stops at it and returns the code. */
export const TEST_REDIRECT_URI = "http://127.0.0.1:1/callback";
/** A pre-registered public client for flows the test drives itself (`token`). */
export const TEST_CLIENT_ID = "portal-test-client";
/** The scope each resource grants (what MCP_PORTAL_OIDC_SCOPES advertises in the test). */
export const TEST_SCOPE = "mcp";
/** Hops `approve` follows before it gives up. */
const MAX_REDIRECTS = 12;

export interface TestOpenIdProvider {
  issuer: string;
  /** Follows `authorizationUrl` as `userId`'s browser, approving; returns the code sent to the redirect URI. */
  approve(authorizationUrl: URL, userId: string): Promise<string>;
  /** A whole authorization code + PKCE flow of the pre-registered client: an access token for `resource`. */
  token(userId: string, resource: string, options?: { ttlSeconds?: number }): Promise<string>;
  /** A new signing key from now on; the old one is no longer published. */
  rotateKey(): Promise<void>;
  close(): Promise<void>;
}

async function signingKey(generation: number): Promise<JWK> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: `oidc-test-key-${generation}`, alg: "RS256", use: "sig" };
}

export async function startTestOpenIdProvider(): Promise<TestOpenIdProvider> {
  let provider: Provider | undefined;
  let callback: ReturnType<Provider["callback"]> | undefined;
  let loginAs: string | undefined;
  let nextTtlSeconds: number | undefined;
  let generation = 1;

  const server = http.createServer((req, res) => {
    if (!provider || !callback) {
      res.writeHead(503).end();
      return;
    }
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname.startsWith("/interaction/")) {
      interact(provider, req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(error instanceof Error ? error.message : String(error));
      });
      return;
    }
    void callback(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  /** The login and consent prompts, answered without a page: sign in as `loginAs`, grant what was asked. */
  async function interact(p: Provider, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const details = await p.interactionDetails(req, res);
    if (details.prompt.name === "login") {
      if (loginAs === undefined) throw new Error("no user to sign in as");
      await p.interactionFinished(
        req,
        res,
        { login: { accountId: loginAs } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    const { session, params, grantId } = details;
    const grant = grantId
      ? await p.Grant.find(grantId)
      : new p.Grant({ accountId: session?.accountId, clientId: params.client_id as string });
    if (!grant) throw new Error("the interaction's grant is gone");
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {}))
      grant.addResourceScope(indicator, scopes.join(" "));
    await p.interactionFinished(
      req,
      res,
      { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true },
    );
  }

  async function build(): Promise<void> {
    const configuration: Configuration = {
      clients: [
        {
          client_id: TEST_CLIENT_ID,
          token_endpoint_auth_method: "none",
          redirect_uris: [TEST_REDIRECT_URI],
          grant_types: ["authorization_code"],
          response_types: ["code"],
        },
      ],
      jwks: { keys: [await signingKey(generation)] },
      cookies: { keys: ["oidc-test-cookie-key-0123456789"] },
      // Clients may register (and ask for) the resource scope, besides the OpenID ones.
      scopes: ["openid", "offline_access", TEST_SCOPE],
      ttl: {
        AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
        Grant: 600,
        Interaction: 600,
        Session: 600,
        AuthorizationCode: 60,
      },
      pkce: { required: () => true },
      findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub, preferred_username: sub }) }),
      // The portal reads the user id from preferred_username (MCP_PORTAL_OIDC_USER_CLAIM's default).
      extraTokenClaims: (_ctx, token) =>
        token.kind === "AccessToken" && "accountId" in token
          ? { preferred_username: (token as { accountId: string }).accountId }
          : undefined,
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      features: {
        devInteractions: { enabled: false },
        registration: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: (_ctx, _client, oneOf) => oneOf,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, resource) => ({
            scope: TEST_SCOPE,
            audience: resource,
            accessTokenFormat: "jwt",
            accessTokenTTL: nextTtlSeconds ?? 600,
            jwt: { sign: { alg: "RS256" } },
          }),
        },
      },
    };
    const next = new Provider(issuer, configuration);
    // The provider logs to the console on server errors; tests read its answers instead.
    next.on("server_error", () => undefined);
    provider = next;
    callback = next.callback();
  }
  await build();

  async function approve(authorizationUrl: URL, userId: string): Promise<string> {
    const jar = new Map<string, string>();
    let url = authorizationUrl;
    loginAs = userId;
    try {
      for (let hop = 0; hop < MAX_REDIRECTS; hop += 1) {
        const response = await fetch(url, {
          redirect: "manual",
          headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") },
          signal: AbortSignal.timeout(10_000),
        });
        for (const line of response.headers.getSetCookie()) {
          const [pair] = line.split(";");
          const at = pair?.indexOf("=") ?? -1;
          if (pair && at > 0) jar.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
        }
        const location = response.headers.get("location");
        await response.body?.cancel();
        if (response.status < 300 || response.status >= 400 || location === null)
          throw new Error(`authorization stopped at ${url.pathname}: HTTP ${response.status}`);
        url = new URL(location, url);
        if (url.href.startsWith(TEST_REDIRECT_URI)) {
          const error = url.searchParams.get("error");
          if (error)
            throw new Error(`authorization refused: ${error} ${url.searchParams.get("error_description")}`);
          const code = url.searchParams.get("code");
          if (!code) throw new Error("the redirect carries no code");
          return code;
        }
      }
      throw new Error(`more than ${MAX_REDIRECTS} redirects`);
    } finally {
      loginAs = undefined;
    }
  }

  async function token(
    userId: string,
    resource: string,
    options: { ttlSeconds?: number } = {},
  ): Promise<string> {
    const verifier = randomBytes(32).toString("base64url");
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const authorize = new URL(`${issuer}/auth`);
    authorize.search = new URLSearchParams({
      client_id: TEST_CLIENT_ID,
      response_type: "code",
      redirect_uri: TEST_REDIRECT_URI,
      scope: TEST_SCOPE,
      resource,
      code_challenge: challenge,
      code_challenge_method: "S256",
      state: randomBytes(8).toString("hex"),
    }).toString();
    const code = await approve(authorize, userId);
    nextTtlSeconds = options.ttlSeconds;
    const response = await fetch(`${issuer}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: TEST_REDIRECT_URI,
        client_id: TEST_CLIENT_ID,
        code_verifier: verifier,
        resource,
      }),
      signal: AbortSignal.timeout(10_000),
    });
    nextTtlSeconds = undefined;
    const body = (await response.json()) as {
      access_token?: string;
      error?: string;
      error_description?: string;
    };
    if (!response.ok || typeof body.access_token !== "string")
      throw new Error(
        `token request failed: HTTP ${response.status} ${body.error} ${body.error_description}`,
      );
    return body.access_token;
  }

  return {
    issuer,
    approve,
    token,
    async rotateKey() {
      generation += 1;
      await build();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
