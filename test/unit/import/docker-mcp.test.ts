import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { serverId } from "../../../src/import/assembler.js";
import { buildCatalog } from "../../../src/import/catalog.js";
import { loadDockerMcpSource } from "../../../src/import/docker-mcp.js";
import { splitImage } from "../../../src/import/image-ref.js";
import type { ServerReport } from "../../../src/import/report.js";
import { main } from "../../../src/main.js";
import { BaseCatalogFile } from "../../../src/schema/catalog.js";
import { validateTree } from "../../../src/validate/validate-tree.js";
import { useTempDirs } from "../catalog/fixtures.js";
import { runCli } from "../../helpers/cli-io.js";

const FIXTURES = path.resolve(import.meta.dirname, "../../fixtures/docker-mcp");
const CATALOG = path.join(FIXTURES, "catalog.yaml");
const REGISTRY = path.join(FIXTURES, "registry");

const tempDir = useTempDirs("mcp-portal-import-");

function run(args: string[]) {
  return runCli(main, args);
}

function report(reports: readonly ServerReport[], name: string): ServerReport {
  const found = reports.find((r) => r.name === name);
  if (!found) throw new Error(`no report for ${name}`);
  return found;
}

function expectSkipped(reports: readonly ServerReport[], name: string, reason: string): void {
  const found = report(reports, name);
  expect(found.status).toBe("skipped");
  expect(found.reason).toContain(reason);
}

function serversOf(catalog: Record<string, unknown>): Record<string, unknown>[] {
  return catalog.servers as Record<string, unknown>[];
}

