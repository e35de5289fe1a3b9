// The console's pure helpers (web/src/lib, web/src/state/router): they run in the browser and are tested here.
import { describe, expect, it } from "vitest";
import { CATALOG_NAME, NEW_CATALOG_TEMPLATE, jsonProblem } from "../../../web/src/lib/catalog-text.js";
import { fieldOf, groupProblems } from "../../../web/src/lib/field-problems.js";
import { TOKEN_PLACEHOLDER, clientConfig, mcpUrl } from "../../../web/src/lib/mcp-clients.js";
import { SseParser } from "../../../web/src/lib/sse-parser.js";
import { toolPolicyText } from "../../../web/src/lib/tool-policy-text.js";
import { hrefOf, parseHash } from "../../../web/src/lib/routes.js";
import { BaseCatalogFile } from "../../../src/schema/catalog.js";

describe("SseParser", () => {
  it("parses events across arbitrary chunk cuts, skips comments and joins multi-line data", () => {
    const text =
      'retry: 3000\n: connected\n\nevent: SERVER_STATUS_CHANGED\ndata: {"a":1}\n\n: heartbeat\n\ndata: x\ndata: y\r\n\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const parser = new SseParser();
      const events = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      expect(events, `cut at ${cut}`).toEqual([
        { event: "SERVER_STATUS_CHANGED", data: '{"a":1}' },
        { event: "message", data: "x\ny" },
      ]);
    }
  });
});

describe("field problems", () => {
  it("puts the API's problem lines next to the field they name", () => {
    expect(fieldOf("request body: $.environment.LOG_LEVEL: expected string")).toBe("env:LOG_LEVEL");
    expect(fieldOf('request body: $.environment["1BAD"]: not a valid environment variable name')).toBe(
      "env:1BAD",
    );
    expect(fieldOf("users/alice/enabled-servers.json: $.servers[2].config.environment.TOKEN: reason")).toBe(
      "env:TOKEN",
    );
    expect(
      fieldOf("users/alice/enabled-servers.json: $.servers[0].config.volumes[1].host_path: absolute"),
    ).toBe("volume:1:host_path");
    expect(fieldOf("request body: $.volumes[0]: bad")).toBe("volume:0");
    expect(fieldOf("users/alice/enabled-servers.json: $.servers[0]: requires secret API_KEY")).toBe("form");
    expect(fieldOf("users/alice/enabled-servers.json: $.servers[0].id: unknown server")).toBe("form");
    expect(fieldOf("something without a path")).toBe("form");
    const grouped = groupProblems([
      "request body: $.environment.A: x",
      "request body: $.environment.A: y",
      "z",
    ]);
    expect(grouped.get("env:A")).toEqual([
      "request body: $.environment.A: x",
      "request body: $.environment.A: y",
    ]);
    expect(grouped.get("form")).toEqual(["z"]);
  });
});

