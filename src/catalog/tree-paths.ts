import { type FileHandle, lstat, readlink, realpath, stat } from "node:fs/promises";
import path from "node:path";
import type { Problem } from "../validate/problem.js";

/*
 * Where a path of the data tree may lead. A user owns (commits to) `users/<id>/`, so nothing under `users/` may
 * be a symbolic link: not `users` itself, not a user's directory, not a file in it. The admin's part (catalogs,
 * overlays, policy.json) may use links, but only ones that resolve inside the data dir. The data dir itself may
 * be a link (git-sync swaps one to the current checkout): callers work on its resolved path, the "root".
 */

export const USERS_DIR = "users";

/** True for `users` and anything below it: the part of the tree users commit to. */
export function isUserScoped(relPath: string): boolean {
  return relPath === USERS_DIR || relPath.startsWith(`${USERS_DIR}/`);
}

export function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

export const symlinkRefused = (file: string): Problem => ({
  file,
  path: "$",
  message:
    "is a symbolic link; links are refused under users/ (what depends on it is left as it is until it is a real " +
    (file.split("/").length <= 2 ? "directory)" : "file)"),
});

export const outsideRefused = (file: string): Problem => ({
  file,
  path: "$",
  message: "resolves outside the data directory; refused",
});

/** The data dir with every link resolved; undefined when it does not exist. */
export async function resolveRoot(dataDir: string): Promise<string | undefined> {
  try {
    return await realpath(dataDir);
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return undefined;
    throw error;
  }
}

export type DirCheck =
  | { status: "ok"; dir: string }
  | { status: "missing"; file: string }
  | { status: "refused"; problem: Problem };

/**
 * Walks from `root` to `relDir` one component at a time with lstat. Under users/ every component must be a real
 * directory; elsewhere a component may be a link whose target is inside `root`. `dir` is the directory's real
 * path (for writes and for checking where an opened file really is).
 */
export async function checkTreeDir(root: string, relDir: string): Promise<DirCheck> {
  const parts = relDir.split("/").filter((p) => p !== "" && p !== ".");
  let current = root;
  for (let i = 0; i < parts.length; i++) {
    const rel = parts.slice(0, i + 1).join("/");
    const next = path.join(current, parts[i] ?? "");
    let info;
    try {
      info = await lstat(next);
    } catch (error) {
      const code = errnoCode(error);
      if (code === "ENOENT") return { status: "missing", file: rel };
      return { status: "refused", problem: { file: rel, path: "$", message: `cannot read: ${code}` } };
    }
    if (info.isSymbolicLink()) {
      if (isUserScoped(rel)) return { status: "refused", problem: symlinkRefused(rel) };
      let target: string;
      try {
        target = await realpath(next);
      } catch (error) {
        const code = errnoCode(error);
        if (code === "ENOENT") return { status: "missing", file: rel };
        return { status: "refused", problem: { file: rel, path: "$", message: `cannot read: ${code}` } };
      }
      if (!isInside(root, target)) return { status: "refused", problem: outsideRefused(rel) };
      if (!(await stat(target)).isDirectory())
        return { status: "refused", problem: { file: rel, path: "$", message: "not a directory" } };
      current = target;
      continue;
    }
    if (!info.isDirectory())
      return { status: "refused", problem: { file: rel, path: "$", message: "not a directory" } };
    current = next;
  }
  return { status: "ok", dir: current };
}

/**
 * The path an open file really has. Linux names it in /proc/self/fd (exact, whatever links were on the way);
 * elsewhere the lexical path is resolved and must be the same file (device and inode) as the one opened.
 */
export async function openedPath(handle: FileHandle, lexical: string): Promise<string | undefined> {
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    try {
      const [resolved, opened] = await Promise.all([realpath(lexical), handle.stat()]);
      const now = await stat(resolved);
      return now.dev === opened.dev && now.ino === opened.ino ? resolved : undefined;
    } catch {
      return undefined;
    }
  }
}

export function errnoCode(error: unknown): string {
  if (typeof error === "object" && error !== null && "code" in error) return String(error.code);
  return error instanceof Error ? error.message : String(error);
}
