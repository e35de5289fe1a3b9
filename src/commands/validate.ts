import { stat } from "node:fs/promises";
import path from "node:path";
import { type Backend, loadConfig } from "../config.js";
import { describeAllowedImages } from "../desired/image-policy.js";
import type { PoolSettings } from "../validate/capacity.js";
import { formatProblem } from "../validate/problem.js";
import { validateTreeReport } from "../validate/validate-tree.js";
import { type OutputFormat, commandOptions, outputFormat, parseCommandArgs, writeJson } from "./common.js";
import { type CommandIo, UsageError } from "./io.js";

const USAGE = `Usage: mcp-portal validate [--data-dir DIR] [--output text|json] [--overlays A,B | --all-overlays]

Checks the whole desired-state tree (catalogs, overlays, policy.json, users/*) without Docker or secret keys.
Every overlay file must parse; the selected ones must merge (each unselected one is merged on its own too).
Says which image allow-list applies (policy.json allowed_images, else MCP_PORTAL_ALLOWED_IMAGES, else none).
Warns when the tree has more users than the port or subnet pool holds, and when policy.json gives a max_ports
larger than a port block (MCP_PORTAL_PORTS_PER_USER).

Options:
  --data-dir DIR     the GitOps tree; else MCP_PORTAL_DATA_DIR, else the current directory
  --output FORMAT    text (default): one "file: path: reason" line per problem, then "warning: file: path:
                     reason" lines; json: {"ok","problems","warnings","allowed_images":{"source","globs"}}
  --overlays LIST    overlays to merge, in order; else MCP_PORTAL_OVERLAYS
  --all-overlays     merge every file of catalogs/overlays, by name

Exit codes: 0 no problems (warnings allowed), 1 problems found, 2 usage error.
`;

/** `mcp-portal validate`; `args` are the arguments after "validate". */
export async function validateCommand(args: string[], io: CommandIo): Promise<number> {
  const options = await commandOptions(io, USAGE, () => parseOptions(args, io.env));
  if (typeof options === "number") return options;
  const { problems, warnings, allowedImages } = await validateTreeReport(options.dataDir, {
    overlays: options.overlays,
    maxFileBytes: options.maxFileBytes,
    defaultAllowedImages: options.defaultAllowedImages,
    pools: options.pools,
    backend: options.backend,
  });
  if (options.output === "json") {
    writeJson(io, {
      ok: problems.length === 0,
      problems,
      warnings,
      allowed_images: allowedImages ? { source: allowedImages.source, globs: allowedImages.globs } : null,
    });
  } else {
    for (const problem of problems) io.stdout.write(`${formatProblem(problem)}\n`);
    for (const warning of warnings) io.stdout.write(`warning: ${formatProblem(warning)}\n`);
    const files = new Set(problems.map((p) => p.file)).size;
    if (allowedImages) io.stderr.write(`validate: ${describeAllowedImages(allowedImages)}\n`);
    io.stderr.write(
      problems.length === 0
        ? `validate: ${options.display}: no problems\n`
        : `validate: ${options.display}: ${plural(problems.length, "problem")} in ${plural(files, "file")}\n`,
    );
  }
  return problems.length === 0 ? 0 : 1;
}

interface ValidateOptions {
  dataDir: string;
  /** The data dir as the summary line shows it (relative to the working directory when inside it). */
  display: string;
  output: OutputFormat;
  overlays: readonly string[] | "all";
  maxFileBytes: number;
  defaultAllowedImages: readonly string[] | undefined;
  pools: PoolSettings;
  backend: Backend;
}

async function parseOptions(args: string[], env: NodeJS.ProcessEnv): Promise<ValidateOptions | "help"> {
  const { values } = parseCommandArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      "data-dir": { type: "string" },
      output: { type: "string", default: "text" },
      overlays: { type: "string" },
      "all-overlays": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const output = outputFormat(values.output);
  if (values["all-overlays"] && values.overlays !== undefined) {
    throw new UsageError("--overlays and --all-overlays exclude each other");
  }
  const config = loadConfig(env, {
    MCP_PORTAL_DATA_DIR: values["data-dir"],
    MCP_PORTAL_OVERLAYS: values.overlays,
  });
  if (values.help) return "help";
  if (!(await isDirectory(config.dataDir))) {
    throw new UsageError(`data dir ${config.dataDir} does not exist or is not a directory`);
  }
  return {
    dataDir: config.dataDir,
    display: displayPath(config.dataDir),
    output,
    overlays: values["all-overlays"] ? "all" : config.overlays,
    maxFileBytes: config.maxFileBytes,
    defaultAllowedImages: config.defaultAllowedImages,
    pools: config,
    backend: config.backend,
  };
}

function displayPath(dir: string): string {
  const relative = path.relative(process.cwd(), dir);
  if (relative === "") return ".";
  return relative.startsWith("..") || path.isAbsolute(relative) ? dir : relative;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
