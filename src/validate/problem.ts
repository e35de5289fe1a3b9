import type { z } from "zod";

/** One thing wrong with one file of the desired-state tree, in `file: path: reason` terms. */
export interface Problem {
  /** Path relative to the data dir, with forward slashes. */
  file: string;
  /** JSONPath-like location (`$.servers[3].image`), or `line L, column C` for syntax errors, or `$`. */
  path: string;
  message: string;
}

export function formatProblem(problem: Problem): string {
  return `${problem.file}: ${problem.path}: ${problem.message}`;
}

export function jsonPath(segments: readonly PropertyKey[]): string {
  let out = "$";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (typeof segment === "string" && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) out += `.${segment}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

export function problemsFromZod(file: string, error: z.ZodError): Problem[] {
  const problems: Problem[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        problems.push({ file, path: jsonPath([...issue.path, key]), message: "unknown field" });
      }
      continue;
    }
    if (issue.code === "invalid_key") {
      // zod's own text is "Invalid key in record"; the key schema's message says what is wrong with the name.
      const reasons = issue.issues.map((inner) => inner.message);
      problems.push({ file, path: jsonPath(issue.path), message: `invalid key: ${reasons.join("; ")}` });
      continue;
    }
    problems.push({ file, path: jsonPath(issue.path), message: issue.message });
  }
  return problems;
}

export function sortProblems(problems: readonly Problem[]): Problem[] {
  return [...problems].sort((a, b) =>
    a.file !== b.file ? (a.file < b.file ? -1 : 1) : a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
  );
}
