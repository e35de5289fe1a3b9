import { mkdir, readFile, readdir, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type ApiFixture, answer, apiFixture, server } from "./api-fixture.js";

/*
 * A user with commit rights to users/<id>/ and that user's token, against the API: links in the tree must not
 * let them read or write another user's files, and their token must not bring back a user that is gone.
 */

const fixtures: ApiFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.dispose()));
});

const BASE = {
  version: "1",
  source: "base",
  metadata: { name: "main" },
  servers: [server("time"), server("cfg", { user_configurable: true })],
};
const BOB_CUSTOM = {
  version: "1",
  source: "user",
  metadata: { name: "bob" },
  servers: [server("bobs", { environment: { BOB_INTERNAL_URL: "https://bob:hunter2@internal" } })],
};

async function fixture(): Promise<ApiFixture> {
  const f = await apiFixture();
  fixtures.push(f);
  await f.write("catalogs/base/main.json", BASE);
  await f.write("users/bob/custom-servers.json", BOB_CUSTOM);
  await f.write("users/bob/enabled-servers.json", { servers: [{ id: "time" }] });
  await mkdir(path.join(f.dataDir, "users/mallory"), { recursive: true });
  return f;
}

const post = (f: ApiFixture, url: string, headers: Record<string, string>, payload?: object) =>
  f.http.inject({ method: "POST", url, headers, ...(payload ? { payload } : {}) });

describe("links under users/ through the API", () => {
  it("does not show another user's custom servers through a linked file", async () => {
    const f = await fixture();
    const mallory = await f.tokenFor("mallory");
    await symlink("../bob/custom-servers.json", path.join(f.dataDir, "users/mallory/custom-servers.json"));
    const response = await f.http.inject({
      method: "GET",
      url: "/api/v1/users/mallory/catalog",
      headers: mallory,
    });
    expect(response.statusCode).toBe(200);
    expect(response.body).not.toContain("hunter2");
    expect(response.body).not.toContain('"bobs"');
    expect(answer(response).problems).toEqual([
      expect.stringMatching(/^users\/mallory\/custom-servers\.json: \$: is a symbolic link/),
    ]);
  });

  it("refuses to write through a linked file and never echoes the content behind it", async () => {
    const f = await fixture();
    const mallory = await f.tokenFor("mallory");
    const secretFile = path.join(f.stateDir, "not-json.txt");
    await writeFile(secretFile, "SECRET-VALUE-1234567890 rest of file\n");
    await symlink(secretFile, path.join(f.dataDir, "users/mallory/enabled-servers.json"));
    const response = await post(f, "/api/v1/users/mallory/servers/time/enable", mallory);
    expect(response.statusCode).toBe(409);
    expect(response.body).not.toContain("SECRET-VALUE");
    expect(await readFile(secretFile, "utf8")).toBe("SECRET-VALUE-1234567890 rest of file\n");
    // secrets.env linked to bob's: neither read nor replaced.
    await f.write("users/bob/secrets.env", "# bob's\n");
    await symlink("../bob/secrets.env", path.join(f.dataDir, "users/mallory/secrets.env"));
    const secrets = await post(f, "/api/v1/users/mallory/secrets", mallory, { secrets: { A: "b" } });
    expect(secrets.statusCode).toBe(409);
    expect(await f.read("users/bob/secrets.env")).toBe("# bob's\n");
    expect(
      (await stat(path.join(f.dataDir, "users/mallory/secrets.env")).catch(() => undefined))?.isFile(),
    ).toBe(
      true, // stat follows the link: it is still bob's file, untouched
    );
  });

  it("refuses every write into a user directory that is a link (eve -> bob), touching nothing of bob's", async () => {
    const f = await fixture();
    const eve = await f.tokenFor("eve");
    await symlink("bob", path.join(f.dataDir, "users/eve"));
    const bobBefore = await f.read("users/bob/enabled-servers.json");
    const writes = [
      await post(f, "/api/v1/users/eve/servers/time/enable", eve),
      await post(f, "/api/v1/users/eve/servers/time/disable", eve),
      await post(f, "/api/v1/users/eve/secrets", eve, { secrets: { STOLEN: "x" } }),
      await f.http.inject({ method: "DELETE", url: "/api/v1/users/eve/secrets/STOLEN", headers: eve }),
    ];
    for (const response of writes) {
      expect(response.statusCode).toBe(409);
      expect(answer(response).code).toBe("USER_DIR_REFUSED");
      expect(answer(response).problems).toEqual([
        expect.stringMatching(/^users\/eve: \$: is a symbolic link/),
      ]);
    }
    expect(await f.read("users/bob/enabled-servers.json")).toBe(bobBefore);
    expect(await f.read("users/bob/secrets.env")).toBeUndefined();
    expect(f.enqueued).toEqual([]);
  });
});

describe("a token whose user directory is gone", () => {
  it("cannot re-create the user: every write answers 404 and nothing is created", async () => {
    const f = await fixture();
    const alice = await f.tokenFor("alice");
    const writes = [
      await post(f, "/api/v1/users/alice/servers/time/enable", alice),
      await post(f, "/api/v1/users/alice/servers/time/disable", alice),
      await post(f, "/api/v1/users/alice/secrets", alice, { secrets: { A: "b" } }),
      await f.http.inject({ method: "DELETE", url: "/api/v1/users/alice/secrets/A", headers: alice }),
      // The admin token does not create users through these endpoints either.
      await post(f, "/api/v1/users/alice/servers/time/enable", f.admin),
    ];
    for (const response of writes) {
      expect(response.statusCode).toBe(404);
      expect(answer(response).code).toBe("USER_NOT_FOUND");
      expect(answer(response).message).toMatch(/users\/alice\/ does not exist/);
    }
    expect(await readdir(path.join(f.dataDir, "users"))).toEqual(["bob", "mallory"]);
    expect(f.enqueued).toEqual([]);
  });
});

describe("links in the admin's part of the tree", () => {
  it("never writes a base catalog through a link or into a directory outside the data dir", async () => {
    const f = await fixture();
    const outside = path.join(path.dirname(f.dataDir), "outside");
    await mkdir(outside, { recursive: true });
    await writeFile(path.join(outside, "x.json"), "{}");
    await symlink(path.join(outside, "x.json"), path.join(f.dataDir, "catalogs/base/x.json"));
    const catalog = { version: "2", source: "base", metadata: { name: "x" }, servers: [server("xs")] };
    const viaLink = await f.http.inject({
      method: "PUT",
      url: "/api/v1/admin/catalogs/base/x",
      headers: f.admin,
      payload: catalog,
    });
    expect(viaLink.statusCode).toBe(409);
    expect(await readFile(path.join(outside, "x.json"), "utf8")).toBe("{}");

    const linkedDir = await apiFixture();
    fixtures.push(linkedDir);
    await mkdir(path.join(outside, "base"), { recursive: true });
    await mkdir(path.join(linkedDir.dataDir, "catalogs"), { recursive: true });
    await symlink(path.join(outside, "base"), path.join(linkedDir.dataDir, "catalogs/base"));
    const upload = await post(linkedDir, "/api/v1/admin/catalogs/base", linkedDir.admin, {
      name: "main",
      catalog: BASE,
    });
    expect(upload.statusCode).toBe(409);
    expect(await readdir(path.join(outside, "base"))).toEqual([]);
  });
});
