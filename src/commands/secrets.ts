import { loadLockSettings } from "../config.js";
import { AuditLog } from "../observability/audit.js";
import { SecretUsageError } from "../secrets/errors.js";
import { generateKey, loadKeyRing } from "../secrets/key-ring.js";
import { rotateSecrets, type RotationReport } from "../secrets/rotate.js";
import {
  assertUserId,
  listSecrets,
  MAX_SECRET_VALUE_BYTES,
  removeSecret,
  setSecret,
} from "../secrets/store.js";
import { LockNames, StateLocks } from "../util/state-locks.js";
import { parseSubcommand, unknownSubcommand, usageFailure } from "./common.js";
import { type CommandIo, UsageError } from "./io.js";

const USAGE = `Usage: mcp-portal secrets <command> [--data-dir DIR] [--state-dir DIR]

Commands:
  set <user> <NAME>   encrypt the value read from stdin (one trailing newline is stripped) and store it
  list <user>         list secret names and the key id each is encrypted with (never values)
  rm <user> <NAME>    remove a secret
  rotate              re-encrypt every users/*/secrets.env (and the digest key) under the primary key
  gen-key <id>        print a new key line <id>:<base64> for MCP_PORTAL_SECRET_KEYS

Keys: MCP_PORTAL_SECRET_KEYS="<id>:<base64>,..." or MCP_PORTAL_SECRET_KEYS_FILE=<file>, primary first.
Data dir: --data-dir, else MCP_PORTAL_DATA_DIR, else the current directory.
State dir (rotate): --state-dir, else MCP_PORTAL_STATE_DIR, else <data-dir>/.mcp-portal.
`;

/** `mcp-portal secrets ...`; `args` are the arguments after "secrets". Exit codes: 0 ok, 1 error, 2 usage. */
export async function secretsCommand(args: string[], io: CommandIo): Promise<number> {
  try {
    return await run(args, io);
  } catch (error) {
    if (error instanceof UsageError) {
      return usageFailure(io, USAGE, error.message);
    }
    if (error instanceof SecretUsageError && error.code !== "SECRET_INVALID_VALUE") {
      io.stderr.write(`error: ${error.message}\n`);
      return 2;
    }
    io.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

async function run(args: string[], io: CommandIo): Promise<number> {
  const parsed = parseSubcommand("secrets", args, io.env);
  if (parsed === "help") {
    io.stdout.write(USAGE);
    return 0;
  }
  const { subcommand: command, dataDir, stateDir, expect } = parsed;
  // The API writes the same files under the same lock files: neither loses the other's update.
  const locks = new StateLocks(stateDir, loadLockSettings(io.env));
  const lockUser = <T>(user: string, purpose: string, task: () => Promise<T>) => {
    assertUserId(user);
    return locks.run(LockNames.user(user), purpose, task);
  };
  switch (command) {
    case "set": {
      const [user = "", name = ""] = expect(2, "<user> <NAME>");
      const keyRing = await loadKeyRing(io.env);
      const value = await readValue(io);
      // An admin may create the user's directory this way (the API never does).
      const { created, keyId } = await lockUser(user, "cli: secrets set", () =>
        setSecret(dataDir, user, name, value, keyRing, { createUserDir: true }),
      );
      await auditSecretChange(stateDir, user, created ? "create_secret" : "update_secret", name, {
        key_id: keyId,
      });
      io.stdout.write(`${created ? "created" : "updated"} secret ${name} for user ${user} (key ${keyId})\n`);
      return 0;
    }
    case "list": {
      const [user = ""] = expect(1, "<user>");
      for (const { name, keyId } of await listSecrets(dataDir, user)) io.stdout.write(`${name}\t${keyId}\n`);
      return 0;
    }
    case "rm": {
      const [user = "", name = ""] = expect(2, "<user> <NAME>");
      if (!(await lockUser(user, "cli: secrets rm", () => removeSecret(dataDir, user, name)))) {
        io.stderr.write(`error: user ${user} has no secret ${name}\n`);
        return 1;
      }
      await auditSecretChange(stateDir, user, "remove_secret", name, {});
      io.stdout.write(`removed secret ${name} for user ${user}\n`);
      return 0;
    }
    case "rotate": {
      expect(0, "");
      const keyRing = await loadKeyRing(io.env);
      const report = await rotateSecrets({
        dataDir,
        stateDir,
        keyRing,
        lockUser: (user, task) => lockUser(user, "cli: secrets rotate", task),
      });
      await auditSecretChange(stateDir, null, "rotate_secrets", "secrets.env", {
        primary_key_id: keyRing.primaryKeyId,
        files: report.files.length,
        failed: report.files.filter((f) => f.status === "failed").length,
      });
      printRotation(report, keyRing.primaryKeyId, io);
      return report.ok ? 0 : 1;
    }
    case "gen-key": {
      const [id = ""] = expect(1, "<id>");
      io.stdout.write(`${generateKey(id)}\n`);
      return 0;
    }
    default:
      throw unknownSubcommand(command);
  }
}

/** The same audit trail the daemon and the API write: names and key ids only, never values. */
async function auditSecretChange(
  stateDir: string,
  userId: string | null,
  action: string,
  resource: string,
  details: Record<string, unknown>,
): Promise<void> {
  const audit = new AuditLog({ stateDir, fsyncIntervalMs: 0 });
  await audit.write({
    event_type: "SECRET_CHANGE",
    user_id: userId,
    action,
    resource,
    result: "success",
    details: { ...details, via: "cli" },
  });
  await audit.close();
}

/** Reads the whole of stdin as UTF-8, bounded, and strips one trailing newline. */
async function readValue(io: CommandIo): Promise<string> {
  if ((io.stdin as { isTTY?: boolean }).isTTY === true) {
    io.stderr.write("reading the secret value from stdin; end it with Ctrl-D\n");
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : Buffer.from(chunk);
    size += buffer.length;
    if (size > MAX_SECRET_VALUE_BYTES + 2) {
      throw new Error(`the value on stdin exceeds ${MAX_SECRET_VALUE_BYTES} bytes`);
    }
    chunks.push(buffer);
  }
  let value: string;
  try {
    value = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new Error("the value on stdin is not valid UTF-8");
  }
  if (value.endsWith("\r\n")) value = value.slice(0, -2);
  else if (value.endsWith("\n")) value = value.slice(0, -1);
  if (value === "") throw new Error("the value on stdin is empty; refusing to store an empty secret");
  return value;
}

function printRotation(report: RotationReport, primaryKeyId: string, io: CommandIo): void {
  for (const skipped of report.skipped) {
    io.stderr.write(`skipped users/${JSON.stringify(skipped.entry)}: ${skipped.reason}\n`);
  }
  for (const file of report.files) {
    if (file.status === "failed") {
      io.stderr.write(`FAILED ${file.file}: ${file.error}\n`);
    } else {
      io.stdout.write(
        `${file.status} ${file.file}: ${file.total} secret(s), ${file.reencrypted} re-encrypted under ${primaryKeyId}\n`,
      );
    }
  }
  const digest = report.digestKey;
  if (digest.status === "failed") io.stderr.write(`FAILED digest key: ${digest.error}\n`);
  else if (digest.status === "rotated")
    io.stdout.write(`rotated digest key: ${digest.fromKeyId} -> ${digest.toKeyId}\n`);
  else if (digest.status === "current")
    io.stdout.write(`current digest key: already under ${digest.keyId}\n`);
  const failed = report.files.filter((file) => file.status === "failed").length;
  io.stdout.write(`${report.files.length} file(s), ${failed} failed\n`);
}
