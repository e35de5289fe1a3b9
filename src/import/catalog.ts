import { BaseCatalogFile } from "../schema/catalog.js";
import type { ConvertOptions, ConvertResult } from "./assembler.js";
import { ImportError, type ServerReport } from "./report.js";
import { truncate } from "./text.js";

/** A source an importer has read: it knows how to map its entries; the catalog around them is built here. */
export interface ImportSource {
  /** Short machine name of the input shape (`catalog`, `registry-dir`, `server-json`, `api-page`...). */
  format: string;
  /** The same for people: "Docker MCP catalog", "MCP registry API page"... */
  label: string;
  /** A catalog name the source itself carries, if any. */
  catalogName?: string;
  convert(options: ConvertOptions): ConvertResult;
}

export interface BuildOptions extends ConvertOptions {
  name: string;
  version: string;
  description?: string;
}

export interface BuildResult {
  /** The catalog file to write, already checked against BaseCatalogFile. */
  catalog: Record<string, unknown>;
  /** One per source entry, sorted by name. */
  reports: ServerReport[];
}

/** Converts the source's entries and wraps them in a base CatalogFile, checked against the schema. */
export function buildCatalog(source: ImportSource, options: BuildOptions): BuildResult {
  const converted = source.convert(options);
  const reports = [...converted.reports].sort((a, b) => a.name.localeCompare(b.name, "en"));
  const catalog: Record<string, unknown> = {
    version: options.version,
    source: "base",
    metadata: {
      name: truncate(options.name, 256),
      ...(options.description ? { description: truncate(options.description, 4096) } : {}),
    },
    servers: converted.servers,
  };
  const checked = BaseCatalogFile.safeParse(catalog);
  if (!checked.success) {
    const issues = checked.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ImportError(
      `the converted catalog fails validation (a bug; nothing written): ${issues.join("; ")}`,
    );
  }
  return { catalog, reports };
}

export function importedCount(reports: readonly ServerReport[]): number {
  return reports.filter((r) => r.status === "imported").length;
}
