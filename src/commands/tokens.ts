import { TOKEN_ID_PATTERN } from "../auth/token-format.js";
import {
  TokenStoreError,
  createToken,
  readTokens,
  revokeToken,
  tokensFilePath,
} from "../auth/token-store.js";
import { checkTreeDir, resolveRoot } from "../catalog/tree-paths.js";
import { ConfigError, loadLockSettings } from "../config.js";
import { LockTimeoutError } from "../util/file-lock.js";
import { isValidUserId } from "../util/ids.js";
import { parseSubcommand, unknownSubcommand, usageFailure } from "./common.js";
import { type CommandIo, UsageError } from "./io.js";

const USAGE = `Usage: mcp-portal tokens <command> [--state-dir DIR] [--data-dir DIR]

Commands:
  create <user>   create an API token for a user and print it once (only its sha256 is stored)
  list            list tokens: id, user, created_at (never the tokens)
  revoke <id>     delete a token; the API refuses it from the next request on, and closes its live-event
                  streams within MCP_PORTAL_LIVE_TOKEN_RECHECK_MS

Tokens live in <state-dir>/tokens.json (mode 0600). A user token reaches only that user's API paths and
events; the admin token comes from MCP_PORTAL_ADMIN_TOKEN or MCP_PORTAL_ADMIN_TOKEN_FILE.
State dir: --state-dir, else MCP_PORTAL_STATE_DIR, else <data-dir>/.mcp-portal (data dir: --data-dir, else
MCP_PORTAL_DATA_DIR, else the current directory).
`;

/** `mcp-portal tokens ...`. Exit codes: 0 ok, 1 error, 2 usage. */
export async function tokensCommand(args: string[], io: CommandIo): Promise<number> {
  try {
    return await run(args, io);
  } catch (error) {
    if (error instanceof UsageError) {
      return usageFailure(io, USAGE, error.message);
    }
    if (error instanceof ConfigError) return usageFailure(io, USAGE, error.message);
    if (error instanceof TokenStoreError || error instanceof LockTimeoutError) {
      io.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

async function run(args: string[], io: CommandIo): Promise<number> {
  const parsed = parseSubcommand("tokens", args, io.env);
  if (parsed === "help") {
    io.stdout.write(USAGE);
    return 0;
  }
  const { subcommand: command, dataDir, stateDir, expect } = parsed;
  switch (command) {
    case "create": {
      const [user = ""] = expect(1, "<user>");
      if (!isValidUserId(user)) throw new UsageError("user id must match ^[a-zA-Z0-9-]{1,32}$");
      const { record, token } = await createToken(stateDir, user, new Date(), loadLockSettings(io.env));
      io.stdout.write(`${token}\n`);
      io.stderr.write(
        `created token ${record.id} for user ${user} in ${tokensFilePath(stateDir)}; it is shown only this once\n`,
      );
      if (!(await userDirExists(dataDir, user))) {
        io.stderr.write(
          `note: users/${user}/ is not a directory of ${dataDir}; the API refuses this token's writes until it is\n`,
        );
      }
      return 0;
    }
    case "list": {
      expect(0, "");
      for (const token of await readTokens(stateDir)) {
        io.stdout.write(`${token.id}\t${token.user_id}\t${token.created_at}\n`);
      }
      return 0;
    }
    case "revoke": {
      const [id = ""] = expect(1, "<id>");
      if (!TOKEN_ID_PATTERN.test(id))
        throw new UsageError("a token id is 16 hex characters (see tokens list)");
      if (!(await revokeToken(stateDir, id, loadLockSettings(io.env)))) {
        io.stderr.write(`error: no token ${id}\n`);
        return 1;
      }
      io.stdout.write(`revoked token ${id}\n`);
      return 0;
    }
    default:
      throw unknownSubcommand(command);
  }
}

async function userDirExists(dataDir: string, userId: string): Promise<boolean> {
  const root = await resolveRoot(dataDir).catch(() => undefined);
  return root !== undefined && (await checkTreeDir(root, `users/${userId}`)).status === "ok";
}
