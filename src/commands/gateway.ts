import { parseArgs } from "node:util";
import { ConfigError } from "../config.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { createGatewayProcess } from "../gateway/process.js";
import type { CommandIo } from "./io.js";

const USAGE = `Usage: mcp-portal gateway [options]

Serves every running server of the installation over MCP (streamable HTTP, /mcp) on its user's host port
(MCP_PORTAL_PUBLISH_HOST:<mcp.portal.host_port>), behind bearer-token auth, and probes each at the MCP level;
health goes to <state-dir>/gateway/health.json.

  --data-dir DIR         desired-state tree, for the default state dir (MCP_PORTAL_DATA_DIR, default .)
  --state-dir DIR        tokens.json and gateway/health.json (MCP_PORTAL_STATE_DIR, default <data-dir>/.mcp-portal)
  --installation NAME    the installation whose containers to serve (MCP_PORTAL_INSTALLATION)
  --listen HOST:PORT     the gateway's /healthz, /readyz, /metrics (MCP_PORTAL_GATEWAY_LISTEN, default 127.0.0.1:8081)
  --log-level LEVEL      fatal|error|warn|info|debug|trace (LOG_LEVEL)
  --pretty               human-readable logs

Also: MCP_PORTAL_ADMIN_TOKEN(_FILE), MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS (comma-separated origins, or *),
MCP_PORTAL_GATEWAY_RESYNC_SECONDS (30), DOCKER_HOST.
`;

export async function gatewayCommand(args: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "data-dir": { type: "string" },
        "state-dir": { type: "string" },
        installation: { type: "string" },
        listen: { type: "string" },
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
    config = loadGatewayConfig(io.env, {
      MCP_PORTAL_DATA_DIR: values["data-dir"],
      MCP_PORTAL_STATE_DIR: values["state-dir"],
      MCP_PORTAL_INSTALLATION: values.installation,
      MCP_PORTAL_GATEWAY_LISTEN: values.listen,
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
  let gateway;
  try {
    gateway = await createGatewayProcess({ config, env: io.env });
  } catch (error) {
    io.stderr.write(`cannot start: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  const { logger } = gateway;
  let resolveStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "gateway shutting down: closing ports and client sessions");
    const deadline = setTimeout(() => {
      logger.error("shutdown took too long; exiting");
      process.exit(1);
    }, 15_000);
    deadline.unref();
    void gateway.stop().then(() => {
      logger.info("gateway stopped");
      resolveStopped();
    });
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  try {
    await gateway.start();
    logger.info(
      {
        listen: `${config.listen.host}:${config.listen.port}`,
        publish_host: config.publishHost,
        installation: config.installation,
        state_dir: config.stateDir,
      },
      "gateway running",
    );
  } catch (error) {
    logger.error({ err: error instanceof Error ? error.message : String(error) }, "gateway start failed");
    await gateway.stop().catch(() => undefined);
    return 1;
  }
  await stopped;
  return 0;
}
