/* The per-server report every importer produces, and the error that stops an import as a whole. */

export interface DroppedField {
  field: string;
  reason: string;
}

export interface ServerReport {
  /** The name in the source (registry key, server.yaml `name`, server.json `name`). */
  name: string;
  /** Where the entry came from: a file, or `<file>: registry.<name>`, `<file>: servers[3]`. */
  origin: string;
  status: "imported" | "skipped";
  /** Our server id when imported. */
  id?: string;
  /** Why the whole entry was skipped. */
  reason?: string;
  /** What was mapped in a way worth knowing (renames, defaults taken, volumes moved into the user's area). */
  notes: string[];
  /** What has no equivalent (or was refused), with the reason. */
  dropped: DroppedField[];
}

export class ImportError extends Error {
  readonly code = "IMPORT_FAILED";
}

export function newReport(name: string, origin: string): ServerReport {
  return { name, origin, status: "skipped", notes: [], dropped: [] };
}

/** A report for an entry that could not be read or parsed at all. */
export function unreadableReport(name: string, origin: string, reason: string): ServerReport {
  return { ...newReport(name, origin), reason };
}
