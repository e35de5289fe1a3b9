import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { type ImportSource, buildCatalog } from "../../../src/import/catalog.js";
import { mcpRegistrySource } from "../../../src/import/mcp-registry/convert.js";
import { parseRegistryValue, readRegistryInput } from "../../../src/import/mcp-registry/load.js";
import { type RunnerImages, runnerImages } from "../../../src/import/mcp-registry/runners.js";
import { schemaVersionOf } from "../../../src/import/mcp-registry/schema.js";
import type { ServerReport } from "../../../src/import/report.js";
import { main } from "../../../src/main.js";
import { BaseCatalogFile } from "../../../src/schema/catalog.js";
import { validateTree } from "../../../src/validate/validate-tree.js";
import { runCli } from "../../helpers/cli-io.js";
import { useTempDirs } from "../catalog/fixtures.js";

const FIXTURES = path.resolve(import.meta.dirname, "../../fixtures/mcp-registry");
const fixture = (name: string) => path.join(FIXTURES, name);
const RUNNERS: RunnerImages = runnerImages({}, {});

const tempDir = useTempDirs("mcp-portal-import-registry-");

async function source(file: string, runners = RUNNERS): Promise<ImportSource> {
  return mcpRegistrySource(await readRegistryInput(fixture(file)), runners);
}

async function build(
  file: string,
  options: Parameters<typeof buildCatalog>[1] = { name: "r", version: "1" },
) {
  const built = buildCatalog(await source(file), options);
  expect(BaseCatalogFile.safeParse(built.catalog).success).toBe(true);
  const servers = new Map(
    (built.catalog.servers as Record<string, unknown>[]).map((s) => [s.id as string, s] as const),
  );
  return { ...built, servers };
}

function report(reports: readonly ServerReport[], name: string): ServerReport {
  const found = reports.filter((r) => r.name === name);
  if (found.length !== 1) throw new Error(`${found.length} reports for ${name}`);
  return found[0]!;
}

function skippedBecause(reports: readonly ServerReport[], name: string): string {
  const found = report(reports, name);
  expect(found.status).toBe("skipped");
  return found.reason ?? "";
}

const fields = (r: ServerReport) => r.dropped.map((d) => d.field);
const reason = (r: ServerReport, field: string) => r.dropped.find((d) => d.field === field)?.reason ?? "";

