import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "../observability/logger.js";
import { type ConsoleAssets, type ConsoleFile, loadConsoleAssets } from "./console-assets.js";
import { CONSOLE_SECURITY_HEADERS } from "./security-headers.js";

/*
 * Serves the web console on the API listener: `/` (the page, revalidated on every load) and `/assets/<hashed
 * name>` (immutable: a new build has new names). Console and API share one origin, so the page calls /api/v1
 * with no CORS at all.
 */

export interface ConsoleOptions {
  /** The built console (dist/console-ui). */
  dir: string;
  logger: Logger;
}

const IMMUTABLE = "public, max-age=31536000, immutable";

const NOT_BUILT = Buffer.from(
  "<!doctype html><html lang=en><meta charset=utf-8><title>mcp-portal</title>" +
    "<p>The web console is not built. Run <code>npm run build</code>; the REST API is at /api/v1.</p>",
);

function send(request: FastifyRequest, reply: FastifyReply, file: ConsoleFile, cacheControl: string) {
  reply.headers(CONSOLE_SECURITY_HEADERS);
  reply.header("cache-control", cacheControl).header("etag", file.etag).header("vary", "accept-encoding");
  reply.type(file.contentType);
  if (request.headers["if-none-match"] === file.etag) return reply.code(304).send();
  const gzip = /\bgzip\b/.test(String(request.headers["accept-encoding"] ?? ""));
  if (gzip) reply.header("content-encoding", "gzip");
  return reply.send(gzip ? file.gzip : file.body);
}

/** Registers `/` and `/assets/*`; returns whether a built console was found. */
export async function registerConsole(server: FastifyInstance, options: ConsoleOptions): Promise<boolean> {
  const assets: ConsoleAssets | undefined = await loadConsoleAssets(options.dir);
  const logger = options.logger.child({ component: "console" });
  if (assets === undefined) {
    logger.warn({ dir: options.dir }, "the web console is not built (npm run build); / explains that");
  }
  server.get("/", (request, reply) => {
    if (assets === undefined) {
      reply.headers(CONSOLE_SECURITY_HEADERS).header("cache-control", "no-store");
      return reply.code(503).type("text/html; charset=utf-8").send(NOT_BUILT);
    }
    // no-cache: revalidated on every load (cheap: an ETag), so a new build is picked up at once.
    return send(request, reply, assets.index, "no-cache");
  });
  server.get<{ Params: { file: string } }>("/assets/:file", (request, reply) => {
    const file = assets?.assets.get(request.params.file);
    if (file === undefined) {
      reply.headers(CONSOLE_SECURITY_HEADERS).header("cache-control", "no-store");
      return reply.code(404).type("text/plain; charset=utf-8").send("not found");
    }
    return send(request, reply, file, IMMUTABLE);
  });
  return assets !== undefined;
}