describe("MCP URL and client configs", () => {
  it("prefers the API's url, else builds it from the publish host and port", () => {
    expect(
      mcpUrl({
        url: "https://mcp.example/u/1/mcp",
        publishHost: "127.0.0.1",
        hostPort: 20000,
        pageHost: "h",
      }),
    ).toBe("https://mcp.example/u/1/mcp");
    expect(mcpUrl({ publishHost: "127.0.0.1", hostPort: 20000, pageHost: "h" })).toBe(
      "http://127.0.0.1:20000/mcp",
    );
    expect(mcpUrl({ publishHost: "0.0.0.0", hostPort: 20000, pageHost: "portal.local" })).toBe(
      "http://portal.local:20000/mcp",
    );
    expect(mcpUrl({ publishHost: "::1", hostPort: 20000, pageHost: "h" })).toBe("http://[::1]:20000/mcp");
    expect(mcpUrl({ publishHost: "127.0.0.1", hostPort: undefined, pageHost: "h" })).toBeUndefined();
  });

  it("gives valid client configs with the Authorization header, the token only when asked", () => {
    const url = "http://127.0.0.1:20000/mcp";
    const cursor = JSON.parse(clientConfig("cursor", "echo", url, undefined)) as {
      mcpServers: Record<string, { url: string; headers: Record<string, string> }>;
    };
    expect(cursor.mcpServers["mcp-portal-echo"]).toEqual({
      url,
      headers: { Authorization: `Bearer ${TOKEN_PLACEHOLDER}` },
    });
    const vscode = JSON.parse(clientConfig("vscode", "echo", url, undefined)) as {
      inputs: { id: string; password: boolean }[];
      servers: Record<string, { type: string; headers: Record<string, string> }>;
    };
    expect(vscode.inputs[0]).toMatchObject({ id: "mcp-portal-token", password: true });
    expect(vscode.servers["mcp-portal-echo"]).toMatchObject({
      type: "http",
      headers: { Authorization: "Bearer ${input:mcp-portal-token}" },
    });
    const filled = clientConfig("vscode", "echo", url, "mcp_abc_def");
    expect(filled).toContain("Bearer mcp_abc_def");
    expect(filled).not.toContain("inputs");
    const desktop = JSON.parse(clientConfig("claude-desktop", "echo", url, undefined)) as {
      mcpServers: Record<string, { args: string[]; env: Record<string, string> }>;
    };
    expect(desktop.mcpServers["mcp-portal-echo"]?.args).toContain(url);
    expect(desktop.mcpServers["mcp-portal-echo"]?.env.MCP_PORTAL_AUTH).toBe(`Bearer ${TOKEN_PLACEHOLDER}`);
    expect(clientConfig("claude-code", "echo", url, undefined)).toBe(
      `claude mcp add --transport http mcp-portal-echo ${url} --header "Authorization: Bearer ${TOKEN_PLACEHOLDER}"`,
    );
  });
});

describe("catalog editor text", () => {
  it("reports JSON syntax errors as file: line, column: reason", () => {
    expect(jsonProblem("catalogs/base/x.json", '{"a": 1}')).toBeUndefined();
    expect(jsonProblem("catalogs/base/x.json", '{\n  "a": 1,\n}')).toMatch(
      /^catalogs\/base\/x\.json: line 3, column 1: invalid JSON: /,
    );
  });

  it("offers a template that is itself a valid base catalog", () => {
    expect(BaseCatalogFile.safeParse(JSON.parse(NEW_CATALOG_TEMPLATE)).success).toBe(true);
    expect(CATALOG_NAME.test("team-tools")).toBe(true);
    expect(CATALOG_NAME.test("../x")).toBe(false);
  });
});

describe("hash routes", () => {
  it("round-trips screens and users, and ignores anything else", () => {
    expect(parseHash("#/monitor/alice")).toEqual({ screen: "monitor", user: "alice" });
    expect(parseHash("")).toEqual({ screen: "dashboard", user: null });
    expect(parseHash("#/nope/../../x")).toEqual({ screen: "dashboard", user: null });
    expect(parseHash("#/dashboard/<script>")).toEqual({ screen: "dashboard", user: null });
    expect(hrefOf({ screen: "catalogs", user: null })).toBe("#/catalogs");
    expect(parseHash(hrefOf({ screen: "users", user: "bob" }))).toEqual({ screen: "users", user: "bob" });
  });
});

describe("toolPolicyText", () => {
  it("says which tools a server's policy leaves", () => {
    expect(toolPolicyText(undefined)).toBe("Tools: all the server offers (no tool policy).");
    expect(toolPolicyText({ deny: [] })).toBe("Tools: all the server offers (no tool policy).");
    expect(toolPolicyText({ deny: ["delete_*"] })).toBe("Tools: all the server offers; hidden: delete_*.");
    expect(toolPolicyText({ allow: ["get_*", "list_*"], deny: ["get_secret"] })).toBe(
      "Tools: only get_*, list_*; hidden: get_secret.",
    );
    expect(toolPolicyText({ allow: [], deny: [] })).toBe("Tools: only none.");
  });
});