describe("mcp-registry import: one server.json", () => {
  it("maps an OCI package: image and tag, docker flags, arguments, environment, ToolHive permissions", async () => {
    const { servers, reports } = await build("weather-oci.json");
    expect(servers.get("weather")).toEqual({
      id: "weather",
      name: "io.github.acme/weather",
      display_name: "Weather",
      description: "Forecasts and current conditions for any city",
      image: "ghcr.io/acme/weather-mcp",
      tag: "1.4.0",
      command: ["serve", "--log-level", "info"],
      transport: "stdio",
      environment: { WEATHER_CACHE: "/cache/weather", WEATHER_UNITS: "celsius", WEATHER_MODE: "forecast" },
      required_secrets: ["WEATHER_API_KEY"],
      user_configurable: true,
      egress: {
        mode: "allow",
        allow_hosts: ["*.weather.example:443", "api.acme.example:443", "weather.example:443"],
      },
    });
    const weather = report(reports, "io.github.acme/weather");
    expect(fields(weather)).toEqual([
      "runtimeArguments[2] --network",
      "runtimeArguments[3] --mount",
      "runtimeArguments[4] --cap-add",
      "runtimeArguments[5] --memory",
      "packageArguments[2] --station",
      "env WEATHER_TIMEOUT",
      "ToolHive permissions.read/write",
    ]);
    for (const refused of ["--network", "--mount", "--cap-add"]) {
      expect(weather.dropped.find((d) => d.field.endsWith(refused))!.reason).toMatch(/^refused: /);
    }
    expect(reason(weather, "runtimeArguments[5] --memory")).toContain("not supported");
    expect(reason(weather, "env WEATHER_TIMEOUT")).toContain('"soon" is not a number');
    // ToolHive's `.weather.example` is the domain and every name below it: both patterns.
    expect(weather.notes).toContain(
      "network egress: only .weather.example:443, api.acme.example:443 (ToolHive permissions.network.outbound) -> egress allow *.weather.example:443, api.acme.example:443, weather.example:443",
    );
    const notes = weather.notes.join("\n");
    expect(notes).toContain("runtimeArguments[0] -i: not needed");
    expect(notes).toContain("env WEATHER_API_KEY (secret) -> required secret WEATHER_API_KEY");
    expect(notes).toContain("env WEATHER_REGION is required and has no default");
    expect(notes).toContain('env WEATHER_UNITS="celsius" (the default; one of celsius, fahrenheit)');
    expect(notes).toContain('id "weather" (the last part of the name)');
  });

  it("reads the schema version: dated published schemas from 2025-09-29 on, or none (the latest)", () => {
    const url = (date: string) => `https://static.modelcontextprotocol.io/schemas/${date}/server.schema.json`;
    expect(schemaVersionOf({})).toEqual({ ok: true, date: "2025-12-11", declared: false });
    for (const date of ["2025-09-29", "2025-10-17", "2025-12-11"]) {
      expect(schemaVersionOf({ $schema: url(date) })).toEqual({ ok: true, date, declared: true });
    }
    const refusal = (doc: unknown) => {
      const version = schemaVersionOf(doc);
      return version.ok ? "" : version.reason;
    };
    expect(refusal({ $schema: url("2025-07-09") })).toContain("snake_case");
    expect(refusal({ $schema: url("2025-09-16") })).toContain("written for the 2025-09-16 server schema");
    expect(refusal({ $schema: url("2030-01-01") })).toContain("newer than this importer knows");
    expect(refusal({ $schema: url("2025-11-01") })).toContain("newer than this importer knows");
    expect(refusal({ $schema: "https://modelcontextprotocol.io/schemas/server.json" })).toContain(
      "not a published dated MCP server schema",
    );
    expect(refusal({ $schema: `${url("2025-12-11")}#` })).toContain("not a published dated");
    expect(refusal({ $schema: 7 })).toContain("not a string");
  });

  it("refuses documents one by one with the reason, and a single refused document imports nothing", async () => {
    const cases: [string, string, string][] = [
      ["older-schema.json", "io.github.acme/sixteen", "written for the 2025-09-16 server schema"],
      ["digest-only.json", "io.github.acme/pinned", "pinned by digest only"],
      [
        "required-argument.json",
        "io.github.acme/database",
        "packageArguments[0] (database_name) is required",
      ],
      [
        "other-path.json",
        "io.github.acme/api",
        "streamable-http at /api/v1/mcp: the gateway forwards /mcp only",
      ],
      [
        "custom-pypi-index.json",
        "io.github.acme/internal",
        "PyPI index https://pypi.acme.example is not supported",
      ],
    ];
    for (const [file, name, why] of cases) {
      const { servers, reports } = await build(`refused/${file}`);
      expect(servers.size, file).toBe(0);
      expect(skippedBecause(reports, name), file).toContain(why);
    }
  });
});

