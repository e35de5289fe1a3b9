import type { ServerReport } from "../report.js";
import { formatProblem, resolveInput } from "./inputs.js";
import type { Argument } from "./schema.js";

/*
 * packageArguments (and npx/uvx runtimeArguments) become command-line tokens: a positional argument is its value,
 * a named one `name value` (two tokens, as MCP clients run it).
 * Values the user would supply cannot be templated in our catalog: an optional one is left out, a required one
 * makes the whole server unusable and is reported as the reason to skip it.
 */

export type ArgumentsResult = { ok: true; tokens: string[] } | { ok: false; reason: string };

/** `where` names the list in reports: `packageArguments`, `runtimeArguments`. */
export function argumentTokens(
  args: readonly Argument[] | undefined,
  where: string,
  report: ServerReport,
): ArgumentsResult {
  const tokens: string[] = [];
  for (const [i, arg] of (args ?? []).entries()) {
    const label = `${where}[${i}] ${arg.type === "named" ? arg.name : `(${arg.valueHint ?? arg.value ?? "?"})`}`;
    const resolved = resolveInput(arg);
    if (resolved.kind === "user") {
      const what = resolved.secret ? "a secret" : `user input (${resolved.needs.join(", ") || "value"})`;
      if (arg.isRequired === true) {
        return {
          ok: false,
          reason: `${label} needs ${what}; arguments cannot be set per user in mcp-portal (only environment and volumes)`,
        };
      }
      report.dropped.push({ field: label, reason: `optional, needs ${what}: left out` });
      continue;
    }
    if (resolved.kind === "absent") {
      if (arg.isRequired === true) {
        return {
          ok: false,
          reason: `${label} is required and has no value or default; arguments cannot be set per user in mcp-portal`,
        };
      }
      report.dropped.push({ field: label, reason: "optional, no value or default: left out" });
      continue;
    }
    const problem = formatProblem(arg, resolved.value);
    if (problem !== undefined) {
      if (arg.isRequired === true) return { ok: false, reason: `${label}: ${problem}` };
      report.dropped.push({ field: label, reason: problem });
      continue;
    }
    if (resolved.kind === "default") {
      report.notes.push(
        `${label}: the default ${JSON.stringify(resolved.value)} is used (fixed for every user)`,
      );
    }
    if (arg.isRepeated === true) report.notes.push(`${label}: repeatable, given once`);
    if (arg.format === "filepath") {
      report.notes.push(`${label}: ${JSON.stringify(resolved.value)} is a path inside the container`);
    }
    if (arg.type === "named") tokens.push(arg.name, resolved.value);
    else tokens.push(resolved.value);
  }
  return { ok: true, tokens };
}

/** Values of arguments by valueHint and name (without leading dashes too), for `{name}` holes in a transport URL. */
export function argumentValues(args: readonly Argument[] | undefined): Map<string, string> {
  const values = new Map<string, string>();
  for (const arg of args ?? []) {
    const resolved = resolveInput(arg);
    if (resolved.kind !== "fixed" && resolved.kind !== "default") continue;
    if (arg.type === "positional" && arg.valueHint !== undefined) values.set(arg.valueHint, resolved.value);
    if (arg.type === "named") {
      values.set(arg.name, resolved.value);
      values.set(arg.name.replace(/^-+/, ""), resolved.value);
    }
  }
  return values;
}
