import { stat } from "node:fs/promises";
import path from "node:path";
import { DATA_PATHS } from "../catalog/data-tree.js";
import { loadConfig } from "../config.js";
import { type BuildResult, type ImportSource, buildCatalog, importedCount } from "../import/catalog.js";
import {
  IMPORT_KINDS,
  IMPORT_KIND_TITLES,
  type ImportKind,
  isImportKind,
  loadImportSource,
} from "../import/importers.js";
import {
  DEFAULT_RUNNER_IMAGES,
  RUNNER_IMAGE_ENV,
  type RunnerImages,
  runnerImages,
} from "../import/mcp-registry/runners.js";
import { ImportError, type ServerReport } from "../import/report.js";
import { readTreeContext } from "../import/tree-context.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import {
  type OutputFormat,
  commandOptions,
  outputFormat,
  parseCommandArgs,
  usageFailure,
  writeJson,
} from "./common.js";
import { type CommandIo, UsageError } from "./io.js";

const USAGE = `Usage: mcp-portal import docker-mcp|mcp-registry <file-or-dir> --out catalogs/base/<name>.json [options]

Converts another catalog format into a base catalog file (CatalogFile, source "base").
  docker-mcp    Docker's MCP catalog: the catalog YAML ("docker mcp catalog show --format yaml": a top-level
                "registry:" map), one registry server.yaml, or a directory of <name>/server.yaml files (a
                docker/mcp-registry checkout or its servers/ directory). Remote and poci entries are skipped.
  mcp-registry  The official MCP registry's server.json: one document, an array of them, a registry API page
                ({"servers": [{"server": ..., "_meta": ...}]}), or a directory of *.json and <name>/server.json
                files. $schema must be a published dated schema from 2025-09-29 on (or absent: read as the
                latest). OCI packages run as images; npm and PyPI packages run on a runner image (npx/uvx with
                the pinned version, fetched when the container starts); remotes are not runnable.
Every server is reported: what was mapped, what was dropped or refused and why. The result is checked against
the catalog schema and the data dir's policy.json before it is written (atomically); an existing file is kept
unless --force.

Options:
  --out FILE                 where to write; relative paths are taken from the data dir (required)
  --data-dir DIR             the GitOps tree (policy.json, other base catalogs); else MCP_PORTAL_DATA_DIR, else .
  --name NAME                metadata.name of the catalog; else the source's own name, else the file's name
  --force                    overwrite an existing --out file
  --dry-run                  report only, write nothing
  --output FORMAT            text (default) or json: {"ok","written","out","kind","format","servers":[...]}
  --npm-runner-image IMAGE   mcp-registry: image:tag npm packages run on (npx); else ${RUNNER_IMAGE_ENV.npm},
                             else ${DEFAULT_RUNNER_IMAGES.npm}
  --pypi-runner-image IMAGE  mcp-registry: image:tag PyPI packages run on (uvx); else ${RUNNER_IMAGE_ENV.pypi},
                             else ${DEFAULT_RUNNER_IMAGES.pypi}

Exit codes: 0 written (or would be, with --dry-run), 1 error or nothing to import, 2 usage error.
`;

interface ImportOptions {
  kind: ImportKind;
  input: string;
  out: string;
  dataDir: string;
  name: string | undefined;
  force: boolean;
  dryRun: boolean;
  output: OutputFormat;
  maxFileBytes: number;
  runners: RunnerImages;
  /** MCP_PORTAL_ALLOWED_IMAGES: the allow-list when policy.json gives none. */
  defaultAllowedImages: readonly string[] | undefined;
}

/** `mcp-portal import`; `args` are the arguments after "import". */
export async function importCommand(args: string[], io: CommandIo): Promise<number> {
  const [kind, ...rest] = args;
  if (kind === "--help" || kind === "-h" || kind === "help") {
    io.stdout.write(USAGE);
    return 0;
  }
  if (!isImportKind(kind)) {
    const problem = kind === undefined ? "missing source kind" : `unknown source kind "${kind}"`;
    return usageFailure(io, USAGE, `${problem} (supported: ${IMPORT_KINDS.join(", ")})`);
  }
  const options = await commandOptions(io, USAGE, () => parseOptions(kind, rest, io.env));
  if (typeof options === "number") return options;
  try {
    return await runImport(options, io);
  } catch (error) {
    if (!(error instanceof ImportError)) throw error;
    if (options.output === "json") {
      writeJson(io, { ok: false, error: error.message });
    } else {
      io.stderr.write(`import ${kind}: ${error.message}\n`);
    }
    return 1;
  }
}

