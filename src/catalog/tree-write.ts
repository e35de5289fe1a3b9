import { constants } from "node:fs";
import { lstat, mkdir } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-write.js";
import { type Problem, formatProblem } from "../validate/problem.js";
import {
  checkTreeDir,
  errnoCode,
  isUserScoped,
  openedPath,
  resolveRoot,
  symlinkRefused,
} from "./tree-paths.js";

export type TreeWriteErrorCode = "TREE_DIR_MISSING" | "TREE_PATH_REFUSED";

/** A write into the data tree that was refused; `problem` names the file (or directory) and why. */
export class TreeWriteError extends Error {
  override readonly name = "TreeWriteError";
  constructor(
    readonly code: TreeWriteErrorCode,
    readonly problem: Problem,
  ) {
    super(formatProblem(problem));
  }
}

export interface TreeWriteOptions {
  mode?: number;
  /** Create missing directories on the way (each checked like an existing one); else TREE_DIR_MISSING. */
  createDirs?: boolean;
}

/** Enough for any path of the layout (`users/<id>/<file>`), with room for an admin's deeper links. */
const MAX_COMPONENTS = 16;

/**
 * Writes `relPath` of the data tree atomically, under the same rules as reading it: every directory on the way
 * is checked (no link under users/, nothing leading outside the data dir), the target is never a link (a link is
 * neither written through nor replaced) nor anything but a regular file, and the temp file is created with
 * O_EXCL|O_NOFOLLOW inside the checked directory, verified through its descriptor, then renamed over the target.
 */
export async function writeTreeFile(
  dataDir: string,
  relPath: string,
  data: string | Uint8Array,
  options: TreeWriteOptions = {},
): Promise<void> {
  const root = await resolveRoot(dataDir);
  if (root === undefined) {
    throw new TreeWriteError("TREE_DIR_MISSING", {
      file: ".",
      path: "$",
      message: "the data dir does not exist",
    });
  }
  const dir = await verifiedDir(root, path.posix.dirname(relPath), options.createDirs === true);
  const name = path.posix.basename(relPath);
  const target = path.join(dir, name);
  await refuseNonRegular(target, relPath);

  await writeFileAtomic(target, data, {
    ...(options.mode !== undefined ? { mode: options.mode } : {}),
    flags: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mkdir: false,
    verify: async (handle, tmp) => {
      if ((await openedPath(handle, tmp)) !== tmp) {
        throw new TreeWriteError("TREE_PATH_REFUSED", {
          file: path.posix.dirname(relPath),
          path: "$",
          message: "was replaced while being written to; refused",
        });
      }
    },
  });
}

/** The real path of `relDir`, checked (and created component by component when asked). */
async function verifiedDir(root: string, relDir: string, create: boolean): Promise<string> {
  for (let attempt = 0; attempt <= MAX_COMPONENTS; attempt++) {
    const check = await checkTreeDir(root, relDir);
    if (check.status === "ok") return check.dir;
    if (check.status === "refused") throw new TreeWriteError("TREE_PATH_REFUSED", check.problem);
    if (!create) {
      throw new TreeWriteError("TREE_DIR_MISSING", {
        file: check.file,
        path: "$",
        message: "does not exist",
      });
    }
    // The parent of the missing component was checked just now; create only this one level.
    try {
      await mkdir(path.join(root, check.file), { mode: 0o755 });
    } catch (error) {
      if (errnoCode(error) !== "EEXIST") throw error;
    }
  }
  throw new TreeWriteError("TREE_PATH_REFUSED", { file: relDir, path: "$", message: "too many levels" });
}

async function refuseNonRegular(target: string, relPath: string): Promise<void> {
  let info;
  try {
    info = await lstat(target);
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return;
    throw error;
  }
  if (info.isSymbolicLink()) {
    throw new TreeWriteError(
      "TREE_PATH_REFUSED",
      isUserScoped(relPath)
        ? symlinkRefused(relPath)
        : {
            file: relPath,
            path: "$",
            message: "is a symbolic link; it is neither written through nor replaced (change it in git)",
          },
    );
  }
  if (!info.isFile()) {
    throw new TreeWriteError("TREE_PATH_REFUSED", {
      file: relPath,
      path: "$",
      message: "not a regular file; refused",
    });
  }
}
