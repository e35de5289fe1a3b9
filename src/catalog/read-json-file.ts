import { open } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { sha256Hex } from "../util/canonical-json.js";
import { type Problem, problemsFromZod } from "../validate/problem.js";

export const DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024;

/**
 * A file of the desired-state tree as read once. `missing` is a real absence; anything that could not be
 * read or validated is `invalid` and must never be mistaken for an empty file.
 */
export type LoadedFile<T> =
  | { status: "ok"; file: string; value: T; hash: string }
  | { status: "missing"; file: string }
  | { status: "invalid"; file: string; problems: Problem[]; hash?: string };

export interface ReadOptions {
  maxBytes?: number;
}

/** Reads `relPath` under `dataDir` as bytes, refusing anything over the size cap without reading it whole. */
export async function readCappedFile(
  dataDir: string,
  relPath: string,
  options: ReadOptions = {},
): Promise<
  { status: "ok"; bytes: Buffer } | { status: "missing" } | { status: "invalid"; problem: Problem }
> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  let handle;
  try {
    handle = await open(path.join(dataDir, relPath), "r");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return { status: "missing" };
    return {
      status: "invalid",
      problem: { file: relPath, path: "$", message: `cannot read: ${errnoText(error)}` },
    };
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      return { status: "invalid", problem: { file: relPath, path: "$", message: "not a regular file" } };
    }
    if (stat.size > maxBytes) {
      return {
        status: "invalid",
        problem: {
          file: relPath,
          path: "$",
          message: `file is ${stat.size} bytes, over the ${maxBytes}-byte cap`,
        },
      };
    }
    // Read one byte past the cap so a file that grew after stat is still refused.
    const buffer = Buffer.alloc(Math.min(maxBytes + 1, stat.size + 1));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > maxBytes) {
      return {
        status: "invalid",
        problem: { file: relPath, path: "$", message: `file is over the ${maxBytes}-byte cap` },
      };
    }
    return { status: "ok", bytes: buffer.subarray(0, bytesRead) };
  } catch (error) {
    return {
      status: "invalid",
      problem: { file: relPath, path: "$", message: `cannot read: ${errnoText(error)}` },
    };
  } finally {
    await handle.close();
  }
}

export async function readJsonFile<S extends z.ZodType>(
  dataDir: string,
  relPath: string,
  schema: S,
  options: ReadOptions = {},
): Promise<LoadedFile<z.output<S>>> {
  const read = await readCappedFile(dataDir, relPath, options);
  if (read.status === "missing") return { status: "missing", file: relPath };
  if (read.status === "invalid") return { status: "invalid", file: relPath, problems: [read.problem] };
  return parseJsonBytes(relPath, read.bytes, schema);
}

export function parseJsonBytes<S extends z.ZodType>(
  relPath: string,
  bytes: Buffer,
  schema: S,
): LoadedFile<z.output<S>> {
  const hash = sha256Hex(bytes);
  const text = bytes.toString("utf8");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { status: "invalid", file: relPath, hash, problems: [jsonSyntaxProblem(relPath, text, error)] };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    return { status: "invalid", file: relPath, hash, problems: problemsFromZod(relPath, parsed.error) };
  return { status: "ok", file: relPath, value: parsed.data, hash };
}

export function jsonSyntaxProblem(file: string, text: string, error: unknown): Problem {
  const message = error instanceof Error ? error.message : String(error);
  const match = /at position (\d+)/.exec(message);
  const position = match ? Number(match[1]) : text.length;
  const { line, column } = lineAndColumn(text, position);
  const reason = message.replace(/\s*\(line \d+ column \d+\)/, "").replace(/ in JSON at position \d+/, "");
  return { file, path: `line ${line}, column ${column}`, message: `invalid JSON: ${reason}` };
}

function lineAndColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < position && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: position - lineStart + 1 };
}

export function isErrno(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}

function errnoText(error: unknown): string {
  if (typeof error === "object" && error !== null && "code" in error) return String(error.code);
  return error instanceof Error ? error.message : String(error);
}
