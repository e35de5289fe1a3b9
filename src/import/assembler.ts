import { isImageAllowed } from "../desired/image-policy.js";
import { ServerDefinition } from "../schema/catalog.js";
import { SERVER_ID_PATTERN } from "../util/ids.js";
import { type ServerReport, newReport } from "./report.js";

/*
 * What every importer shares once a source entry has been mapped: server ids (sanitised, unique, not defined by
 * another base catalog), the data dir's image policy, and the final check against the catalog schema. An entry
 * that fails any of them is skipped with the reason; nothing that the schema rejects is ever kept.
 */

export interface ConvertOptions {
  /** policy.json `allowed_images`; entries whose image it forbids are skipped. */
  allowedImages?: readonly string[];
  /** Ids other base catalogs already define (id -> file): a second definition would make the tree invalid. */
  takenIds?: ReadonlyMap<string, string>;
}

export interface ConvertResult {
  servers: Record<string, unknown>[];
  reports: ServerReport[];
}

export class CatalogAssembler {
  private readonly servers: Record<string, unknown>[] = [];
  private readonly reports: ServerReport[] = [];
  private readonly usedIds = new Set<string>();

  constructor(private readonly options: ConvertOptions) {}

  /** A new report for one source entry, kept in the result whatever becomes of the entry. */
  report(name: string, origin: string): ServerReport {
    const report = newReport(name, origin);
    this.reports.push(report);
    return report;
  }

  /** Adds a report made elsewhere (entries that could not be read). */
  addReport(report: ServerReport): void {
    this.reports.push(report);
  }

  /** Whether policy.json lets this image run; otherwise the entry is skipped with the reason. */
  imageAllowed(image: string, report: ServerReport): boolean {
    if (this.options.allowedImages && !isImageAllowed(image, this.options.allowedImages)) {
      skip(report, `image "${image}" is not allowed by policy.json allowed_images`);
      return false;
    }
    return true;
  }

  /**
   * A free server id made from `base` (sanitised to ^[a-zA-Z0-9_-]{1,32}$, `-2`, `-3`... on a clash within this
   * import); undefined (entry skipped) when none can be made or another base catalog defines it.
   */
  claimId(base: string, report: ServerReport): string | undefined {
    const id = serverId(base, this.usedIds);
    if (id === undefined) return skip(report, `name "${report.name}" gives no usable server id`);
    if (id !== base) {
      report.notes.push(
        `id "${id}" ("${base}" does not match ^[a-zA-Z0-9_-]{1,32}$ or is taken in this import)`,
      );
    } else if (id !== report.name) {
      report.notes.push(`id "${id}" (the last part of the name)`);
    }
    const takenBy = this.options.takenIds?.get(id);
    if (takenBy !== undefined) return skip(report, `server id "${id}" is already defined in ${takenBy}`);
    return id;
  }

  /** Keeps the server if it passes the catalog schema; otherwise the entry is skipped with the first issue. */
  accept(server: Record<string, unknown>, report: ServerReport): boolean {
    const checked = ServerDefinition.safeParse(server);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      skip(
        report,
        `does not fit the catalog schema: ${issue ? `${issue.path.join(".")}: ${issue.message}` : "invalid"}`,
      );
      return false;
    }
    const id = server.id as string;
    report.status = "imported";
    report.id = id;
    this.usedIds.add(id);
    this.servers.push(server);
    return true;
  }

  result(): ConvertResult {
    return { servers: this.servers, reports: this.reports };
  }
}

/** Marks the entry skipped with the reason; returns undefined so callers can `return skip(...)`. */
export function skip(report: ServerReport, reason: string): undefined {
  report.status = "skipped";
  report.reason = reason;
  return undefined;
}

/** The name sanitised to ^[a-zA-Z0-9_-]{1,32}$, made unique among `used` with a -2, -3... suffix. */
export function serverId(name: string, used: ReadonlySet<string>): string | undefined {
  const base = name
    .replace(/[^a-zA-Z0-9_-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 32)
    .replace(/-+$/, "");
  if (base === "") return undefined;
  if (!used.has(base)) return base;
  for (let n = 2; n < 1000; n++) {
    const suffix = `-${n}`;
    const candidate = `${base.slice(0, 32 - suffix.length)}${suffix}`;
    if (!used.has(candidate) && SERVER_ID_PATTERN.test(candidate)) return candidate;
  }
  return undefined;
}
