import { watch, type FSWatcher } from "chokidar";
import type { Stats } from "node:fs";
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
  /** Settles once the first scan is done: changes from then on are reported. */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** The files a user directory may hold; nothing else in it matters to the desired state. */
const USER_FILES: ReadonlySet<string> = new Set([
  "enabled-servers.json",
  "custom-servers.json",
  "secrets.env",
]);
const CATALOG_DIRS: ReadonlySet<string> = new Set(["base", "overlays"]);

/**
 * Whether a path of the tree (relative to its root, `/`-separated) belongs to the data-directory layout:
 * `policy.json`, `catalogs/{base,overlays}/*.json`, `users/<id>/{enabled-servers.json,custom-servers.json,
 * secrets.env}` and the directories on the way. Nothing else is watched, so a user's folder cannot make the
 * watcher walk a large or deep tree.
 */
export function isLayoutPath(relPath: string): boolean {
  if (relPath === "") return true;
  const parts = relPath.split("/");
  const [top, second = "", third = ""] = parts;
  if (top === "policy.json") return parts.length === 1;
  if (top === "catalogs") {
    if (parts.length === 1) return true;
    if (!CATALOG_DIRS.has(second)) return false;
    return parts.length === 2 || (parts.length === 3 && third.endsWith(".json") && !third.startsWith("."));
  }
  if (top === "users") {
    if (parts.length === 1) return true;
    if (!isValidUserId(second)) return false;
    return parts.length === 2 || (parts.length === 3 && USER_FILES.has(third));
  }
  return false;
}

/** The layout is three levels deep (`users/<id>/<file>`): chokidar never descends further. */
const LAYOUT_DEPTH = 2;

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
    ready: new Promise((resolve) => tree.once("ready", () => resolve())),
    async close() {
      await Promise.all([tree.close(), linkWatcher?.close()]);
    },
  };
}

function watchTree(root: string, options: DataWatcherOptions): FSWatcher {
  const ignored = options.ignoredDirs.map((d) => path.resolve(d));
  const watcher = watch(root, {
    ignoreInitial: true,
    // Links under users/ are never followed: they are filtered out below (on lstat's answer) before chokidar acts
    // on them. Links of the admin's part are followed so that a change behind one is seen; like everything else,
    // only at the layout's positions and at most LAYOUT_DEPTH deep, so even a link to /usr costs one listing.
    // (With followSymlinks off, chokidar keeps a link later replaced by a directory as a file, never watching
    // inside it, and misses changes behind an admin's link.)
    followSymlinks: true,
    depth: LAYOUT_DEPTH,
    ignored: (p: string, stats?: Stats) => {
      const abs = path.resolve(p);
      if (ignored.some((d) => abs === d || abs.startsWith(d + path.sep))) return true;
      const rel = path.relative(root, abs);
      if (rel.startsWith("..") || path.isAbsolute(rel)) return true;
      const posixRel = rel.split(path.sep).join("/");
      if (!isLayoutPath(posixRel)) return true;
      // Links under users/ are refused when read, so nothing is lost by not watching them; replacing a watched
      // file or directory by one is still reported (as its removal).
      return stats?.isSymbolicLink() === true && posixRel.startsWith("users/");
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
