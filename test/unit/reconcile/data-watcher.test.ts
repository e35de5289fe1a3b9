import { mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type DataChange, type DataWatcher, watchDataDir } from "../../../src/reconcile/data-watcher.js";
import { useTempDirs } from "../catalog/fixtures.js";

const tempDir = useTempDirs("mcp-portal-watch-");
const watchers: DataWatcher[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
});

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function put(root: string, rel: string, text = "{}"): Promise<void> {
  await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
  await writeFile(path.join(root, rel), text);
}

async function watching(dataDir: string): Promise<DataChange[]> {
  const changes: DataChange[] = [];
  const watcher = await watchDataDir({
    dataDir,
    ignoredDirs: [path.join(dataDir, ".mcp-portal")],
    onChange: (change) => changes.push(change),
    onError: () => undefined,
  });
  watchers.push(watcher);
  await watcher.ready;
  return changes;
}

/** Touches a file the watcher must see until it did: everything before it has been delivered. */
async function sentinel(root: string, changes: DataChange[], n: number): Promise<void> {
  const before = changes.length;
  const seen = () =>
    changes.slice(before).some((c) => c.file === "users/alice/enabled-servers.json" && c.event === "change");
  for (let attempt = 0; attempt < 20 && !seen(); attempt++) {
    await put(root, "users/alice/enabled-servers.json", `{"servers":[],"n":${n},"a":${attempt}}`);
    await until(`sentinel ${n}`, seen, 300).catch(() => undefined);
  }
  expect(seen()).toBe(true);
}

describe("data watcher", () => {
  it("does not follow a link in a user's folder nor descend into it", async () => {
    const parent = await tempDir();
    const root = path.join(parent, "data");
    const elsewhere = path.join(parent, "elsewhere");
    await put(root, "users/alice/enabled-servers.json", '{"servers":[]}');
    await put(elsewhere, "sub/enabled-servers.json");
    await symlink(elsewhere, path.join(root, "users/alice/x"));
    await symlink(elsewhere, path.join(root, "users/bob"));
    const changes = await watching(root);
    await sentinel(root, changes, 0);
    await put(elsewhere, "sub/enabled-servers.json", '{"changed":1}');
    await put(elsewhere, "enabled-servers.json", '{"changed":2}');
    await put(elsewhere, "new-dir/custom-servers.json");
    await new Promise((r) => setTimeout(r, 500));
    await sentinel(root, changes, 1);
    expect(
      changes.filter((c) => c.file.startsWith("users/alice/x") || c.file.startsWith("users/bob/")),
    ).toEqual([]);
  });

  it("ignores what lies deeper than the tree's layout, and files that are not part of it", async () => {
    const root = path.join(await tempDir(), "data");
    await put(root, "users/alice/enabled-servers.json", '{"servers":[]}');
    await put(root, "users/alice/a/b/c/enabled-servers.json");
    await put(root, "catalogs/base/deep/er/x.json");
    const changes = await watching(root);
    await sentinel(root, changes, 0);
    await put(root, "users/alice/a/b/c/enabled-servers.json", '{"x":1}');
    await put(root, "users/alice/a/b/c/d/e/f.json");
    await put(root, "catalogs/base/deep/er/x.json", '{"x":1}');
    await put(root, "users/alice/notes.txt", "hello");
    await new Promise((r) => setTimeout(r, 500));
    await sentinel(root, changes, 1);
    expect(new Set(changes.map((c) => c.file))).toEqual(new Set(["users/alice/enabled-servers.json"]));
  });

  it("still reports every file of the layout and new users", async () => {
    const root = path.join(await tempDir(), "data");
    await put(root, "users/alice/enabled-servers.json", '{"servers":[]}');
    // Directories created in a burst under a new one may be missed by chokidar's scan (the addDir of the
    // parent is reported, which re-reads everything anyway): create them first.
    await mkdir(path.join(root, "catalogs/base"), { recursive: true });
    await mkdir(path.join(root, "catalogs/overlays"), { recursive: true });
    const changes = await watching(root);
    await put(root, "catalogs/base/main.json");
    await put(root, "catalogs/overlays/prod.json");
    await put(root, "policy.json");
    await put(root, "users/bob/custom-servers.json");
    await put(root, "users/alice/secrets.env", "");
    // An editor's save-by-rename.
    await writeFile(path.join(root, "users/alice/.enabled-servers.json.swp"), '{"servers":[1]}');
    await rename(
      path.join(root, "users/alice/.enabled-servers.json.swp"),
      path.join(root, "users/alice/enabled-servers.json"),
    );
    const seen = (file: string) => changes.some((c) => c.file === file);
    await until("every change", () =>
      [
        "catalogs/base/main.json",
        "catalogs/overlays/prod.json",
        "policy.json",
        "users/bob/custom-servers.json",
        "users/alice/secrets.env",
        "users/alice/enabled-servers.json",
      ].every(seen),
    );
    expect(changes.find((c) => c.file === "users/bob/custom-servers.json")).toMatchObject({
      scope: "user",
      userId: "bob",
    });
    expect(changes.find((c) => c.file === "policy.json")).toMatchObject({ scope: "global" });
  });

  it("watches a user folder again after it was a link and is a real directory once more", async () => {
    const root = path.join(await tempDir(), "data");
    await put(root, "users/alice/enabled-servers.json", '{"servers":[]}');
    await put(root, "users/bob/enabled-servers.json", '{"servers":[]}');
    const changes = await watching(root);
    await sentinel(root, changes, 0);
    // alice's folder becomes a link to bob's: reported (the directory went away).
    await rename(path.join(root, "users/alice"), path.join(root, "attic"));
    await symlink("bob", path.join(root, "users/alice"));
    await until("alice's folder gone", () =>
      changes.some((c) => c.file === "users/alice" && c.event === "unlinkDir"),
    );
    await new Promise((r) => setTimeout(r, 1200));
    // Fixed: a real directory again; later edits in it must be reported.
    await rm(path.join(root, "users/alice"));
    await mkdir(path.join(root, "users/alice"));
    await until("alice's folder back", () =>
      changes.some((c) => c.file === "users/alice" && c.event === "addDir"),
    );
    const before = changes.length;
    await new Promise((r) => setTimeout(r, 300));
    await put(root, "users/alice/enabled-servers.json", '{"servers":[],"edited":true}');
    await until("the edit", () =>
      changes.slice(before).some((c) => c.file === "users/alice/enabled-servers.json"),
    );
  });

  it("notices a change behind an admin's link inside the data dir, and costs nothing for links to large trees", async () => {
    const root = path.join(await tempDir(), "data");
    await put(root, "users/alice/enabled-servers.json", '{"servers":[]}');
    await put(root, "shared/main.json");
    await mkdir(path.join(root, "catalogs/base"), { recursive: true });
    await symlink("../../shared/main.json", path.join(root, "catalogs/base/main.json"));
    await symlink("/usr", path.join(root, "catalogs/base/usr.json"));
    await symlink("/usr", path.join(root, "users/alice/custom-servers.json"));
    const changes = await watching(root);
    await sentinel(root, changes, 0);
    for (const n of [1, 2]) {
      const before = changes.length;
      await put(root, "shared/main.json", `{"n":${n}}`);
      await until(`change ${n} behind the link`, () =>
        changes.slice(before).some((c) => c.file === "catalogs/base/main.json" && c.event === "change"),
      );
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(changes.filter((c) => c.file.includes("usr") || c.file.startsWith("users/alice/custom"))).toEqual(
      [],
    );
  });
});
