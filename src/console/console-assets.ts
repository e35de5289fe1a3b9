import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";

/*
 * The console's built files (`npm run build` writes them to dist/console-ui), read once at start and kept in
 * memory: the bundle is small (under 150 KB gzip), and serving from memory means no path from a URL ever reaches
 * the file system.
 */

/** Where `npm run build` puts the console, from src/console (tsx) and dist/console (built) alike. */
export const DEFAULT_CONSOLE_DIR = path.resolve(import.meta.dirname, "../../dist/console-ui");

/** File names the build gives assets: `<name>-<hash>.<ext>`, nothing else is served. */
const ASSET_NAME = /^[A-Za-z0-9_-]+\.[a-z0-9]+$/;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".html": "text/html; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

export interface ConsoleFile {
  body: Buffer;
  gzip: Buffer;
  contentType: string;
  etag: string;
}

export interface ConsoleAssets {
  index: ConsoleFile;
  /** By file name (no directory): `app-4XK2.js`. */
  assets: ReadonlyMap<string, ConsoleFile>;
}

function fileOf(name: string, body: Buffer): ConsoleFile {
  return {
    body,
    gzip: gzipSync(body, { level: 9 }),
    contentType: CONTENT_TYPES[path.extname(name)] ?? "application/octet-stream",
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
  };
}

/** The built console in `dir`, or undefined when it has not been built (no index.html). */
export async function loadConsoleAssets(dir: string): Promise<ConsoleAssets | undefined> {
  let index: Buffer;
  try {
    index = await readFile(path.join(dir, "index.html"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const assets = new Map<string, ConsoleFile>();
  const names = await readdir(path.join(dir, "assets")).catch(() => [] as string[]);
  for (const name of names) {
    if (!ASSET_NAME.test(name)) continue;
    assets.set(name, fileOf(name, await readFile(path.join(dir, "assets", name))));
  }
  return { index: fileOf("index.html", index), assets };
}