function parseOptions(kind: ImportKind, args: string[], env: NodeJS.ProcessEnv): ImportOptions | "help" {
  const { values, positionals } = parseCommandArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      out: { type: "string" },
      "data-dir": { type: "string" },
      name: { type: "string" },
      force: { type: "boolean", default: false },
      "dry-run": { type: "boolean", default: false },
      output: { type: "string", default: "text" },
      "npm-runner-image": { type: "string" },
      "pypi-runner-image": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  if (positionals.length !== 1) throw new UsageError("give exactly one input file or directory");
  if (values.out === undefined || values.out === "") throw new UsageError("--out is required");
  if (!values.out.endsWith(".json")) throw new UsageError("--out must name a .json file");
  const output = outputFormat(values.output);
  if (values.name !== undefined && values.name.trim() === "")
    throw new UsageError("--name must not be empty");
  const runnerFlags = { npm: values["npm-runner-image"], pypi: values["pypi-runner-image"] };
  if (kind !== "mcp-registry" && (runnerFlags.npm !== undefined || runnerFlags.pypi !== undefined)) {
    throw new UsageError("--npm-runner-image and --pypi-runner-image apply to mcp-registry only");
  }
  let runners: RunnerImages;
  try {
    runners = runnerImages(runnerFlags, env);
  } catch (error) {
    if (error instanceof ImportError) throw new UsageError(error.message);
    throw error;
  }
  const config = loadConfig(env, { MCP_PORTAL_DATA_DIR: values["data-dir"] });
  return {
    kind,
    input: path.resolve(positionals[0]!),
    out: path.resolve(config.dataDir, values.out),
    dataDir: config.dataDir,
    name: values.name?.trim(),
    force: values.force,
    dryRun: values["dry-run"],
    output,
    maxFileBytes: config.maxFileBytes,
    runners,
    defaultAllowedImages: config.defaultAllowedImages,
  };
}

async function runImport(options: ImportOptions, io: CommandIo): Promise<number> {
  const source = await loadImportSource(options.kind, options.input, options.runners);
  const outRel = relativeInside(options.dataDir, options.out);
  const warnings: string[] = [];
  if (outRel === undefined || path.posix.dirname(outRel) !== DATA_PATHS.baseDir) {
    warnings.push(
      `${options.out} is not in ${DATA_PATHS.baseDir}/ of ${options.dataDir}: the controller will not read it there`,
    );
  }
  if (!options.force && (await exists(options.out))) {
    throw new ImportError(`${options.out} exists; use --force to overwrite it`);
  }
  const tree = await readTreeContext(
    options.dataDir,
    outRel,
    options.maxFileBytes,
    options.defaultAllowedImages,
  );
  warnings.push(...tree.warnings);
  const name = options.name ?? source.catalogName ?? path.basename(options.out, ".json");
  const result: BuildResult = buildCatalog(source, {
    name,
    version: "1",
    description: `Imported from ${path.basename(options.input)} (${IMPORT_KIND_TITLES[options.kind]}) by mcp-portal import ${options.kind}`,
    ...(tree.allowedImages ? { allowedImages: tree.allowedImages } : {}),
    takenIds: tree.takenIds,
  });
  const imported = importedCount(result.reports);
  const ok = imported > 0;
  if (!ok) warnings.push("no server could be imported; nothing written");
  const write = ok && !options.dryRun;
  if (write) await writeJsonAtomic(options.out, result.catalog);

  if (options.output === "json") {
    writeJson(io, {
      ok,
      written: write,
      out: options.out,
      kind: options.kind,
      format: source.format,
      imported,
      skipped: result.reports.length - imported,
      warnings,
      servers: result.reports,
    });
  } else {
    io.stdout.write(formatReport(options, source, result.reports));
    for (const warning of warnings) io.stderr.write(`warning: ${warning}\n`);
    const verb = write ? "wrote" : options.dryRun && ok ? "would write" : "did not write";
    io.stderr.write(
      `import ${options.kind}: ${imported} of ${result.reports.length} server(s) imported, ${result.reports.length - imported} skipped; ${verb} ${options.out}\n`,
    );
  }
  return ok ? 0 : 1;
}

/** The per-server report, the same for every importer. */
function formatReport(
  options: { input: string; out: string },
  source: Pick<ImportSource, "label">,
  reports: readonly ServerReport[],
): string {
  const lines = [`${options.input} (${source.label}) -> ${options.out}`];
  for (const report of reports) {
    if (report.status === "imported") {
      lines.push(`  imported ${report.name}${report.id !== report.name ? ` as ${report.id}` : ""}`);
    } else {
      lines.push(`  skipped  ${report.name}: ${report.reason ?? "unknown reason"}`);
    }
    for (const note of report.notes) lines.push(`      note: ${note}`);
    for (const dropped of report.dropped) lines.push(`      dropped ${dropped.field}: ${dropped.reason}`);
  }
  return `${lines.join("\n")}\n`;
}

function relativeInside(root: string, file: string): string | undefined {
  const relative = path.relative(root, file);
  if (relative === "" || relative.startsWith("..") || path.isAbsolute(relative)) return undefined;
  return relative.split(path.sep).join("/");
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