describe("docker-mcp import: mapping", () => {
  it("maps the catalog YAML: image/tag/digest, title, category, secrets, literal env, command, volumes", async () => {
    const source = await loadDockerMcpSource(CATALOG);
    expect(source.format).toBe("catalog");
    const { catalog, reports } = buildCatalog(source, { name: "docker", version: "1" });
    expect(BaseCatalogFile.safeParse(catalog).success).toBe(true);
    const byId = new Map(serversOf(catalog).map((s) => [s.id as string, s]));

    expect(byId.get("brave")).toEqual({
      id: "brave",
      name: "brave",
      display_name: "Brave Search",
      description: "Search the Web for pages, images, news, videos, and more using the Brave Search API.",
      category: "search",
      image: "mcp/brave-search",
      tag: "latest",
      transport: "stdio",
      environment: { BRAVE_MCP_TRANSPORT: "stdio" },
      required_secrets: ["BRAVE_API_KEY"],
    });
    const brave = report(reports, "brave");
    expect(brave.dropped.map((d) => d.field)).toEqual(["image digest"]);
    expect(brave.dropped[0]!.reason).toContain("not pinned");

    // Secrets: upper-cased, invalid names reported; templated env dropped, a secret's own name dropped.
    const atlassian = byId.get("atlassian")!;
    expect(atlassian).toMatchObject({
      image: "mcp/atlassian",
      tag: "0.11.9",
      environment: { READ_ONLY_MODE: "true" },
      required_secrets: ["JIRA_API_TOKEN", "CONFLUENCE_API_TOKEN"],
      user_configurable: true,
    });
    const a = report(reports, "atlassian");
    expect(a.notes.join("\n")).toContain('upper-cased from "confluence_api_token"');
    expect(a.dropped.map((d) => d.field)).toEqual([
      "secret atlassian.broken",
      "env JIRA_URL",
      "env JIRA_API_TOKEN",
    ]);
    expect(a.dropped[1]!.reason).toContain("{{atlassian.jira.url}}");

    // Command and volumes: templated source -> the user's area; host paths dropped; a registry port is no tag.
    const sqlite = byId.get("sqlite")!;
    expect(sqlite).toMatchObject({
      image: "localhost:5000/mcp/sqlite",
      tag: "2024.1",
      command: ["--db-path", "/mcp/db.sqlite"],
      volumes: [
        { host_path: "{USER_DATA}/sqlite-data", container_path: "/mcp", mode: "rw" },
        { host_path: "{USER_DATA}/sqlite-mcp-sqlite-cache", container_path: "/cache", mode: "rw" },
      ],
    });
    const s = report(reports, "sqlite");
    expect(s.dropped.map((d) => d.field)).toEqual([
      "volume /var/run/docker.sock:/var/run/docker.sock",
      "volume /etc/ssl/certs:/etc/ssl/certs:ro,z",
      "user",
    ]);
    expect(s.notes.some((n) => n.includes("{USER_DATA}/sqlite-data"))).toBe(true);
    // run.allowHosts becomes the catalog's allow-list, run.disableNetwork egress none.
    expect(byId.get("sqlite")).toMatchObject({
      egress: { mode: "allow", allow_hosts: ["api.example.com:443"] },
    });
    expect(s.notes).toContain(
      "network egress: only api.example.com:443 (allowHosts) -> egress allow api.example.com:443",
    );
    expect(byId.get("filesystem")).toMatchObject({ egress: { mode: "none" } });

    // A command and volumes built from user configuration cannot be carried over.
    expect(byId.get("filesystem")).not.toHaveProperty("command");
    expect(byId.get("filesystem")).not.toHaveProperty("volumes");
    expect(report(reports, "filesystem").dropped.map((d) => d.field)).toEqual([
      "command",
      "volume {{filesystem.paths|volume|into}}",
    ]);
    expect(report(reports, "filesystem").notes).toContain(
      "network egress: none (disableNetwork) -> egress mode none",
    );
  });

  it("renames bad names, skips remote, poci and invalid images with a reason", async () => {
    const { catalog, reports } = buildCatalog(await loadDockerMcpSource(CATALOG), {
      name: "docker",
      version: "1",
    });
    const renamed = report(reports, "My Server.v2 (beta) with a very long name indeed");
    expect(renamed).toMatchObject({ status: "imported", id: "My-Server-v2-beta-with-a-very-lo" });
    expect(renamed.notes[0]).toContain("does not match");
    expect(serversOf(catalog).find((s) => s.id === renamed.id)).toMatchObject({
      name: "My Server.v2 (beta) with a very long name indeed",
      image: "ghcr.io/acme/my-server",
      tag: "v2",
    });
    expectSkipped(reports, "notion-remote", "remote server (https://mcp.notion.com/mcp)");
    expectSkipped(reports, "clickup", "poci");
    expectSkipped(reports, "bad-image", "not a valid image name");
    expect(reports.filter((r) => r.status === "imported")).toHaveLength(5);
  });

  it("reads a directory of registry server.yaml files, reporting one that does not parse", async () => {
    // A copy with one server.yaml that does not parse (kept out of the fixtures: prettier checks those).
    const dir = await tempDir();
    await cp(REGISTRY, dir, { recursive: true });
    await mkdir(path.join(dir, "servers", "broken"));
    await writeFile(path.join(dir, "servers", "broken", "server.yaml"), "name: broken\nimage: [unclosed\n");
    const source = await loadDockerMcpSource(dir);
    expect(source.format).toBe("registry-dir");
    const { catalog, reports } = buildCatalog(source, { name: "registry", version: "1" });
    const byId = new Map(serversOf(catalog).map((s) => [s.id as string, s]));
    expect([...byId.keys()].sort()).toEqual([
      "aspose-barcode",
      "filesystem",
      "github-official",
      "neo4j-cypher",
    ]);
    expect(byId.get("github-official")).toMatchObject({
      image: "ghcr.io/github/github-mcp-server",
      display_name: "GitHub Official",
      category: "devops",
      required_secrets: ["GITHUB_PERSONAL_ACCESS_TOKEN"],
    });
    expect(report(reports, "github-official").dropped.map((d) => d.field)).toEqual(["oauth"]);
    expect(byId.get("github-official")).toMatchObject({
      egress: { mode: "allow", allow_hosts: ["api.github.com:443"] },
    });
    // config.env (list) and run.env (map) both apply; a number becomes a string; example-only values are reported.
    expect(byId.get("neo4j-cypher")).toMatchObject({
      environment: { NEO4J_TRANSPORT: "stdio", NEO4J_READ_TIMEOUT: "30" },
      required_secrets: ["NEO4J_PASSWORD"],
      user_configurable: true,
    });
    expect(report(reports, "neo4j-cypher").dropped.map((d) => d.field)).toEqual([
      "env NEO4J_URL",
      "env NEO4J_DATABASE",
    ]);
    expect(byId.get("aspose-barcode")).toMatchObject({
      tag: "1.0.0",
      environment: { ASPOSE_CLOUD_MOUNT_PATH: "/mnt/data" },
      volumes: [
        { host_path: "{USER_DATA}/aspose-barcode-data_dir", container_path: "/mnt/data", mode: "rw" },
      ],
    });
    expect(report(reports, "notes-remote").status).toBe("skipped");
    expectSkipped(reports, "broken", "not valid YAML");
  });

  it("skips images the policy forbids and ids other base catalogs define", async () => {
    const { catalog, reports } = buildCatalog(await loadDockerMcpSource(CATALOG), {
      name: "docker",
      version: "1",
      allowedImages: ["mcp/*"],
      takenIds: new Map([["brave", "catalogs/base/main.json"]]),
    });
    expect(serversOf(catalog).map((s) => s.id)).toEqual(["atlassian", "filesystem"]);
    expect(report(reports, "brave").reason).toBe(
      'server id "brave" is already defined in catalogs/base/main.json',
    );
    expect(report(reports, "sqlite").reason).toContain("not allowed by policy.json");
  });

  it("splits image references and sanitises ids", () => {
    expect(splitImage("mcp/time")).toEqual({ name: "mcp/time" });
    expect(splitImage("registry:5000/team/app:1.2")).toEqual({ name: "registry:5000/team/app", tag: "1.2" });
    expect(splitImage("registry:5000/team/app")).toEqual({ name: "registry:5000/team/app" });
    expect(splitImage("mcp/x:2@sha256:abc")).toEqual({ name: "mcp/x", tag: "2", digest: "sha256:abc" });
    expect(serverId("a.b c", new Set())).toBe("a-b-c");
    expect(serverId("dup", new Set(["dup"]))).toBe("dup-2");
    expect(serverId("x".repeat(40), new Set(["x".repeat(32)]))).toBe(`${"x".repeat(30)}-2`);
    expect(serverId("...", new Set())).toBeUndefined();
  });
});

