import { execFile } from "node:child_process";
import { mkdir, symlink, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  listJsonFiles,
  listUserDirs,
  loadGlobalFiles,
  loadUserFiles,
} from "../../../src/catalog/data-tree.js";
import { parseJsonBytes, readCappedFile } from "../../../src/catalog/read-json-file.js";
import { UserCatalogFile } from "../../../src/schema/catalog.js";
import { SecretsFileError } from "../../../src/secrets/errors.js";
import { readSecretsFile } from "../../../src/secrets/store.js";
import { formatProblem } from "../../../src/validate/problem.js";
import { server, useTempDirs } from "./fixtures.js";

const tempDir = useTempDirs("mcp-portal-tree-");
const exec = promisify(execFile);

async function put(root: string, rel: string, content: unknown): Promise<void> {
  const file = path.join(root, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof content === "string" ? content : JSON.stringify(content));
}

const CUSTOM = (name: string, env: Record<string, string> = {}) => ({
  version: "1",
  source: "user",
  metadata: { name },
  servers: [server(`${name}-srv`, { environment: env })],
});

/** A data dir with bob's private server and an empty mallory. */
async function tree(): Promise<string> {
  const root = path.join(await tempDir(), "data");
  await put(
    root,
    "users/bob/custom-servers.json",
    CUSTOM("bob", { BOB_URL: "https://bob:hunter2@internal" }),
  );
  await put(root, "users/bob/enabled-servers.json", { servers: [] });
  await mkdir(path.join(root, "users/mallory"), { recursive: true });
  return root;
}

const texts = (problems: readonly { file: string; path: string; message: string }[]) =>
  problems.map(formatProblem).join("\n");

describe("symbolic links under users/", () => {
  it("refuses a user's file that links to another user's file, and shows none of its content", async () => {
    const root = await tree();
    await symlink("../bob/custom-servers.json", path.join(root, "users/mallory/custom-servers.json"));
    const files = await loadUserFiles(root, "mallory");
    expect(files.custom.status).toBe("invalid");
    const problems = files.custom.status === "invalid" ? texts(files.custom.problems) : "";
    expect(problems).toMatch(/^users\/mallory\/custom-servers\.json: \$: .*symbolic link/);
    expect(problems).not.toContain("hunter2");
    expect(problems).not.toContain("bob-srv");
  });

  it("refuses a user directory that is a symbolic link (never reads it as missing) and lists it with a problem", async () => {
    const root = await tree();
    await symlink("bob", path.join(root, "users/eve"));
    await symlink("/nonexistent-target", path.join(root, "users/ghost"));
    for (const user of ["eve", "ghost"]) {
      const files = await loadUserFiles(root, user);
      expect(files.enabled.status).toBe("invalid");
      expect(files.custom.status).toBe("invalid");
      if (files.enabled.status === "invalid")
        expect(texts(files.enabled.problems)).toMatch(new RegExp(`^users/${user}: \\$: .*symbolic link`));
    }
    const listing = await listUserDirs(root);
    expect(listing.names).toEqual(["bob", "eve", "ghost", "mallory"]);
    expect(listing.problems.map((p) => p.file)).toEqual(["users/eve", "users/ghost"]);
    expect(texts(listing.problems)).toMatch(/symbolic link/);
    // The secrets file behind a linked directory is refused too, not read as "no secrets".
    await expect(readSecretsFile(root, "eve")).rejects.toBeInstanceOf(SecretsFileError);
    await expect(readSecretsFile(root, "ghost")).rejects.toBeInstanceOf(SecretsFileError);
  });

  it("refuses users/ itself being a symbolic link", async () => {
    const root = path.join(await tempDir(), "data");
    await put(root, "elsewhere/alice/enabled-servers.json", { servers: [] });
    await symlink("elsewhere", path.join(root, "users"));
    const files = await loadUserFiles(root, "alice");
    expect(files.enabled.status).toBe("invalid");
    expect(texts((await listUserDirs(root)).problems)).toMatch(/^users: \$: .*symbolic link/);
  });

  it("refuses secrets.env linked to /dev/zero without reading it, and a FIFO without blocking", async () => {
    const root = await tree();
    await symlink("/dev/zero", path.join(root, "users/mallory/secrets.env"));
    const started = Date.now();
    const error = await readSecretsFile(root, "mallory").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SecretsFileError);
    expect((error as SecretsFileError).problems.join("\n")).toMatch(/symbolic link/);
    await exec("mkfifo", [path.join(root, "users/bob/secrets.env")]);
    const fifo = await readSecretsFile(root, "bob").catch((e: unknown) => e);
    expect(fifo).toBeInstanceOf(SecretsFileError);
    expect((fifo as SecretsFileError).problems.join("\n")).toMatch(/not a regular file/);
    expect(Date.now() - started).toBeLessThan(2000);
  }, 5000);

  it("refuses a secrets.env over the size cap without reading it", async () => {
    const root = await tree();
    const file = path.join(root, "users/bob/secrets.env");
    await writeFile(file, "");
    await truncate(file, 600 * 1024 * 1024);
    const before = process.memoryUsage().rss;
    const error = await readSecretsFile(root, "bob").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SecretsFileError);
    expect((error as SecretsFileError).problems.join("\n")).toMatch(/over the \d+-byte cap/);
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 * 1024);
  });
});

