// A minimal OpenID provider for unit tests and the bench: discovery and a JWKS on 127.0.0.1, and JWT access tokens
// signed with its current key (jose). Keys can be rotated and requests are counted. The full provider
// (authorization code + PKCE, resource indicators) is test/helpers/oidc-provider.ts.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { type CryptoKey, type JWK, type JWTPayload, SignJWT, exportJWK, generateKeyPair } from "jose";

interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface TestIssuer {
  issuer: string;
  /** Requests to the JWKS endpoint so far. */
  readonly jwksFetches: number;
  /** A token signed by the current key: `sub`, `iss`, `iat`, `exp` (now + ttl) filled in unless given. */
  sign(
    claims: JWTPayload & { aud: string | string[] },
    options?: { ttlSeconds?: number; kid?: string },
  ): Promise<string>;
  /** A new key is published and used from now on; the old one is no longer published. */
  rotate(): Promise<void>;
  /** The discovery document (and keys) answer 503 while down. */
  setDown(down: boolean): void;
  /** Overrides fields of the discovery document (e.g. another issuer). */
  setDiscovery(fields: Record<string, unknown>): void;
  close(): Promise<void>;
}

async function newKey(index: number, alg = "RS256"): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `test-key-${index}`;
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

export async function startTestIssuer(): Promise<TestIssuer> {
  let keys = [await newKey(1)];
  let generation = 1;
  let fetches = 0;
  let down = false;
  let overrides: Record<string, unknown> = {};
  const server = http.createServer((req, res) => {
    if (down) {
      res.writeHead(503).end();
      return;
    }
    if (req.url === "/.well-known/openid-configuration") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks`, ...overrides }));
      return;
    }
    if (req.url === "/jwks") {
      fetches += 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: keys.map((k) => k.publicJwk) }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    get jwksFetches() {
      return fetches;
    },
    async sign(claims, options = {}) {
      const key = keys.find((k) => k.kid === (options.kid ?? keys[0]!.kid)) ?? keys[0]!;
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ sub: "subject-1", ...claims })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
        .setIssuer(typeof claims.iss === "string" ? claims.iss : issuer)
        .setIssuedAt(claims.iat ?? now)
        .setExpirationTime(claims.exp ?? now + (options.ttlSeconds ?? 300))
        .sign(key.privateKey);
    },
    async rotate() {
      generation += 1;
      keys = [await newKey(generation)];
    },
    setDown(value) {
      down = value;
    },
    setDiscovery(fields) {
      overrides = fields;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
