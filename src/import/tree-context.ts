import { DATA_PATHS, listJsonFiles } from "../catalog/data-tree.js";
import { readCappedFile, readJsonFile } from "../catalog/read-json-file.js";
import { PolicyFile } from "../schema/policy.js";
import { type Problem, formatProblem } from "../validate/problem.js";
import { ImportError } from "./report.js";

/*
 * What an import must respect in the data dir it writes into, read the same way by the CLI and the API: the
 * image policy (an invalid policy.json stops the import: images cannot be checked), and the ids other base
 * catalogs define (a second definition would make the whole tree invalid).
 */

export interface TreeContext {
  /**
   * policy.json `allowed_images`, else MCP_PORTAL_ALLOWED_IMAGES (`defaultAllowedImages`); undefined when
   * neither gives any (every image passes).
   */
  allowedImages?: readonly string[];
  /** Server id -> the base catalog (relative path) defining it. */
  takenIds: Map<string, string>;
  /** Things the caller should show (a base catalog that is not JSON, so its ids were not checked). */
  warnings: string[];
}

export class InvalidPolicyError extends ImportError {
  constructor(readonly problems: readonly Problem[]) {
    super(
      `cannot check images against an invalid ${DATA_PATHS.policy}:\n  ${problems.map(formatProblem).join("\n  ")}`,
    );
  }
}

/** `target` (relative, e.g. catalogs/base/x.json) is the file being replaced: its own ids do not count. */
export async function readTreeContext(
  dataDir: string,
  target: string | undefined,
  maxBytes: number,
  defaultAllowedImages?: readonly string[],
): Promise<TreeContext> {
  const policy = await readJsonFile(dataDir, DATA_PATHS.policy, PolicyFile, { maxBytes });
  if (policy.status === "invalid") throw new InvalidPolicyError(policy.problems);
  const allowedImages =
    (policy.status === "ok" ? policy.value.allowed_images : undefined) ?? defaultAllowedImages;
  const warnings: string[] = [];
  const takenIds = new Map<string, string>();
  const listing = await listJsonFiles(dataDir, DATA_PATHS.baseDir);
  for (const file of listing.names) {
    if (file === target) continue;
    const read = await readCappedFile(dataDir, file, { maxBytes });
    if (read.status !== "ok") continue;
    let servers: unknown;
    try {
      servers = (JSON.parse(read.bytes.toString("utf8")) as { servers?: unknown } | null)?.servers;
    } catch {
      warnings.push(`${file} is not valid JSON: its server ids were not checked for collisions`);
      continue;
    }
    if (!Array.isArray(servers)) continue;
    for (const server of servers) {
      const id = (server as { id?: unknown } | null)?.id;
      if (typeof id === "string" && !takenIds.has(id)) takenIds.set(id, file);
    }
  }
  return { ...(allowedImages ? { allowedImages } : {}), takenIds, warnings };
}
