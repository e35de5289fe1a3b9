import { mkdtemp, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gatewayAccessPath } from "../../../src/contracts/gateway-access.js";
import { AccessStore, serverAccess } from "../../../src/gateway/access-store.js";

const FILE = {
  api_version: "mcp-portal/v1",
  user_id: "alice",
  rate_limit: { requests: 10, window_seconds: 60 },
  servers: { echo: { tools: { deny: ["slow"] } } },
};

describe("AccessStore (the gateway's view of gateway-access.json)", () => {
  let stateDir: string;
  const invalid: string[] = [];
  beforeEach(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), "access-store-"));
    invalid.length = 0;
  });
  afterEach(() => rm(stateDir, { recursive: true, force: true }));

  const write = async (content: unknown, user = "alice") => {
    const file = gatewayAccessPath(stateDir, user);
    await mkdir(path.dirname(file), { recursive: true });
    // A new inode each time, as the controller's atomic rename gives.
    await rm(file, { force: true });
    await writeFile(file, typeof content === "string" ? content : JSON.stringify(content));
  };
  const store = () => new AccessStore(stateDir, { onInvalid: (_user, message) => invalid.push(message) });

  it("no file: open (no policy, no limits); a file: its servers; a server it does not list: unlisted", async () => {
    const s = store();
    expect(await s.get("alice")).toEqual({ kind: "open" });
    await write(FILE);
    expect(await s.refresh(["alice"])).toEqual(["alice"]);
    const access = await s.get("alice");
    expect(serverAccess(access, "echo")).toEqual({
      kind: "server",
      access: { tools: { deny: ["slow"] } },
      userRateLimit: { requests: 10, window_seconds: 60 },
    });
    expect(serverAccess(access, "other")).toEqual({ kind: "unlisted" });
    // Own properties only: a server id of Object.prototype's names finds nothing.
    expect(serverAccess(access, "constructor")).toEqual({ kind: "unlisted" });
    // Unchanged file: nothing to report, the same object.
    expect(await s.refresh(["alice"])).toEqual([]);
    expect(await s.get("alice")).toBe(access);
  });

  it("an unusable file keeps the last good version; with none the user's tools are refused (fail closed)", async () => {
    await write(FILE);
    const s = store();
    const good = await s.get("alice");
    await write("{ not json");
    expect(await s.refresh(["alice"])).toEqual([]);
    expect(await s.get("alice")).toBe(good);
    expect(s.invalidCount).toBe(1);
    expect(invalid).toHaveLength(1);
    expect(invalid[0]).toMatch(/gateway-access\.json: not valid JSON/);

    const fresh = store();
    expect(await fresh.get("alice")).toMatchObject({
      kind: "unusable",
      message: expect.stringMatching(/not valid JSON/) as unknown,
    });
    await write({ ...FILE, user_id: "bob" });
    await fresh.refresh(["alice"]);
    expect(await fresh.get("alice")).toMatchObject({
      kind: "unusable",
      message: expect.stringMatching(/names user "bob"/) as unknown,
    });
    await write({ ...FILE, servers: { echo: { tools: { deny: ["has space"] } } } });
    await fresh.refresh(["alice"]);
    expect((await fresh.get("alice")).kind).toBe("unusable");
    await write(FILE);
    expect(await fresh.refresh(["alice"])).toEqual(["alice"]);
    expect((await fresh.get("alice")).kind).toBe("policy");
    expect(fresh.invalidCount).toBe(0);
  });

  it("never reads through a link", async () => {
    const elsewhere = path.join(stateDir, "elsewhere.json");
    await writeFile(elsewhere, JSON.stringify(FILE));
    const file = gatewayAccessPath(stateDir, "alice");
    await mkdir(path.dirname(file), { recursive: true });
    await symlink(elsewhere, file);
    expect((await store().get("alice")).kind).toBe("unusable");
  });
});
