import { describe, expect, it } from "vitest";
import type { AuthResult } from "../../../src/auth/authenticate.js";
import { authorize } from "../../../src/gateway/authorize.js";
import { InvalidOriginListError, originAllowed, parseAllowedOrigins } from "../../../src/gateway/origin.js";

describe("authorize (gateway)", () => {
  const user = (userId: string): AuthResult => ({
    ok: true,
    caller: { kind: "user", userId, tokenId: "0123456789abcdef" },
  });

  it("lets the server's own user and the admin in, each with their own session owner", () => {
    expect(authorize(user("alice"), "alice")).toEqual({ ok: true, owner: "user:alice" });
    expect(authorize({ ok: true, caller: { kind: "admin" } }, "alice")).toEqual({ ok: true, owner: "admin" });
  });

  it("answers 403 to another user's token", () => {
    expect(authorize(user("bob"), "alice")).toMatchObject({ ok: false, status: 403 });
  });

  it("answers 401 with WWW-Authenticate to a missing or invalid token", () => {
    const missing = authorize(
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
    const invalid = authorize(
      { ok: false, statusCode: 401, code: "UNAUTHENTICATED", message: "invalid token" },
      "alice",
    );
    expect(invalid).toMatchObject({
      ok: false,
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="mcp-portal", error="invalid_token"' },
    });
  });

  it("answers 401 when no token is configured at all, 503 when the token store is unreadable", () => {
    expect(
      authorize({ ok: false, statusCode: 403, code: "API_DISABLED", message: "disabled" }, "alice"),
    ).toMatchObject({
      status: 401,
      headers: { "www-authenticate": expect.stringMatching(/^Bearer/) as unknown },
    });
    expect(
      authorize({ ok: false, statusCode: 503, code: "TOKEN_STORE_INVALID", message: "unreadable" }, "alice"),
    ).toMatchObject({ status: 503 });
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
