// POST /admin/catalogs/base/{id}/preview over HTTP, on a controller that converged a tree on the in-memory engine:
// the plan `mcp-portal plan` computes, with the candidate in place, compared with today's; nothing written, the
// engine only listed.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { CatalogPreviewAnswer } from "../../../src/api/catalog-preview.js";
import { createToken } from "../../../src/auth/token-store.js";
import { loadConfig } from "../../../src/config.js";
import { type Daemon, createDaemon } from "../../../src/daemon.js";
import { MemoryRuntime } from "../../../src/docker/memory-runtime.js";
import { createLogger } from "../../../src/observability/logger.js";
import { TestDataDir } from "../../helpers/data-dir.js";
import { memServer } from "../../helpers/memory-daemon.js";

const ADMIN = "preview-admin-token-0123456789";
const open: { daemon: Daemon; data: TestDataDir }[] = [];
afterEach(async () => {
  for (const { daemon, data } of open.splice(0)) {
    await daemon.stop();
    await data.dispose();
  }
});

async function converged() {
  const data = await TestDataDir.create();
  await data.baseCatalog("base", [memServer("a"), memServer("b")]);
  await data.enable("alice", ["a"]);
  await data.enable("bob", ["b"]);
  const runtime = new MemoryRuntime();
  const env = {
    MCP_PORTAL_DATA_DIR: data.root,
    MCP_PORTAL_INSTALLATION: "unit",
    MCP_PORTAL_GATEWAY: "off",
    MCP_PORTAL_LISTEN: "127.0.0.1:0",
    MCP_PORTAL_ADMIN_TOKEN: ADMIN,
    MCP_PORTAL_DEBOUNCE_MS: "0",
    MCP_PORTAL_RESYNC_SECONDS: "3600",
    MCP_PORTAL_PORT_RANGE_START: "20000",
    MCP_PORTAL_PORT_RANGE_END: "29999",
    MCP_PORTAL_PORTS_PER_USER: "10",
  };
  const daemon = await createDaemon({
    config: loadConfig(env),
    env,
    runtime,
    listen: true,
    watch: false,
    logger: createLogger({ level: "info", destination: new Writable({ write: (_c, _e, done) => done() }) }),
  });
  await daemon.start();
  open.push({ daemon, data });
  const preview = (name: string, catalog: unknown, token = ADMIN) =>
    daemon.http!.inject({
      method: "POST",
      url: `/api/v1/admin/catalogs/base/${name}/preview`,
      headers: { authorization: `Bearer ${token}` },
      payload: catalog as Record<string, unknown>,
    });
  const catalog = (servers: Record<string, unknown>[]) => ({
    version: "2.0.0",
    source: "base",
    metadata: { name: "base" },
    servers,
  });
  return { data, runtime, preview, catalog };
}

describe("base catalog preview", () => {
  it("names the users a change affects and the steps it causes, writing nothing and only listing the engine", async () => {
    const { data, runtime, preview, catalog } = await converged();
    const file = path.join(data.root, "catalogs/base/base.json");
    const before = await readFile(file, "utf8");
    runtime.resetCalls();
    const response = await preview(
      "base",
      catalog([memServer("a", { environment: { MODE: "new" } }), memServer("b")]),
    );
    expect(response.statusCode).toBe(200);
    const body = response.json<CatalogPreviewAnswer>();
    expect(body.file).toBe("catalogs/base/base.json");
    expect(body.affected_users).toEqual(["alice"]);
    const alice = body.users.find((u) => u.user_id === "alice")!;
    const replace = alice.steps.find((s) => s.kind === "createContainer");
    expect(replace).toMatchObject({ server_id: "a", caused_by_catalog: true });
    expect(replace?.replaces).toBeDefined();
    expect(replace?.changed_fields?.length).toBeGreaterThan(0);
    expect(body.users.find((u) => u.user_id === "bob")).toMatchObject({ affected: false, steps: [] });
    expect(await readFile(file, "utf8")).toBe(before);
    expect(runtime.callCount()).toBe(
      runtime.callCount("ping", "container_list", "network_list", "volume_list"),
    );
  });

  it("plans a catalog that does not exist yet, and says nobody is affected by servers nobody runs", async () => {
    const { data, preview, catalog } = await converged();
    const response = await preview("extra", { ...catalog([memServer("c")]), metadata: { name: "extra" } });
    expect(response.statusCode).toBe(200);
    expect(response.json<CatalogPreviewAnswer>().affected_users).toEqual([]);
    await expect(readFile(path.join(data.root, "catalogs/base/extra.json"), "utf8")).rejects.toThrow();
  });

  it("refuses a candidate an upload would refuse, with the same problems, and is admin only", async () => {
    const { data, preview, catalog } = await converged();
    const dropped = await preview("base", catalog([memServer("b")]));
    expect(dropped.statusCode).toBe(422);
    expect(dropped.json<{ problems: string[] }>().problems.join("\n")).toContain(
      "users/alice/enabled-servers.json",
    );
    const broken = await preview("base", catalog([{ ...memServer("a"), image: "" }]));
    expect(broken.statusCode).toBe(400);
    expect(broken.json<{ problems: string[] }>().problems[0]).toMatch(
      /^catalogs\/base\/base\.json: \$\.servers\[0\]\.image: /,
    );
    const alice = (await createToken(data.stateDir, "alice")).token;
    expect((await preview("base", catalog([memServer("a"), memServer("b")]), alice)).statusCode).toBe(403);
  });
});