describe("mcp-portal import docker-mcp", () => {
  it("writes a catalog that round-trips through validateTree, refuses to overwrite without --force", async () => {
    const dataDir = await tempDir();
    await mkdir(path.join(dataDir, "users", "alice"), { recursive: true });
    // A user enabling imported servers: a configurable one with config, one needing a secret it lacks.
    await writeFile(
      path.join(dataDir, "users", "alice", "enabled-servers.json"),
      JSON.stringify({
        servers: [
          {
            id: "filesystem",
            config: { volumes: [{ host_path: "{USER_DATA}/docs", container_path: "/docs" }] },
          },
          { id: "My-Server-v2-beta-with-a-very-lo" },
        ],
      }),
    );
    const out = "catalogs/base/docker.json";
    const first = await run(["import", "docker-mcp", CATALOG, "--out", out, "--data-dir", dataDir]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("imported brave");
    expect(first.stdout).toContain("skipped  notion-remote: remote server");
    expect(first.stderr).toMatch(/5 of 8 server\(s\) imported, 3 skipped; wrote /);
    const written = JSON.parse(await readFile(path.join(dataDir, out), "utf8")) as Record<string, unknown>;
    expect(written).toMatchObject({ source: "base", metadata: { name: "Docker MCP Catalog" } });
    expect(await validateTree(dataDir)).toEqual([]);

    // The registry directory next to it: an id the first catalog already defines is skipped, not duplicated.
    const second = await run([
      "import",
      "docker-mcp",
      REGISTRY,
      "--out",
      "catalogs/base/registry.json",
      "--data-dir",
      dataDir,
      "--name",
      "Registry",
      "--output",
      "json",
    ]);
    expect(second.code).toBe(0);
    const parsed = JSON.parse(second.stdout) as { ok: boolean; written: boolean; servers: ServerReport[] };
    expect(parsed).toMatchObject({ ok: true, written: true });
    expect(report(parsed.servers, "filesystem").reason).toContain(
      "already defined in catalogs/base/docker.json",
    );
    expect(await validateTree(dataDir)).toEqual([]);

    const again = await run(["import", "docker-mcp", CATALOG, "--out", out, "--data-dir", dataDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("exists; use --force");
    const forced = await run([
      "import",
      "docker-mcp",
      CATALOG,
      "--out",
      out,
      "--data-dir",
      dataDir,
      "--force",
    ]);
    expect(forced.code).toBe(0);
  });

  it("honours policy.json, never writes with --dry-run, and reports usage errors with exit 2", async () => {
    const dataDir = await tempDir();
    await writeFile(path.join(dataDir, "policy.json"), JSON.stringify({ allowed_images: ["mcp/*"] }));
    const dry = await run([
      "import",
      "docker-mcp",
      CATALOG,
      "--out",
      "catalogs/base/docker.json",
      "--data-dir",
      dataDir,
      "--dry-run",
      "--output",
      "json",
    ]);
    expect(dry.code).toBe(0);
    const parsed = JSON.parse(dry.stdout) as { written: boolean; servers: ServerReport[] };
    expect(parsed.written).toBe(false);
    expect(report(parsed.servers, "sqlite").reason).toContain("not allowed by policy.json");
    await expect(readFile(path.join(dataDir, "catalogs/base/docker.json"))).rejects.toThrow();

    expect((await run(["import", "docker-mcp", CATALOG])).code).toBe(2);
    expect((await run(["import", "other", CATALOG, "--out", "x.json"])).code).toBe(2);
    expect((await run(["import", "docker-mcp", "--out", "x.json"])).code).toBe(2);
    const missing = await run([
      "import",
      "docker-mcp",
      path.join(dataDir, "nope.yaml"),
      "--out",
      "x.json",
      "--data-dir",
      dataDir,
    ]);
    expect(missing.code).toBe(1);
  });

  it("refuses to write when the policy forbids everything", async () => {
    const dataDir = await tempDir();
    await writeFile(path.join(dataDir, "policy.json"), JSON.stringify({ allowed_images: ["nothing/*"] }));
    const result = await run([
      "import",
      "docker-mcp",
      CATALOG,
      "--out",
      "catalogs/base/d.json",
      "--data-dir",
      dataDir,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("no server could be imported");
    await expect(readFile(path.join(dataDir, "catalogs/base/d.json"))).rejects.toThrow();
  });
});
