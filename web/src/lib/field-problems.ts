/*
 * Puts the API's `file: path: reason` lines next to the form field they are about. The lines are shown exactly as
 * the API sent them; only where they go is decided here. Pure, unit-tested under Node.
 */

/** A per-server config form: environment rows by key, volume rows by index and field. */
export type FieldKey = `env:${string}` | `volume:${string}` | "form";

const ENV = /(?:^|\.)environment(?:\.([A-Za-z_][A-Za-z0-9_]*)|\["((?:[^"\\]|\\.)*)"\])/;
const VOLUME = /(?:^|\.)volumes\[(\d+)\](?:\.([a-z_]+))?/;

/** The JSONPath part of a problem line (`request body: $.environment.X: reason` → `$.environment.X`). */
export function problemPath(line: string): string | undefined {
  const match = /: (\$[^:]*|line \d+, column \d+): /.exec(line);
  return match?.[1];
}

/** Where one problem line of an enable request belongs. */
export function fieldOf(line: string): FieldKey {
  const path = problemPath(line);
  if (path === undefined) return "form";
  // Problems of enabled-servers.json point into the entry's config; problems of the request body at its root.
  const inConfig =
    path.includes(".config.") || path.startsWith("$.environment") || path.startsWith("$.volumes");
  if (!inConfig) return "form";
  const env = ENV.exec(path);
  if (env) return `env:${env[1] ?? (JSON.parse(`"${env[2] ?? ""}"`) as string)}`;
  const volume = VOLUME.exec(path);
  if (volume) return volume[2] ? `volume:${volume[1] ?? ""}:${volume[2]}` : `volume:${volume[1] ?? ""}`;
  return "form";
}

/** Problem lines grouped by the field they belong to. */
export function groupProblems(lines: readonly string[]): Map<FieldKey, string[]> {
  const out = new Map<FieldKey, string[]>();
  for (const line of lines) {
    const key = fieldOf(line);
    out.set(key, [...(out.get(key) ?? []), line]);
  }
  return out;
}
