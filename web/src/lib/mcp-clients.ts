/*
 * Where a user's MCP server is reached, and ready-to-copy configuration for common MCP clients. Pure, unit-tested
 * under Node.
 */

export const TOKEN_PLACEHOLDER = "<YOUR_TOKEN>";

/**
 * The server's MCP URL: the API's `url` when it gives one, else `http://<publish host>:<host port>/mcp`. A
 * wildcard publish host (0.0.0.0, ::) means every address of the host: the one this page was loaded from.
 */
export function mcpUrl(options: {
  url?: string | undefined;
  publishHost: string | null;
  hostPort: number | undefined;
  pageHost: string;
}): string | undefined {
  if (options.url) return options.url;
  if (options.hostPort === undefined) return undefined;
  const wildcard =
    options.publishHost === null || options.publishHost === "0.0.0.0" || options.publishHost === "::";
  const host = wildcard ? options.pageHost : options.publishHost!;
  const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `http://${bracketed}:${options.hostPort}/mcp`;
}

export type ClientKind = "claude-desktop" | "claude-code" | "vscode" | "cursor";

export const CLIENTS: readonly { kind: ClientKind; label: string; where: string }[] = [
  { kind: "vscode", label: "VS Code", where: ".vscode/mcp.json" },
  { kind: "cursor", label: "Cursor", where: "~/.cursor/mcp.json" },
  {
    kind: "claude-desktop",
    label: "Claude Desktop",
    where: "claude_desktop_config.json (through mcp-remote)",
  },
  { kind: "claude-code", label: "Claude Code", where: "a shell" },
];

/** A name clients accept as a key: the server id, prefixed so it does not clash with other servers. */
function keyOf(serverId: string): string {
  return `mcp-portal-${serverId}`;
}

export function clientConfig(
  kind: ClientKind,
  serverId: string,
  url: string,
  token: string | undefined,
): string {
  const name = keyOf(serverId);
  const bearer = `Bearer ${token ?? TOKEN_PLACEHOLDER}`;
  switch (kind) {
    case "vscode":
      // VS Code asks for the token once and stores it in its secret storage, unless the token is filled in.
      return JSON.stringify(
        token === undefined
          ? {
              inputs: [
                {
                  type: "promptString",
                  id: "mcp-portal-token",
                  description: "mcp-portal token",
                  password: true,
                },
              ],
              servers: {
                [name]: { type: "http", url, headers: { Authorization: "Bearer ${input:mcp-portal-token}" } },
              },
            }
          : { servers: { [name]: { type: "http", url, headers: { Authorization: bearer } } } },
        null,
        2,
      );
    case "cursor":
      return JSON.stringify({ mcpServers: { [name]: { url, headers: { Authorization: bearer } } } }, null, 2);
    case "claude-desktop":
      return JSON.stringify(
        {
          mcpServers: {
            [name]: {
              command: "npx",
              args: ["-y", "mcp-remote", url, "--header", "Authorization:${MCP_PORTAL_AUTH}"],
              env: { MCP_PORTAL_AUTH: bearer },
            },
          },
        },
        null,
        2,
      );
    case "claude-code":
      return `claude mcp add --transport http ${name} ${url} --header "Authorization: ${bearer}"`;
  }
}
