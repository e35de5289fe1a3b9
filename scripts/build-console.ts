// Bundles the web console (web/src) with esbuild into dist/console-ui: index.html plus content-hashed assets.
// `npm run build` runs it after tsc; the browser tests call buildConsole() into a directory of their own.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { createHash } from "node:crypto";
import { build } from "esbuild";

const REPO = path.resolve(import.meta.dirname, "..");
export const CONSOLE_OUT_DIR = path.join(REPO, "dist/console-ui");
/** The budget the issue sets for everything a first visit transfers. */
export const CONSOLE_GZIP_BUDGET_BYTES = 150 * 1024;

export interface ConsoleBuild {
  files: { name: string; bytes: number; gzipBytes: number }[];
  totalGzipBytes: number;
}

export async function buildConsole(outDir = CONSOLE_OUT_DIR): Promise<ConsoleBuild> {
  await rm(outDir, { recursive: true, force: true });
  const assetsDir = path.join(outDir, "assets");
  await mkdir(assetsDir, { recursive: true });
  const result = await build({
    entryPoints: { app: path.join(REPO, "web/src/main.tsx") },
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    jsx: "automatic",
    jsxImportSource: "preact",
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    loader: { ".svg": "file" },
    outdir: assetsDir,
    metafile: true,
    legalComments: "eof",
    sourcemap: false,
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "warning",
  });
  const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
  const script = outputs.find((name) => name.endsWith(".js"));
  const style = outputs.find((name) => name.endsWith(".css"));
  if (script === undefined || style === undefined)
    throw new Error("esbuild produced no script or stylesheet");
  const icon = await iconAsset(assetsDir);
  const html = [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    "<title>mcp-portal console</title>",
    `<link rel="icon" href="/assets/${icon}" type="image/svg+xml">`,
    `<link rel="stylesheet" href="/assets/${style}">`,
    `<script type="module" src="/assets/${script}"></script>`,
    "</head>",
    "<body>",
    '<div id="app"><noscript>The mcp-portal console needs JavaScript; the REST API is at /api/v1.</noscript></div>',
    "</body>",
    "</html>",
    "",
  ].join("\n");
  await writeFile(path.join(outDir, "index.html"), html);
  const names = ["index.html", ...[script, style, icon].map((name) => `assets/${name}`)];
  const files = await Promise.all(
    names.map(async (name) => {
      const body = await readFile(path.join(outDir, name));
      return { name, bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length };
    }),
  );
  return { files, totalGzipBytes: files.reduce((sum, f) => sum + f.gzipBytes, 0) };
}

/** The favicon, content-hashed like the bundle. */
async function iconAsset(assetsDir: string): Promise<string> {
  const svg = await readFile(path.join(REPO, "web/icon.svg"));
  const name = `icon-${createHash("sha256").update(svg).digest("hex").slice(0, 8).toUpperCase()}.svg`;
  await writeFile(path.join(assetsDir, name), svg);
  return name;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const outDir = process.argv[2] ? path.resolve(process.argv[2]) : CONSOLE_OUT_DIR;
  const built = await buildConsole(outDir);
  for (const f of built.files) console.log(`  ${f.name}  ${f.bytes} B, ${f.gzipBytes} B gzip`);
  console.log(`console: ${built.totalGzipBytes} B gzip in total (budget ${CONSOLE_GZIP_BUDGET_BYTES} B)`);
  if (built.totalGzipBytes > CONSOLE_GZIP_BUDGET_BYTES) {
    console.error("console bundle over budget");
    process.exit(1);
  }
}
