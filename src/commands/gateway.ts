import path from "node:path";
import { loadGatewayConfig } from "../gateway/config.js";
import { RotatingLogFile } from "../gateway/log-file.js";
import { type LogLevel, createLogger } from "../observability/logger.js";
import { createGatewayProcess } from "../gateway/process.js";
import { createEntryGatewayProcess, createNodeGatewayProcess } from "../gateway/swarm-gateway.js";
import { parseCommandArgs } from "./common.js";
import type { CommandIo } from "./io.js";
import {
  SERVICE_OPTIONS,
  createService,
  serveUntilSignal,
  serviceOptions,
  serviceOverrides,
} from "./service.js";

const USAGE = `Usage: mcp-portal gateway [options]

Serves every running server of the installation over MCP (streamable HTTP, /mcp) on its user's host port
(MCP_PORTAL_PUBLISH_HOST:<mcp.portal.host_port>), behind bearer-token auth, and probes each at the MCP level;
health goes to <state-dir>/gateway/health.json.

  --data-dir DIR         desired-state tree, for the default state dir (MCP_PORTAL_DATA_DIR, default .)
  --state-dir DIR        tokens.json and gateway/health.json (MCP_PORTAL_STATE_DIR, default <data-dir>/.mcp-portal)
  --installation NAME    the installation whose containers to serve (MCP_PORTAL_INSTALLATION)
  --listen HOST:PORT     the gateway's /healthz, /readyz, /metrics (MCP_PORTAL_GATEWAY_LISTEN, default 127.0.0.1:8081)
  --log-file FILE        write the log to FILE (JSON lines), rotated at MCP_PORTAL_GATEWAY_LOG_MAX_BYTES
                         (default 10 MiB; FILE.1 .. FILE.5 kept); without it the log goes to stdout
  --log-level LEVEL      fatal|error|warn|info|debug|trace (LOG_LEVEL)
  --pretty               human-readable logs (stdout only)

Also: MCP_PORTAL_ADMIN_TOKEN(_FILE), MCP_PORTAL_GATEWAY_ALLOWED_ORIGINS (comma-separated origins, or *),
MCP_PORTAL_GATEWAY_RESYNC_SECONDS (30), MCP_PORTAL_GATEWAY_WAKE_TIMEOUT_SECONDS (30),
the limits MCP_PORTAL_GATEWAY_* (README, "Gateway limits"), DOCKER_HOST.
Several hosts (README, "Several hosts"): MCP_PORTAL_GATEWAY_ROLE single|node|entry (default single),
MCP_PORTAL_GATEWAY_RELAY_PORT (7070), MCP_PORTAL_GATEWAY_CONTAINER (node role: its own container; default hostname).
`;

export async function gatewayCommand(args: string[], io: CommandIo): Promise<number> {
  const options = serviceOptions(io, USAGE, () => {
    const { values } = parseCommandArgs({
      args,
      options: { ...SERVICE_OPTIONS, "log-file": { type: "string" } },
      strict: true,
    });
    if (values.help) return "help";
    const loaded = loadGatewayConfig(io.env, {
      ...serviceOverrides(values),
      MCP_PORTAL_GATEWAY_LISTEN: values.listen,
    });
    return { config: loaded, logFile: values["log-file"] };
  });
  if (typeof options === "number") return options;
  const { config, logFile } = options;
  let file: RotatingLogFile | undefined;
  const gateway = await createService(io, () => {
    let logger;
    if (logFile !== undefined) {
      file = new RotatingLogFile(path.resolve(logFile), { maxBytes: config.limits.logMaxBytes });
      logger = createLogger({ level: config.logLevel as LogLevel, destination: file }).child({
        component: "gateway",
      });
    }
    // Several hosts (README, "Several hosts"): a node gateway per Swarm node, and the entry in front of them.
    if (config.role === "node")
      return createNodeGatewayProcess({ config, env: io.env, ...(logger ? { logger } : {}) });
    if (config.role === "entry")
      return createEntryGatewayProcess({ config, env: io.env, ...(logger ? { logger } : {}) });
    return createGatewayProcess({ config, env: io.env, ...(logger ? { logger } : {}) });
  });
  if (typeof gateway === "number") {
    file?.close();
    return gateway;
  }
  const messages = {
    stopping: "gateway shutting down: closing ports and client sessions",
    stopped: "gateway stopped",
    startFailed: "gateway start failed",
    stopDeadlineMs: 15_000,
  };
  // Started by `run` with an IPC channel (not with --keep-gateway): the channel closes when `run` exits, even
  // when it is killed with SIGKILL, and the gateway then stops as on SIGTERM instead of serving on unsupervised.
  const supervised = process.channel !== undefined;
  const supervisorGone = () => {
    gateway.logger.warn("the supervising run process is gone; stopping");
    process.kill(process.pid, "SIGTERM");
  };
  if (supervised) {
    process.channel?.unref();
    process.once("disconnect", supervisorGone);
  }
  const code = await serveUntilSignal(gateway, messages, () => {
    gateway.logger.info(
      {
        listen: `${config.listen.host}:${config.listen.port}`,
        publish_host: config.publishHost,
        installation: config.installation,
        state_dir: config.stateDir,
        supervised,
      },
      "gateway running",
    );
  });
  file?.close();
  process.off("disconnect", supervisorGone);
  if (process.connected) process.disconnect();
  return code;
}
