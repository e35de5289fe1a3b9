import { constants } from "node:fs";
import { type FileHandle, lstat, open, realpath } from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { sha256Hex } from "../util/canonical-json.js";
import { type Problem, problemsFromZod } from "../validate/problem.js";
import {
  checkTreeDir,
  errnoCode,
  isInside,
  isUserScoped,
  openedPath,
  outsideRefused,
  resolveRoot,
  symlinkRefused,
} from "./tree-paths.js";

export const DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024;
/** Our formats nest at most 6 levels; anything much deeper is an attack on the parser, not a file. */
export const MAX_JSON_DEPTH = 64;

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

export type CappedRead =
  { status: "ok"; bytes: Buffer } | { status: "missing" } | { status: "invalid"; problem: Problem };

// O_NONBLOCK: opening a FIFO must not wait for a writer. O_NOCTTY: a terminal never becomes ours.
const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * Reads `relPath` of the data tree, refusing without reading it: a link anywhere under users/, a link leading
 * outside the data dir, anything but a regular file (devices, FIFOs, sockets), and anything over the size cap.
 * The file is opened first and checked through its descriptor (fstat, and where it really is), then at most
 * the cap is read, so a file swapped or grown meanwhile is refused too.
 */
export async function readCappedFile(
  dataDir: string,
  relPath: string,
  options: ReadOptions = {},
): Promise<CappedRead> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  const invalid = (problem: Problem): CappedRead => ({ status: "invalid", problem });
  const cannotRead = (error: unknown) =>
    invalid({ file: relPath, path: "$", message: `cannot read: ${errnoCode(error)}` });
  let root: string | undefined;
  try {
    root = await resolveRoot(dataDir);
  } catch (error) {
    return cannotRead(error);
  }
  if (root === undefined) return { status: "missing" };
  const dir = await checkTreeDir(root, path.posix.dirname(relPath));
  if (dir.status === "missing") return { status: "missing" };
  if (dir.status === "refused") return invalid(dir.problem);

  const lexical = path.join(dir.dir, path.posix.basename(relPath));
  const userScoped = isUserScoped(relPath);
  if (!userScoped) {
    // Look before opening: a link out of the tree (to a device, say) is never opened at all.
    const target = await linkTarget(lexical);
    if (target.status === "missing") return { status: "missing" };
    if (target.status === "dangling")
      return invalid({ file: relPath, path: "$", message: "is a symbolic link to nothing" });
    if (target.status === "error") return cannotRead(target.error);
    if (!isInside(root, target.path)) return invalid(outsideRefused(relPath));
  }
  let handle: FileHandle;
  try {
    handle = await open(lexical, READ_FLAGS | (userScoped ? constants.O_NOFOLLOW : 0));
  } catch (error) {
    const code = errnoCode(error);
    if (code === "ENOENT") return { status: "missing" };
    if (code === "ELOOP" && userScoped) return invalid(symlinkRefused(relPath));
    return cannotRead(error);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile())
      return invalid({
        file: relPath,
        path: "$",
        message: `not a regular file (${fileKind(info)}); refused`,
      });
    const real = await openedPath(handle, lexical);
    if (userScoped && real !== lexical)
      return invalid({ file: relPath, path: "$", message: "was replaced while being opened; refused" });
    if (!userScoped && (real === undefined || !isInside(root, real))) return invalid(outsideRefused(relPath));
    if (info.size > maxBytes) {
      return invalid({
        file: relPath,
        path: "$",
        message: `file is ${info.size} bytes, over the ${maxBytes}-byte cap`,
      });
    }
    // Read one byte past the cap so a file that grew after fstat is still refused.
    const buffer = Buffer.alloc(Math.min(maxBytes + 1, info.size + 1));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled > maxBytes) {
      return invalid({ file: relPath, path: "$", message: `file is over the ${maxBytes}-byte cap` });
    }
    return { status: "ok", bytes: buffer.subarray(0, filled) };
  } catch (error) {
    return cannotRead(error);
  } finally {
    await handle.close();
  }
}

type LinkTarget =
  | { status: "ok"; path: string }
  | { status: "missing" }
  | { status: "dangling" }
  | { status: "error"; error: unknown };

/** Where `file` leads: itself, or the resolved target of a link. */
async function linkTarget(file: string): Promise<LinkTarget> {
  try {
    const info = await lstat(file);
    if (!info.isSymbolicLink()) return { status: "ok", path: file };
  } catch (error) {
    return errnoCode(error) === "ENOENT" ? { status: "missing" } : { status: "error", error };
  }
  try {
    return { status: "ok", path: await realpath(file) };
  } catch (error) {
    return errnoCode(error) === "ENOENT" ? { status: "dangling" } : { status: "error", error };
  }
}

function fileKind(info: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (info.isDirectory()) return "directory";
  if (info.isFIFO()) return "FIFO";
  if (info.isSocket()) return "socket";
  if (info.isCharacterDevice()) return "character device";
  if (info.isBlockDevice()) return "block device";
  return "special file";
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
  const tooDeep = depthOver(bytes, MAX_JSON_DEPTH);
  if (tooDeep !== undefined) {
    return {
      status: "invalid",
      file: relPath,
      hash,
      problems: [
        {
          file: relPath,
          path: `line ${tooDeep.line}, column ${tooDeep.column}`,
          message: `nested deeper than ${MAX_JSON_DEPTH} levels; refused without parsing`,
        },
      ],
    };
  }
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
  const reason = message
    .replace(/\s*\(line \d+ column \d+\)/, "")
    .replace(/ in JSON at position \d+/, "")
    // V8 quotes the start of the text ("Unexpected token 'S', "SECRET-VAL"... is not valid JSON"): never echo content.
    .replace(/, ".*" is not valid JSON$/s, "");
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

/**
 * Where JSON nesting first goes past `limit` levels (brackets inside strings do not count), as 1-based line and
 * column; undefined when it never does. One pass over the bytes: UTF-8 continuation bytes never look like ASCII.
 */
export function depthOver(bytes: Uint8Array, limit: number): { line: number; column: number } | undefined {
  let depth = 0;
  let inString = false;
  let line = 1;
  let column = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if ((b & 0xc0) !== 0x80) column++;
    if (b === 0x0a) {
      line++;
      column = 0;
    } else if (inString) {
      if (b === 0x5c) {
        i++; // the escaped character (never a line break inside a valid string)
        column++;
      } else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > limit) return { line, column };
    } else if (b === 0x5d || b === 0x7d) depth--;
  }
  return undefined;
}
