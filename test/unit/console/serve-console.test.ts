// The console's static serving: security headers on every answer, caching (revalidated page, immutable hashed
// assets), gzip, and nothing served that the build did not write.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import Fastify from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { registerConsole } from "../../../src/console/serve-console.js";
import { CONSOLE_CSP } from "../../../src/console/security-headers.js";
import { createLogger } from "../../../src/observability/logger.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function serve(files: Record<string, string> | undefined) {
  const dir = await mkdtemp(path.join(tmpdir(), "mcp-portal-console-"));
  if (files) {
    for (const [name, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), text);
    }
  }
  await writeFile(path.join(tmpdir(), "outside-console.txt"), "outside");
  const server = Fastify();
  const lines: string[] = [];
  const logger = createLogger({
    level: "info",
    destination: { write: (line: string) => void lines.push(line) },
  });
  const built = await registerConsole(server, { dir, logger });
  cleanups.push(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { server, built, lines };
}

const BUILT = {
  "index.html": '<!doctype html><script type="module" src="/assets/app-ABC123.js"></script>',
  "assets/app-ABC123.js": "console.log('app')",
  "assets/app-DEF456.css": "body{margin:0}",
};

function expectSecurityHeaders(headers: Record<string, unknown>) {
  expect(headers["content-security-policy"]).toBe(CONSOLE_CSP);
  expect(headers["x-content-type-options"]).toBe("nosniff");
  expect(headers["x-frame-options"]).toBe("DENY");
  expect(headers["referrer-policy"]).toBe("no-referrer");
}

describe("console serving", () => {
  it("serves the page revalidated and the hashed assets immutable, with a strict CSP on each", async () => {
    const { server, built } = await serve(BUILT);
    expect(built).toBe(true);
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    expect(CONSOLE_CSP).toContain("style-src 'self'");
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
    expect(CONSOLE_CSP).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);

    const page = await server.inject({ method: "GET", url: "/" });
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["cache-control"]).toBe("no-cache");
    expectSecurityHeaders(page.headers);
    expect(page.body).toBe(BUILT["index.html"]);

    const script = await server.inject({ method: "GET", url: "/assets/app-ABC123.js" });
    expect(script.statusCode).toBe(200);
    expect(script.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(script.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expectSecurityHeaders(script.headers);
    const style = await server.inject({ method: "GET", url: "/assets/app-DEF456.css" });
    expect(style.headers["content-type"]).toBe("text/css; charset=utf-8");
  });

  it("answers gzip when asked, and 304 for a known ETag", async () => {
    const { server } = await serve(BUILT);
    const zipped = await server.inject({
      method: "GET",
      url: "/",
      headers: { "accept-encoding": "gzip, br" },
    });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(zipped.headers.vary).toBe("accept-encoding");
    expect(gunzipSync(zipped.rawPayload).toString()).toBe(BUILT["index.html"]);
    const etag = String(zipped.headers.etag);
    const again = await server.inject({ method: "GET", url: "/", headers: { "if-none-match": etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe("");
  });

  it("serves nothing the build did not write: unknown names and paths that try to leave the directory are 404", async () => {
    const { server } = await serve(BUILT);
    for (const url of [
      "/assets/app-XXXX.js",
      "/assets/..%2F..%2Foutside-console.txt",
      "/assets/%2e%2e%2findex.html",
      "/assets/",
      "/index.html",
    ]) {
      const response = await server.inject({ method: "GET", url });
      expect(response.statusCode, url).toBe(404);
      expect(response.body).not.toContain("outside");
    }
  });

  it("explains a missing build on / with a 503, and logs it", async () => {
    const { server, built, lines } = await serve(undefined);
    expect(built).toBe(false);
    const page = await server.inject({ method: "GET", url: "/" });
    expect(page.statusCode).toBe(503);
    expect(page.body).toContain("npm run build");
    expectSecurityHeaders(page.headers);
    expect(lines.join("")).toContain("not built");
  });
});