describe("mcp-registry import: arrays, API pages, directories", () => {
  it("maps npm and PyPI on runner images with the pinned version, the earlier OCI form, HTTP ports", async () => {
    const { servers, reports } = await build("servers.json");
    expect(servers.get("files")).toEqual({
      id: "files",
      name: "io.github.acme/files",
      description: "Read and write files under one directory",
      image: "node",
      tag: "24-alpine",
      command: ["npx", "--yes", "--", "@acme/files-mcp@2.0.1", "/data/files", "--mode", "read-only"],
      transport: "stdio",
      environment: { npm_config_cache: "/cache/npm", npm_config_update_notifier: "false" },
      user_configurable: true,
    });
    expect(fields(report(reports, "io.github.acme/files"))).toEqual(["remotes"]);
    expect(reason(report(reports, "io.github.acme/files"), "remotes")).toContain("not runnable here");

    expect(servers.get("clock")).toEqual({
      id: "clock",
      name: "io.github.example/clock",
      description: "Time and time zone conversions",
      image: "ghcr.io/astral-sh/uv",
      tag: "python3.12-bookworm-slim",
      command: ["uvx", "--python", "3.12", "clock-mcp-server@0.6.2", "--local-timezone", "UTC"],
      transport: "stdio",
      environment: { UV_CACHE_DIR: "/cache/uv", UV_PYTHON_DOWNLOADS: "never" },
      required_secrets: ["CLOCK_TOKEN"],
    });
    expect(report(reports, "io.github.example/clock").notes.join("\n")).toContain(
      "secret CLOCK_TOKEN is optional in the source but required here",
    );

    // registryBaseUrl + identifier + version (the first 2025-09-29 form); the image package wins over npm.
    expect(servers.get("filesystem")).toMatchObject({
      image: "mcp/filesystem",
      tag: "1.0.2",
      command: ["/project"],
    });
    expect(fields(report(reports, "io.github.example/filesystem"))).toEqual([
      "package npm @example/filesystem@1.0.2",
    ]);

    // streamable-http: the port comes from the argument the URL names; a digest next to a tag is reported.
    expect(servers.get("search-http")).toMatchObject({
      image: "docker.io/example/search-mcp",
      tag: "3.1.0",
      command: ["--port", "8080"],
      transport: "streamable-http",
      ports: [{ container_port: 8080, protocol: "tcp" }],
    });
    expect(reason(report(reports, "io.github.example/search-http"), "image digest")).toContain("not pinned");

    expect(skippedBecause(reports, "io.example/hosted")).toBe(
      "remote server (https://mcp.example.com/sse): hosted elsewhere, not runnable here; mcp-portal runs containers only",
    );
    const dotnet = skippedBecause(reports, "io.github.example/dotnet-sample");
    expect(dotnet).toContain("nuget packages run with dnx");
    expect(dotnet).toContain("MCP bundles (mcpb)");
  });

  it("runs npm and PyPI packages on the runner images given by flags or environment", async () => {
    const runners = runnerImages(
      { npm: "registry.local/node:24.1-alpine" },
      { MCP_PORTAL_NPM_RUNNER_IMAGE: "ignored:1", MCP_PORTAL_PYPI_RUNNER_IMAGE: "registry.local/uv:0.9" },
    );
    expect(runners).toEqual({
      npm: { name: "registry.local/node", tag: "24.1-alpine" },
      pypi: { name: "registry.local/uv", tag: "0.9" },
    });
    const built = buildCatalog(await source("servers.json", runners), { name: "r", version: "1" });
    const servers = built.catalog.servers as { id: string; image: string; tag: string }[];
    expect(servers.find((s) => s.id === "files")).toMatchObject({
      image: "registry.local/node",
      tag: "24.1-alpine",
    });
    expect(servers.find((s) => s.id === "clock")).toMatchObject({ image: "registry.local/uv", tag: "0.9" });
    expect(() => runnerImages({ npm: "node" }, {})).toThrow("has no tag");
    expect(() => runnerImages({}, { MCP_PORTAL_PYPI_RUNNER_IMAGE: "uv@sha256:00" })).toThrow("has a digest");
    expect(() => runnerImages({ pypi: "Bad Image:1" }, {})).toThrow("not a valid image");
  });

  it("reads an API page: the latest version, deleted and deprecated entries, refused schemas", async () => {
    const { servers, reports } = await build("api-page.json");
    expect([...servers.keys()].sort()).toEqual(["legacy", "notes"]);
    expect(servers.get("notes")).toMatchObject({ image: "ghcr.io/acme/notes", tag: "1.1.0" });
    const notesReports = reports.filter((r) => r.name === "io.github.acme/notes");
    expect(notesReports.map((r) => r.status).sort()).toEqual(["imported", "skipped"]);
    expect(notesReports.find((r) => r.status === "skipped")!.reason).toContain(
      "version 1.0.0 not imported: version 1.1.0 of this server is",
    );
    // ToolHive's extension on the API wrapper: insecure_allow_all is today's behaviour, noted, not dropped.
    const notes = notesReports.find((r) => r.status === "imported")!;
    expect(fields(notes)).toEqual([]);
    expect(notes.notes.join("\n")).toContain("network egress: unrestricted (ToolHive");

    const legacy = report(reports, "io.github.acme/legacy");
    expect(legacy.notes).toContain("deprecated in the registry");
    expect(legacy.notes.join("\n")).toContain("network egress: none (ToolHive");

    expect(skippedBecause(reports, "io.github.acme/gone")).toBe("deleted from the registry");
    expect(skippedBecause(reports, "io.github.acme/old-schema")).toContain("2025-07-09 server schema");
    expect(skippedBecause(reports, "io.github.acme/snake")).toMatch(
      /does not validate as the 2025-12-11 server schema: packages\.0\.registryType: .*snake_case/,
    );
    expect(skippedBecause(reports, "io.github.acme/draft")).toContain(
      "not a published dated MCP server schema",
    );
    expect(skippedBecause(reports, "io.github.acme/future")).toContain("newer than this importer knows");
    expect(report(reports, "io.github.acme/future").origin).toMatch(/api-page\.json: servers\[7\]$/);
  });

  it("reads a directory of *.json and <name>/server.json, reporting a file that is not JSON", async () => {
    const dir = await tempDir();
    await cp(fixture("directory"), dir, { recursive: true });
    await writeFile(path.join(dir, "broken.json"), "{ not json");
    await writeFile(path.join(dir, "other.json"), JSON.stringify({ hello: "world" }));
    const documents = await readRegistryInput(dir);
    expect(documents.format).toBe("directory");
    const built = buildCatalog(mcpRegistrySource(documents, RUNNERS), { name: "d", version: "1" });
    const servers = built.catalog.servers as Record<string, unknown>[];
    expect(servers.map((s) => s.id)).toEqual(["calendar", "notes"]);
    expect(servers[1]).toMatchObject({
      transport: "sse",
      ports: [{ container_port: 9000, protocol: "tcp" }],
    });
    expect(skippedBecause(built.reports, "broken.json")).toContain("not valid JSON");
    expect(skippedBecause(built.reports, "other.json")).toContain("neither a server.json");
  });

  it("maps transports: the gateway's paths only, plain HTTP, served by the package itself", () => {
    const doc = (url: string, extra: Record<string, unknown> = {}) => ({
      name: "io.example/t",
      description: "t",
      version: "1",
      packages: [
        {
          registryType: "oci",
          identifier: "example/t:1",
          transport: { type: url.endsWith("/sse") ? "sse" : "streamable-http", url },
          ...extra,
        },
      ],
    });
    const outcome = (value: unknown) => {
      const built = buildCatalog(mcpRegistrySource(parseRegistryValue(value, "body"), RUNNERS), {
        name: "t",
        version: "1",
      });
      const server = (built.catalog.servers as Record<string, unknown>[])[0];
      return server ? { server, report: built.reports[0]! } : { reason: built.reports[0]!.reason };
    };
    expect(outcome(doc("http://127.0.0.1:7000/mcp"))).toMatchObject({
      server: { transport: "streamable-http", ports: [{ container_port: 7000 }] },
    });
    expect(outcome(doc("http://localhost/sse"))).toMatchObject({
      server: { ports: [{ container_port: 80 }] },
    });
    const noPath = outcome(doc("http://localhost:8080"));
    expect(noPath.report?.notes.join("\n")).toContain("names no path: the gateway forwards /mcp");
    expect(outcome(doc("https://localhost:8443/mcp")).reason).toContain("plain HTTP");
    expect(outcome(doc("http://api.example.com/mcp")).reason).toContain("not served by the package itself");
    expect(outcome(doc("http://localhost:{port}/mcp")).reason).toContain("no value for port");
    const withEnvPort = outcome(
      doc("http://localhost:{MCP_PORT}/mcp", {
        environmentVariables: [{ name: "MCP_PORT", default: "3001" }],
      }),
    );
    expect(withEnvPort).toMatchObject({ server: { ports: [{ container_port: 3001 }] } });
    const withHeaders = outcome({
      ...doc("http://localhost:3000/mcp"),
      packages: [
        {
          registryType: "oci",
          identifier: "example/t:1",
          transport: {
            type: "streamable-http",
            url: "http://localhost:3000/mcp",
            headers: [{ name: "X-Api-Key", isSecret: true }],
          },
        },
      ],
    });
    expect(withHeaders.report?.dropped.map((d) => d.field)).toEqual(["transport headers"]);
  });

  it("reads ToolHive permissions by the package identifier: allow ports only, other keys, unreadable entries", () => {
    const withToolHive = (entries: Record<string, unknown>) => {
      const value = {
        name: "io.example/th",
        description: "th",
        version: "1",
        packages: [{ registryType: "oci", identifier: "example/th:1", transport: { type: "stdio" } }],
        _meta: { "io.modelcontextprotocol.registry/publisher-provided": { "io.github.stacklok": entries } },
      };
      const built = buildCatalog(mcpRegistrySource(parseRegistryValue(value, "body"), RUNNERS), {
        name: "t",
        version: "1",
      });
      expect(built.reports[0]!.status).toBe("imported");
      return built.reports[0]!;
    };
    const portsOnly = withToolHive({
      "example/th:1": { permissions: { network: { outbound: { allow_port: [443, 8443] } } } },
    });
    expect(reason(portsOnly, "network egress")).toContain(
      "only *:443, *:8443 (ToolHive permissions.network.outbound) cannot be expressed as host:port patterns: *:443 (any host), *:8443 (any host)",
    );
    const otherKey = withToolHive({ "example/th:0.9": { permissions: { network: { outbound: {} } } } });
    expect(otherKey.notes.join("\n")).toContain('ToolHive metadata is keyed "example/th:0.9"');
    expect(otherKey.notes.join("\n")).toContain("network egress: none (ToolHive");
    const ambiguous = withToolHive({ a: {}, b: {} });
    expect(ambiguous.notes.join("\n")).toContain('no entry for "example/th:1"');
    expect(fields(ambiguous)).toEqual([]);
    const unreadable = withToolHive({
      "example/th:1": { permissions: { network: { outbound: { allow_port: ["x"] } } } },
    });
    expect(reason(unreadable, "ToolHive permissions")).toMatch(
      /^unreadable: permissions\.network\.outbound\.allow_port\.0: /,
    );
    const privileged = withToolHive({
      "example/th:1": { permissions: { privileged: true, write: ["/var/run"] } },
    });
    expect(fields(privileged)).toEqual([
      "ToolHive permissions.read/write",
      "ToolHive permissions.privileged",
    ]);
    expect(reason(privileged, "ToolHive permissions.privileged")).toMatch(/^refused: /);
  });

  it("skips images the policy forbids (the runner image for npm and PyPI) and ids other catalogs define", async () => {
    const { servers, reports } = await build("servers.json", {
      name: "r",
      version: "1",
      allowedImages: ["mcp/*", "docker.io/example/*"],
      takenIds: new Map([["search-http", "catalogs/base/main.json"]]),
    });
    expect([...servers.keys()]).toEqual(["filesystem"]);
    expect(skippedBecause(reports, "io.github.acme/files")).toBe(
      'image "node" is not allowed by policy.json allowed_images',
    );
    expect(skippedBecause(reports, "io.github.example/search-http")).toBe(
      'server id "search-http" is already defined in catalogs/base/main.json',
    );
  });

  it("gives two servers with the same last name part distinct ids", () => {
    const doc = (name: string) => ({
      name,
      description: "d",
      version: "1",
      packages: [{ registryType: "oci", identifier: "example/x:1", transport: { type: "stdio" } }],
    });
    const built = buildCatalog(
      mcpRegistrySource(parseRegistryValue([doc("io.a/notes"), doc("io.b/notes")], "body"), RUNNERS),
      { name: "n", version: "1" },
    );
    expect((built.catalog.servers as { id: string }[]).map((s) => s.id)).toEqual(["notes", "notes-2"]);
  });

  it("reads one registry API answer {server, _meta} (GET .../versions/latest)", () => {
    const documents = parseRegistryValue(
      {
        server: {
          name: "io.example/one",
          description: "one",
          version: "2.0.0",
          packages: [{ registryType: "oci", identifier: "example/one:2.0.0", transport: { type: "stdio" } }],
        },
        _meta: { "io.modelcontextprotocol.registry/official": { status: "deprecated", isLatest: true } },
      },
      "answer.json",
    );
    expect(documents.format).toBe("api-page");
    expect(documents.entries.map((e) => [e.server.name, e.official?.status, e.schemaDate])).toEqual([
      ["io.example/one", "deprecated", "2025-12-11"],
    ]);
  });

  it("refuses an input that is no server.json shape at all, and bad JSON", () => {
    expect(() => parseRegistryValue({ hello: 1 }, "body")).toThrow(/body: neither a server.json/);
    expect(() => parseRegistryValue("text", "body")).toThrow(/neither a server.json/);
  });
});

