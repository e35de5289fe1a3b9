import { watch, type FSWatcher } from "chokidar";
import { lstat, realpath } from "node:fs/promises";
import path from "node:path";
import { isValidUserId } from "../util/ids.js";

export type DataChange =
  | { scope: "global"; file: string; event: string }
  | { scope: "user"; userId: string; file: string; event: string };

/** Which part of the desired state a changed path belongs to (pure; paths relative to the data dir). */
function classifyDataPath(
  relPath: string,
): { scope: "global" } | { scope: "user"; userId: string } | undefined {
  const parts = relPath.split(/[\\/]/).filter((p) => p.length > 0);
  if (parts.length === 0) return undefined;
  if (parts[0] === "catalogs" || (parts.length === 1 && parts[0] === "policy.json"))
    return { scope: "global" };
  if (parts[0] === "users" && parts[1] !== undefined) {
    return isValidUserId(parts[1]) ? { scope: "user", userId: parts[1] } : undefined;
  }
  return undefined;
}

export interface DataWatcherOptions {
  dataDir: string;
  /** Never watched: the controller's own writes must not trigger it. */
  ignoredDirs: string[];
  onChange: (change: DataChange) => void;
  onError: (error: unknown) => void;
}

export interface DataWatcher {
  close(): Promise<void>;
}

/**
 * chokidar over the data dir; events only name what to look at, the reconcile reads the files itself. When the
 * data dir is a symlink swapped to a new checkout (the git-sync pattern), the link is watched too and the tree
 * watcher moves to the new target, reporting a global change.
 */
export async function watchDataDir(options: DataWatcherOptions): Promise<DataWatcher> {
  const link = path.resolve(options.dataDir);
  let target = await realpath(link);
  let tree = watchTree(target, options);
  let linkWatcher: FSWatcher | undefined;
  if ((await lstat(link)).isSymbolicLink()) {
    linkWatcher = watch(path.dirname(link), {
      ignoreInitial: true,
      depth: 0,
      followSymlinks: false,
      ignored: (p: string) => path.resolve(p) !== link && path.resolve(p) !== path.dirname(link),
    });
    linkWatcher.on("all", () => {
      void realpath(link).then(
        async (next) => {
          if (next === target) return;
          target = next;
          const old = tree;
          tree = watchTree(next, options);
          await old.close();
          options.onChange({ scope: "global", file: ".", event: "swap" });
        },
        (error: unknown) => options.onError(error),
      );
    });
    linkWatcher.on("error", options.onError);
  }
  return {
    async close() {
      await Promise.all([tree.close(), linkWatcher?.close()]);
    },
  };
}

function watchTree(root: string, options: DataWatcherOptions): FSWatcher {
  const ignored = options.ignoredDirs.map((d) => path.resolve(d));
  const watcher = watch(root, {
    ignoreInitial: true,
    followSymlinks: true,
    ignored: (p: string) => {
      const abs = path.resolve(p);
      if (ignored.some((d) => abs === d || abs.startsWith(d + path.sep))) return true;
      const rel = path.relative(root, abs);
      // ".mcp-portal" is the default state dir: under a swapped symlink its path no longer matches ignoredDirs.
      return rel
        .split(path.sep)
        .some((part) => part === ".git" || part === "node_modules" || part === ".mcp-portal");
    },
  });
  watcher.on("all", (event, changed) => {
    const rel = path.relative(root, path.resolve(changed));
    const scope = classifyDataPath(rel);
    if (!scope) return;
    const file = rel.split(path.sep).join("/");
    options.onChange(
      scope.scope === "global"
        ? { scope: "global", file, event }
        : { scope: "user", userId: scope.userId, file, event },
    );
  });
  watcher.on("error", options.onError);
  return watcher;
}
