import type { ImportSource } from "./catalog.js";
import { loadDockerMcpSource } from "./docker-mcp.js";
import { mcpRegistrySource } from "./mcp-registry/convert.js";
import { readRegistryInput } from "./mcp-registry/load.js";
import type { RunnerImages } from "./mcp-registry/runners.js";

/** The source formats `mcp-portal import <kind>` and the migration endpoint's `format=` accept. */
export const IMPORT_KINDS = ["docker-mcp", "mcp-registry"] as const;
export type ImportKind = (typeof IMPORT_KINDS)[number];

export function isImportKind(value: string | undefined): value is ImportKind {
  return (IMPORT_KINDS as readonly (string | undefined)[]).includes(value);
}

/** What each kind says it reads, for usage texts and catalog descriptions. */
export const IMPORT_KIND_TITLES: Record<ImportKind, string> = {
  "docker-mcp": "Docker MCP catalog",
  "mcp-registry": "MCP registry server.json",
};

/** Reads a file or directory of the given kind. */
export async function loadImportSource(
  kind: ImportKind,
  input: string,
  runners: RunnerImages,
): Promise<ImportSource> {
  if (kind === "docker-mcp") return loadDockerMcpSource(input);
  return mcpRegistrySource(await readRegistryInput(input), runners);
}
