import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.js";
import { createDaemon } from "../daemon.js";
import { ensureGateway } from "./gateway-launcher.js";
import type { CommandIo } from "./io.js";

const USAGE = `Usage: mcp-portal run [options]

  --data-dir DIR         desired-state tree (MCP_PORTAL_DATA_DIR, default .)
  --state-dir DIR        where status, cache and audit go (MCP_PORTAL_STATE_DIR, default <data-dir>/.mcp-portal)
  --installation NAME    label value separating installations on one engine (MCP_PORTAL_INSTALLATION)
  --listen HOST:PORT     metrics, probes and API (MCP_PORTAL_LISTEN, default 127.0.0.1:8080)
  --allow-mass-prune     let one pass remove more than the safe share of managed containers
  --read-only-api        the API refuses every write (git is the only writer) (MCP_PORTAL_READ_ONLY_API)
  --no-gateway           do not start the gateway process (run it yourself: mcp-portal gateway)
  --once                 converge every user once, then exit (0 when everything applied)
  --log-level LEVEL      fatal|error|warn|info|debug|trace (LOG_LEVEL)
  --pretty               human-readable logs
`;

export async function runCommand(args: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "data-dir": { type: "string" },
        "state-dir": { type: "string" },
        installation: { type: "string" },
        listen: { type: "string" },
        "allow-mass-prune": { type: "boolean" },
        "read-only-api": { type: "boolean" },
        "no-gateway": { type: "boolean" },
        once: { type: "boolean" },
        "log-level": { type: "string" },
        pretty: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    io.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  let config;
  try {
    config = loadConfig(io.env, {
      MCP_PORTAL_DATA_DIR: values["data-dir"],
      MCP_PORTAL_STATE_DIR: values["state-dir"],
      MCP_PORTAL_INSTALLATION: values.installation,
      MCP_PORTAL_LISTEN: values.listen,
      MCP_PORTAL_ALLOW_MASS_PRUNE: values["allow-mass-prune"],
      MCP_PORTAL_READ_ONLY_API: values["read-only-api"],
      LOG_LEVEL: values["log-level"],
      LOG_PRETTY: values.pretty,
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  let daemon;
  try {
    daemon = await createDaemon({ config, env: io.env, watch: !values.once, listen: !values.once });
  } catch (error) {
    io.stderr.write(`cannot start: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  const { logger } = daemon;
  if (values.once) {
    try {
      await daemon.start();
      await daemon.stop();
      return 0;
    } catch (error) {
      logger.error({ err: error instanceof Error ? error.message : String(error) }, "sync failed");
      await daemon.stop().catch(() => undefined);
      return 1;
    }
  }
  let stopping: Promise<void> | undefined;
  let resolveStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  const stop = (signal: string) => {
    if (stopping) return;
    logger.info({ signal }, "shutting down: finishing in-flight work, containers keep running");
    const deadline = setTimeout(() => {
      logger.error("shutdown took too long; exiting");
      process.exit(1);
    }, 30_000);
    deadline.unref();
    stopping = daemon.stop().then(() => {
      logger.info("stopped");
      resolveStopped();
    });
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  try {
    await daemon.start();
    logger.info(
      { listen: config.listen, data_dir: config.dataDir, installation: config.installation },
      "controller running",
    );
    // The gateway serves users' ports in its own process, so restarting the controller drops no client.
    if (config.gateway && !values["no-gateway"]) await ensureGateway(config, io.env, logger);
  } catch (error) {
    logger.error({ err: error instanceof Error ? error.message : String(error) }, "start failed");
    await daemon.stop().catch(() => undefined);
    return 1;
  }
  await stopped;
  return 0;
}
