import path from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "../config.js";
import { isValidUserId } from "../util/ids.js";
import { type CommandIo, UsageError } from "./io.js";

/* The pieces every command's shell shares: argument parsing, usage errors, output. */

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `parseArgs` with its errors (unknown option, missing value, ...) as UsageError. */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T) {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError(errorMessage(error));
  }
}

/** Prints the message and the usage on stderr; returns exit code 2. */
export function usageFailure(io: CommandIo, usage: string, message: string): number {
  io.stderr.write(`error: ${message}\n\n${usage}`);
  return 2;
}

/**
 * Runs a command's option parser: "help" prints the usage (exit 0), a usage or configuration error prints the
 * message and the usage (exit 2). Returns the options, or the exit code when the command is done.
 */
export async function commandOptions<T extends object>(
  io: CommandIo,
  usage: string,
  parse: () => T | "help" | Promise<T | "help">,
): Promise<T | number> {
  let options: T | "help";
  try {
    options = await parse();
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError)
      return usageFailure(io, usage, error.message);
    throw error;
  }
  if (options === "help") {
    io.stdout.write(usage);
    return 0;
  }
  return options;
}

export type OutputFormat = "text" | "json";

/** The value of `--output`. */
export function outputFormat(value: string | undefined): OutputFormat {
  if (value !== "text" && value !== "json")
    throw new UsageError(`--output must be text or json, not "${value}"`);
  return value;
}

export function writeJson(io: CommandIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A command that could not do its job: `{"error"}` on stdout for json output, the message on stderr; exit 1. */
export function commandFailure(
  io: CommandIo,
  output: OutputFormat,
  command: string,
  message: string,
): number {
  if (output === "json") writeJson(io, { error: message });
  io.stderr.write(`${command}: ${message}\n`);
  return 1;
}

/** Options of the read-only commands that look at an installation on the engine (plan, status). */
export interface InstallationViewOptions {
  config: Config;
  user: string | undefined;
  output: OutputFormat;
}

/** `[--data-dir DIR] [--state-dir DIR] [--installation NAME] [--user ID] [--output text|json]`. */
export function parseInstallationViewOptions(
  args: string[],
  env: NodeJS.ProcessEnv,
): InstallationViewOptions | "help" {
  const { values } = parseCommandArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      "data-dir": { type: "string" },
      "state-dir": { type: "string" },
      installation: { type: "string" },
      backend: { type: "string" },
      user: { type: "string" },
      output: { type: "string", default: "text" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const output = outputFormat(values.output);
  if (values.user !== undefined && !isValidUserId(values.user)) {
    throw new UsageError(`--user: "${values.user}" is not a valid user id (^[a-zA-Z0-9-]{1,32}$)`);
  }
  const config = loadConfig(env, {
    MCP_PORTAL_DATA_DIR: values["data-dir"],
    MCP_PORTAL_STATE_DIR: values["state-dir"],
    MCP_PORTAL_INSTALLATION: values.installation,
    MCP_PORTAL_BACKEND: values.backend,
  });
  return { config, user: values.user, output };
}

/**
 * A `<command> <subcommand> [args] [--data-dir DIR] [--state-dir DIR]` line (secrets, tokens), read without
 * loading the whole configuration. Data dir: --data-dir, else MCP_PORTAL_DATA_DIR, else the current directory;
 * state dir: --state-dir, else MCP_PORTAL_STATE_DIR, else <data-dir>/.mcp-portal.
 */
export interface Subcommand {
  /** The subcommand; undefined when none was given. */
  subcommand: string | undefined;
  dataDir: string;
  stateDir: string;
  /** The subcommand's arguments, which must be `count`; else a UsageError showing `shape`. */
  expect: (count: number, shape: string) => string[];
}

export function parseSubcommand(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Subcommand | "help" {
  const { values, positionals } = parseCommandArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      "data-dir": { type: "string" },
      "state-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [subcommand, ...rest] = positionals;
  if (values.help === true || subcommand === "help") return "help";
  const dataDir = path.resolve(values["data-dir"] ?? nonEmpty(env.MCP_PORTAL_DATA_DIR) ?? process.cwd());
  const stateDir = path.resolve(
    values["state-dir"] ?? nonEmpty(env.MCP_PORTAL_STATE_DIR) ?? path.join(dataDir, ".mcp-portal"),
  );
  return {
    subcommand,
    dataDir,
    stateDir,
    expect: (count, shape) => {
      if (rest.length !== count) throw new UsageError(`expected: ${command} ${subcommand} ${shape}`);
      return rest;
    },
  };
}

/** The error for a subcommand that is missing or not known. */
export function unknownSubcommand(subcommand: string | undefined): UsageError {
  return new UsageError(subcommand === undefined ? "missing command" : `unknown command "${subcommand}"`);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