describe("mcp-portal import mcp-registry", () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(main, args, env);

  it("writes a catalog that validates with users enabling it, dry-runs, and keeps a file without --force", async () => {
    const dataDir = await tempDir();
    await mkdir(path.join(dataDir, "users", "alice"), { recursive: true });
    await writeFile(
      path.join(dataDir, "users", "alice", "enabled-servers.json"),
      JSON.stringify({
        servers: [
          { id: "weather", config: { environment: { WEATHER_REGION: "eu" } } },
          { id: "files" },
          { id: "search-http" },
        ],
      }),
    );
    const out = "catalogs/base/registry.json";
    const dry = await run([
      "import",
      "mcp-registry",
      fixture("servers.json"),
      "--out",
      out,
      "--data-dir",
      dataDir,
      "--dry-run",
    ]);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toContain("4 of 6 server(s) imported, 2 skipped; would write");
    await expect(readFile(path.join(dataDir, out))).rejects.toThrow();

    const first = await run([
      "import",
      "mcp-registry",
      fixture("servers.json"),
      "--out",
      out,
      "--data-dir",
      dataDir,
    ]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("(array of MCP registry server.json documents)");
    expect(first.stdout).toContain("  imported io.github.acme/files as files");
    expect(first.stdout).toContain("  skipped  io.example/hosted: remote server");
    expect(first.stdout).toContain("      dropped remotes: https://files.acme.example/mcp");
    const written = JSON.parse(await readFile(path.join(dataDir, out), "utf8")) as Record<string, unknown>;
    expect(written).toMatchObject({ source: "base", metadata: { name: "registry" } });

    const second = await run([
      "import",
      "mcp-registry",
      fixture("weather-oci.json"),
      "--out",
      "catalogs/base/weather.json",
      "--data-dir",
      dataDir,
      "--output",
      "json",
    ]);
    expect(second.code).toBe(0);
    const parsed = JSON.parse(second.stdout) as {
      ok: boolean;
      kind: string;
      format: string;
      servers: ServerReport[];
    };
    expect(parsed).toMatchObject({ ok: true, written: true, kind: "mcp-registry", format: "server-json" });
    // The tree is valid; what validate says is that alice has yet to set the secret the import made required.
    expect((await validateTree(dataDir)).map((p) => `${p.file}: ${p.path}: ${p.message}`)).toEqual([
      'users/alice/enabled-servers.json: $.servers[0]: server "weather" requires secret WEATHER_API_KEY, which users/alice/secrets.env does not declare (mcp-portal secrets set alice WEATHER_API_KEY)',
    ]);

    const again = await run([
      "import",
      "mcp-registry",
      fixture("servers.json"),
      "--out",
      out,
      "--data-dir",
      dataDir,
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("exists; use --force");
    const forced = await run([
      "import",
      "mcp-registry",
      fixture("servers.json"),
      "--out",
      out,
      "--data-dir",
      dataDir,
      "--force",
      "--npm-runner-image",
      "node:24.4-alpine",
    ]);
    expect(forced.code).toBe(0);
    const replaced = JSON.parse(await readFile(path.join(dataDir, out), "utf8")) as {
      servers: { id: string; tag: string }[];
    };
    expect(replaced.servers.find((s) => s.id === "files")?.tag).toBe("24.4-alpine");
    expect(await validateTree(dataDir)).toHaveLength(1);
  });

  it("exits 1 writing nothing for a refused document, 2 on usage errors", async () => {
    const dataDir = await tempDir();
    const refused = await run([
      "import",
      "mcp-registry",
      fixture("refused/older-schema.json"),
      "--out",
      "catalogs/base/x.json",
      "--data-dir",
      dataDir,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain(
      "skipped  io.github.acme/sixteen: written for the 2025-09-16 server schema",
    );
    expect(refused.stderr).toContain("no server could be imported; nothing written");
    await expect(readFile(path.join(dataDir, "catalogs/base/x.json"))).rejects.toThrow();

    const notJson = path.join(dataDir, "bad.json");
    await writeFile(notJson, "[1,");
    const bad = await run([
      "import",
      "mcp-registry",
      notJson,
      "--out",
      "catalogs/base/x.json",
      "--data-dir",
      dataDir,
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("import mcp-registry: ");
    expect(bad.stderr).toContain("not valid JSON");

    const args = [fixture("servers.json"), "--out", "catalogs/base/x.json", "--data-dir", dataDir];
    expect((await run(["import", "mcp-registry", ...args, "--npm-runner-image", "node"])).code).toBe(2);
    expect(
      (await run(["import", "mcp-registry", ...args], { MCP_PORTAL_PYPI_RUNNER_IMAGE: "uv" })).code,
    ).toBe(2);
    expect((await run(["import", "docker-mcp", ...args, "--pypi-runner-image", "uv:1"])).code).toBe(2);
    const usage = await run(["import", "nope", ...args]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("supported: docker-mcp, mcp-registry");
  });
});
