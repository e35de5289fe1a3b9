import { cp, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const EXAMPLE_DIR = path.join(REPO_ROOT, "manifests/example");

/** A private copy of manifests/example to break one thing in. */
export async function copyExample(target: string): Promise<string> {
  await cp(EXAMPLE_DIR, target, { recursive: true });
  return target;
}

/** Rewrites a JSON file of the tree through `edit` (which may mutate in place). */
export async function editJson(
  dataDir: string,
  relPath: string,
  edit: (value: Record<string, unknown>) => void,
): Promise<void> {
  const file = path.join(dataDir, relPath);
  const value = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  edit(value);
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** `value.servers[index]` as a mutable record. */
export function serverAt(value: Record<string, unknown>, index: number): Record<string, unknown> {
  const servers = value.servers as Record<string, unknown>[];
  const found = servers[index];
  if (found === undefined) throw new Error(`no server at index ${index}`);
  return found;
}

export function serversOf(value: Record<string, unknown>): Record<string, unknown>[] {
  return value.servers as Record<string, unknown>[];
}