describe("links in the admin's part of the tree", () => {
  it("follows links that stay inside the data dir, refuses those that leave it", async () => {
    const root = path.join(await tempDir(), "data");
    const outside = path.join(path.dirname(root), "outside");
    await put(outside, "x.json", { version: "1", source: "base", metadata: { name: "x" }, servers: [] });
    await put(root, "shared/main.json", {
      version: "1",
      source: "base",
      metadata: { name: "m" },
      servers: [],
    });
    await put(root, "shared/policy.json", { allowed_images: ["*"] });
    await mkdir(path.join(root, "catalogs/base"), { recursive: true });
    await symlink("../../shared/main.json", path.join(root, "catalogs/base/main.json"));
    await symlink(path.join(outside, "x.json"), path.join(root, "catalogs/base/x.json"));
    await symlink("/etc/passwd", path.join(root, "policy.json"));
    const global = await loadGlobalFiles(root, []);
    expect(global.base.map((f) => [f.file, f.status])).toEqual([
      ["catalogs/base/main.json", "ok"],
      ["catalogs/base/x.json", "invalid"],
    ]);
    expect(global.base[1]?.status === "invalid" ? texts(global.base[1].problems) : "").toMatch(
      /^catalogs\/base\/x\.json: \$: resolves outside the data directory/,
    );
    expect(global.policy.status).toBe("invalid");
    expect(global.policy.status === "invalid" ? texts(global.policy.problems) : "").toMatch(
      /^policy\.json: \$: resolves outside the data directory/,
    );
    await symlink("shared/policy.json", path.join(root, "policy2.json"));
    expect((await readCappedFile(root, "policy2.json")).status).toBe("ok");
  });

  it("refuses a catalogs directory that leads outside the data dir", async () => {
    const root = path.join(await tempDir(), "data");
    const outside = path.join(path.dirname(root), "outside");
    await put(outside, "base/x.json", { version: "1", source: "base", metadata: { name: "x" }, servers: [] });
    await mkdir(root, { recursive: true });
    await symlink(outside, path.join(root, "catalogs"));
    const listing = await listJsonFiles(root, "catalogs/base");
    const loaded = await loadGlobalFiles(root, []);
    expect(
      [...listing.problems, ...loaded.base.flatMap((f) => (f.status === "invalid" ? f.problems : []))].length,
    ).toBeGreaterThan(0);
    expect(loaded.base.every((f) => f.status !== "ok")).toBe(true);
  });

  it("reads a data dir that is itself a symbolic link (git-sync), users included", async () => {
    const parent = await tempDir();
    const checkout = path.join(parent, "rev-a");
    await put(checkout, "users/alice/enabled-servers.json", { servers: [] });
    await put(checkout, "users/alice/custom-servers.json", CUSTOM("alice"));
    await symlink(checkout, path.join(parent, "current"));
    const files = await loadUserFiles(path.join(parent, "current"), "alice");
    expect(files.enabled.status).toBe("ok");
    expect(files.custom.status).toBe("ok");
    expect((await listUserDirs(path.join(parent, "current"))).problems).toEqual([]);
  });
});

describe("deeply nested JSON", () => {
  it("is refused quickly with a clear problem instead of being parsed", () => {
    const depth = 2_000_000;
    const deep = Buffer.from("[".repeat(depth) + "]".repeat(depth));
    const started = Date.now();
    const result = parseJsonBytes("users/a/custom-servers.json", deep, UserCatalogFile);
    expect(Date.now() - started).toBeLessThan(500);
    expect(result.status).toBe("invalid");
    expect(result.status === "invalid" ? texts(result.problems) : "").toMatch(
      /^users\/a\/custom-servers\.json: line 1, column 65: nested deeper than 64 levels/,
    );
    // Brackets inside strings do not count.
    const inString = Buffer.from(
      JSON.stringify({ ...CUSTOM("a"), metadata: { name: `\\"${"[".repeat(100)}` } }),
    );
    expect(parseJsonBytes("f.json", inString, UserCatalogFile).status).toBe("ok");
  });
});
