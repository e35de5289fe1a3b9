import { describe, expect, it } from "vitest";
import type { AuthResult } from "../../../src/auth/authenticate.js";
import { authorize } from "../../../src/gateway/authorize.js";
import { challenge } from "../../../src/gateway/resource-metadata.js";
import { InvalidOriginListError, originAllowed, parseAllowedOrigins } from "../../../src/gateway/origin.js";

describe("authorize (gateway)", () => {
  const user = (userId: string): AuthResult => ({
    ok: true,
    caller: { kind: "user", userId, tokenId: "0123456789abcdef" },
  });
  const noProvider = { publicUrl: "http://127.0.0.1", oidc: undefined };
  const challengeOf = (refused: { invalidToken: boolean; description: string }) =>
    challenge(noProvider, 20_001, refused);
  const check = (result: AuthResult, userId: string) => authorize(result, userId, challengeOf);

  it("lets the server's own user and the admin in, each with their own session owner", () => {
    expect(check(user("alice"), "alice")).toMatchObject({ ok: true, owner: "user:alice" });
    expect(check({ ok: true, caller: { kind: "admin" } }, "alice")).toMatchObject({
      ok: true,
      owner: "admin",
    });
  });

  it("answers 403 to another user's token, and to an OIDC token naming no valid user", () => {
    expect(check(user("bob"), "alice")).toMatchObject({ ok: false, status: 403 });
    expect(
      check({ ok: false, statusCode: 403, code: "INVALID_USER_CLAIM", message: "not a user id" }, "alice"),
    ).toMatchObject({ ok: false, status: 403, message: "not a user id" });
  });

  it("answers 401 with WWW-Authenticate to a missing or invalid token", () => {
    const missing = check(
      {
        ok: false,
        statusCode: 401,
        code: "UNAUTHENTICATED",
        message: "missing bearer token (Authorization: Bearer <token>)",
      },
      "alice",
    );
    expect(missing).toMatchObject({
      ok: false,
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="mcp-portal"' },
    });
    const invalid = check(
      { ok: false, statusCode: 401, code: "UNAUTHENTICATED", message: "invalid token", invalidToken: true },
      "alice",
    );
    expect(invalid).toMatchObject({
      ok: false,
      status: 401,
      headers: {
        "www-authenticate":
          'Bearer realm="mcp-portal", error="invalid_token", error_description="invalid token"',
      },
    });
  });

  it("answers 401 when no token is configured at all, 503 when the token store or the provider is unreachable", () => {
    expect(
      check({ ok: false, statusCode: 403, code: "API_DISABLED", message: "disabled" }, "alice"),
    ).toMatchObject({
      status: 401,
      headers: { "www-authenticate": expect.stringMatching(/^Bearer/) as unknown },
    });
    expect(
      check({ ok: false, statusCode: 503, code: "TOKEN_STORE_INVALID", message: "unreadable" }, "alice"),
    ).toMatchObject({ status: 503 });
    expect(
      check({ ok: false, statusCode: 503, code: "IDENTITY_PROVIDER_UNAVAILABLE", message: "down" }, "alice"),
    ).toMatchObject({ status: 503, headers: { "retry-after": "5" } });
  });
});

describe("origin checks", () => {
  const policy = (allowed = "", publishHost = "127.0.0.1") => ({
    allowed: parseAllowedOrigins(allowed),
    publishHost,
  });

  it("admits requests without Origin (non-browser clients)", () => {
    expect(originAllowed(undefined, policy())).toBe(true);
  });

  it("admits loopback forms and the publish host, any port, by default", () => {
    for (const origin of [
      "http://localhost:6274",
      "http://127.0.0.1:3000",
      "https://127.8.0.1",
      "http://[::1]:8080",
      "http://app.localhost",
    ]) {
      expect(originAllowed(origin, policy()), origin).toBe(true);
    }
    expect(originAllowed("http://10.1.2.3:9000", policy("", "10.1.2.3"))).toBe(true);
  });

  it("rejects other origins, opaque origins and non-http schemes (DNS rebinding)", () => {
    for (const origin of [
      "http://evil.example",
      "http://evil.example:20001",
      "null",
      "file:///x",
      "not a url",
      "http://127.0.0.1.evil.example",
    ]) {
      expect(originAllowed(origin, policy()), origin).toBe(false);
    }
  });

  it("admits the configured origins exactly, or all with *", () => {
    const p = policy("https://app.example.com, http://tools.example:8443");
    expect(originAllowed("https://app.example.com", p)).toBe(true);
    expect(originAllowed("https://app.example.com:443", p)).toBe(true);
    expect(originAllowed("http://tools.example:8443", p)).toBe(true);
    expect(originAllowed("http://app.example.com", p)).toBe(false);
    expect(originAllowed("https://other.example", policy("*"))).toBe(true);
  });

  it("rejects a configured value that is no origin", () => {
    expect(() => parseAllowedOrigins("https://app.example.com/path")).toThrow(InvalidOriginListError);
    expect(() => parseAllowedOrigins("app.example.com")).toThrow(InvalidOriginListError);
  });
});
