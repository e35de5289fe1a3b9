import { stat } from "node:fs/promises";
import path from "node:path";
import { DATA_PATHS, listJsonFiles } from "../catalog/data-tree.js";
import { readCappedFile, readJsonFile } from "../catalog/read-json-file.js";
import { loadConfig } from "../config.js";
import {
  type BuildResult,
  ImportError,
  type InputFormat,
  type ServerReport,
  buildCatalog,
  loadDockerMcpSource,
} from "../import/docker-mcp.js";
import { PolicyFile } from "../schema/policy.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import { formatProblem } from "../validate/problem.js";
import {
  type OutputFormat,
  commandOptions,
  outputFormat,
  parseCommandArgs,
  usageFailure,
  writeJson,
} from "./common.js";
import { type CommandIo, UsageError } from "./io.js";

const USAGE = `Usage: mcp-portal import docker-mcp <file-or-dir> --out catalogs/base/<name>.json [options]

Converts Docker's MCP catalog into a base catalog file (CatalogFile, source "base"). The input is either the
catalog YAML ("docker mcp catalog show --format yaml": a top-level "registry:" map), one registry server.yaml,
or a directory of <name>/server.yaml files (a docker/mcp-registry checkout or its servers/ directory).
Every server is reported: what was mapped, what was dropped and why; remote and poci entries are skipped.
The result is checked against the catalog schema and the data dir's policy.json before it is written
(atomically); an existing file is kept unless --force.

Options:
  --out FILE         where to write; relative paths are taken from the data dir (required)
  --data-dir DIR     the GitOps tree (policy.json, other base catalogs); else MCP_PORTAL_DATA_DIR, else .
  --name NAME        metadata.name of the catalog; else the catalog's displayName, else the file's name
  --force            overwrite an existing --out file
  --dry-run          report only, write nothing
  --output FORMAT    text (default) or json: {"ok","written","out","format","servers":[...]}

Exit codes: 0 written (or would be, with --dry-run), 1 error or nothing to import, 2 usage error.
`;

interface ImportOptions {
  input: string;
  out: string;
  dataDir: string;
  name: string | undefined;
  force: boolean;
  dryRun: boolean;
  output: OutputFormat;
  maxFileBytes: number;
}

/** `mcp-portal import`; `args` are the arguments after "import". */
export async function importCommand(args: string[], io: CommandIo): Promise<number> {
  const [kind, ...rest] = args;
  if (kind === "--help" || kind === "-h" || kind === "help") {
    io.stdout.write(USAGE);
    return 0;
  }
  if (kind !== "docker-mcp") {
    const problem = kind === undefined ? "missing source kind" : `unknown source kind "${kind}"`;
    return usageFailure(io, USAGE, `${problem} (supported: docker-mcp)`);
  }
  const options = await commandOptions(io, USAGE, () => parseOptions(rest, io.env));
  if (typeof options === "number") return options;
  try {
    return await runImport(options, io);
  } catch (error) {
    if (!(error instanceof ImportError)) throw error;
    if (options.output === "json") {
      writeJson(io, { ok: false, error: error.message });
    } else {
      io.stderr.write(`import docker-mcp: ${error.message}\n`);
    }
    return 1;
  }
}

function parseOptions(args: string[], env: NodeJS.ProcessEnv): ImportOptions | "help" {
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
  const config = loadConfig(env, { MCP_PORTAL_DATA_DIR: values["data-dir"] });
  return {
    input: path.resolve(positionals[0]!),
    out: path.resolve(config.dataDir, values.out),
    dataDir: config.dataDir,
    name: values.name?.trim(),
    force: values.force,
    dryRun: values["dry-run"],
    output,
    maxFileBytes: config.maxFileBytes,
  };
}

async function runImport(options: ImportOptions, io: CommandIo): Promise<number> {
  const source = await loadDockerMcpSource(options.input);
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
  const allowedImages = await loadAllowedImages(options.dataDir, options.maxFileBytes);
  const takenIds = await idsOfOtherBaseCatalogs(options.dataDir, outRel, options.maxFileBytes, warnings);
  const name = options.name ?? source.catalogName ?? path.basename(options.out, ".json");
  const result: BuildResult = buildCatalog(source, {
    name,
    version: "1",
    description: `Imported from ${path.basename(options.input)} by mcp-portal import docker-mcp`,
    ...(allowedImages ? { allowedImages } : {}),
    takenIds,
  });
  const imported = result.reports.filter((r) => r.status === "imported").length;
  const ok = imported > 0;
  if (!ok) warnings.push("no server could be imported; nothing written");
  const write = ok && !options.dryRun;
  if (write) await writeJsonAtomic(options.out, result.catalog);

  if (options.output === "json") {
    writeJson(io, {
      ok,
      written: write,
      out: options.out,
      format: source.format,
      imported,
      skipped: result.reports.length - imported,
      warnings,
      servers: result.reports,
    });
  } else {
    io.stdout.write(formatReport(options, source.format, result.reports));
    for (const warning of warnings) io.stderr.write(`warning: ${warning}\n`);
    const verb = write ? "wrote" : options.dryRun && ok ? "would write" : "did not write";
    io.stderr.write(
      `import docker-mcp: ${imported} of ${result.reports.length} server(s) imported, ${result.reports.length - imported} skipped; ${verb} ${options.out}\n`,
    );
  }
  return ok ? 0 : 1;
}

const FORMAT_NAMES: Record<InputFormat, string> = {
  catalog: "Docker MCP catalog",
  "server-yaml": "registry server.yaml",
  "registry-dir": "directory of registry server.yaml files",
};

function formatReport(options: ImportOptions, format: InputFormat, reports: readonly ServerReport[]): string {
  const lines = [`${options.input} (${FORMAT_NAMES[format]}) -> ${options.out}`];
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

/** policy.json's allowed_images; undefined when there is no policy.json. An invalid one stops the import. */
async function loadAllowedImages(dataDir: string, maxBytes: number): Promise<readonly string[] | undefined> {
  const policy = await readJsonFile(dataDir, DATA_PATHS.policy, PolicyFile, { maxBytes });
  if (policy.status === "missing") return undefined;
  if (policy.status === "invalid") {
    throw new ImportError(
      `cannot check images against an invalid ${DATA_PATHS.policy}:\n  ${policy.problems.map(formatProblem).join("\n  ")}`,
    );
  }
  return policy.value.allowed_images;
}

/** Server ids the other base catalogs define: a second definition of an id makes the whole tree invalid. */
async function idsOfOtherBaseCatalogs(
  dataDir: string,
  outRel: string | undefined,
  maxBytes: number,
  warnings: string[],
): Promise<Map<string, string>> {
  const taken = new Map<string, string>();
  const listing = await listJsonFiles(dataDir, DATA_PATHS.baseDir);
  for (const file of listing.names) {
    if (file === outRel) continue;
    const read = await readCappedFile(dataDir, file, { maxBytes });
    if (read.status !== "ok") continue;
    let servers: unknown;
    try {
      servers = (JSON.parse(read.bytes.toString("utf8")) as { servers?: unknown }).servers;
    } catch {
      warnings.push(`${file} is not valid JSON: its server ids were not checked for collisions`);
      continue;
    }
    if (!Array.isArray(servers)) continue;
    for (const server of servers) {
      const id = (server as { id?: unknown } | null)?.id;
      if (typeof id === "string" && !taken.has(id)) taken.set(id, file);
    }
  }
  return taken;
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
