import type { Command, CommandIo } from "./commands/io.js";
import { PORTAL_VERSION } from "./version.js";

const USAGE = `mcp-portal ${PORTAL_VERSION}: runs users' MCP servers as Docker containers from GitOps files

Usage: mcp-portal <command> [options]

Commands:
  run        watch the data dir and Docker, converge continuously (the daemon)
  gateway    serve every running server over MCP on its user's port, behind auth, with MCP-level health
  validate   check the whole desired-state tree; exit 1 on any problem
  plan       dry run against the engine: what "run" would change now; exit 2 when something would
  status     users and servers: phase, host port, age, reason
  import     convert a Docker MCP catalog (docker-mcp) into a base catalog file
  schema     write JSON Schemas of every file format to manifests/schemas/
  secrets    set | list | rm | rotate | gen-key per-user encrypted secrets
  tokens     create | list | revoke per-user API tokens
  prune-guard  status | release the mass-prune latch
  version    print the version

Run "mcp-portal <command> --help" for a command's options.
`;

/** Commands load lazily so `validate` never pays for the daemon's imports. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import("./commands/run.js")).runCommand,
  gateway: async () => (await import("./commands/gateway.js")).gatewayCommand,
  validate: async () => (await import("./commands/validate.js")).validateCommand,
  plan: async () => (await import("./commands/plan.js")).planCommand,
  status: async () => (await import("./commands/status.js")).statusCommand,
  import: async () => (await import("./commands/import.js")).importCommand,
  schema: async () => (await import("./commands/schema.js")).schemaCommand,
  secrets: async () => (await import("./commands/secrets.js")).secretsCommand,
  tokens: async () => (await import("./commands/tokens.js")).tokensCommand,
  "prune-guard": async () => (await import("./commands/prune-guard.js")).pruneGuardCommand,
};

export async function main(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    io.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === "version" || name === "--version") {
    io.stdout.write(`${PORTAL_VERSION}\n`);
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    io.stderr.write(`unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  const command = await load();
  return command(rest, io);
}
