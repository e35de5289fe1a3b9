import { loadConfig } from "../config.js";
import { createDaemon } from "../daemon.js";
import { GatewaySupervisor } from "./gateway-launcher.js";
import { errorMessage, parseCommandArgs } from "./common.js";
import type { CommandIo } from "./io.js";
import {
  SERVICE_OPTIONS,
  type Service,
  createService,
  serveUntilSignal,
  serviceOptions,
  serviceOverrides,
} from "./service.js";

const USAGE = `Usage: mcp-portal run [options]

  --data-dir DIR         desired-state tree (MCP_PORTAL_DATA_DIR, default .)
  --state-dir DIR        where status, cache and audit go (MCP_PORTAL_STATE_DIR, default <data-dir>/.mcp-portal)
  --installation NAME    label value separating installations on one engine (MCP_PORTAL_INSTALLATION)
  --backend KIND         engine (one Docker Engine) or swarm (DOCKER_HOST is a Swarm manager)
                         (MCP_PORTAL_BACKEND, default engine; README, "Several hosts")
  --listen HOST:PORT     metrics, probes and API (MCP_PORTAL_LISTEN, default 127.0.0.1:8080)
  --allow-mass-prune     let one pass remove more than the safe share of managed containers
  --read-only-api        the API refuses every write (git is the only writer) (MCP_PORTAL_READ_ONLY_API)
  --no-gateway           do not start the gateway process (run it yourself: mcp-portal gateway)
  --keep-gateway         leave the gateway running when run stops (the next run of this installation adopts
                         it), so restarting the controller drops no MCP client
  --once                 converge every user once, then exit (0 when everything applied)
  --log-level LEVEL      fatal|error|warn|info|debug|trace (LOG_LEVEL)
  --pretty               human-readable logs
`;

export async function runCommand(args: string[], io: CommandIo): Promise<number> {
  const options = serviceOptions(io, USAGE, () => {
    const { values } = parseCommandArgs({
      args,
      options: {
        ...SERVICE_OPTIONS,
        "allow-mass-prune": { type: "boolean" },
        "read-only-api": { type: "boolean" },
        "no-gateway": { type: "boolean" },
        "keep-gateway": { type: "boolean" },
        once: { type: "boolean" },
      },
      strict: true,
    });
    if (values.help) return "help";
    const config = loadConfig(io.env, {
      ...serviceOverrides(values),
      MCP_PORTAL_LISTEN: values.listen,
      MCP_PORTAL_ALLOW_MASS_PRUNE: values["allow-mass-prune"],
      MCP_PORTAL_READ_ONLY_API: values["read-only-api"],
    });
    return {
      config,
      once: values.once === true,
      gateway: values["no-gateway"] !== true,
      keepGateway: values["keep-gateway"] === true,
    };
  });
  if (typeof options === "number") return options;
  const { config, once } = options;
  const daemon = await createService(io, () =>
    createDaemon({ config, env: io.env, watch: !once, listen: !once }),
  );
  if (typeof daemon === "number") return daemon;
  const { logger } = daemon;
  if (once) {
    try {
      await daemon.start();
      await daemon.stop();
      return 0;
    } catch (error) {
      logger.error({ err: errorMessage(error) }, "sync failed");
      await daemon.stop().catch(() => undefined);
      return 1;
    }
  }
  const messages = {
    stopping: "shutting down: finishing in-flight work, containers keep running",
    stopped: "stopped",
    startFailed: "start failed",
    stopDeadlineMs: 30_000,
  };
  // The gateway serves users' ports in its own process; run supervises it (and stops it) unless --keep-gateway.
  // Swarm: the node gateways and the entry run on the cluster's nodes, deployed by the operator (README,
  // "Several hosts"); a gateway beside the controller would serve only the manager's own engine.
  const supervisor =
    config.gateway && options.gateway && config.backend === "engine"
      ? new GatewaySupervisor({ config, env: io.env, logger, keep: options.keepGateway })
      : undefined;
  let stopRequested = false;
  const service: Service = {
    logger,
    async start() {
      // First: another installation's gateway on our address fails the start before anything else happens.
      await supervisor?.start();
      // A signal while the gateway started: do not start the controller only to stop it.
      if (!stopRequested) await daemon.start();
    },
    async stop() {
      stopRequested = true;
      await Promise.all([supervisor?.stop(), daemon.stop()]);
    },
  };
  return serveUntilSignal(service, messages, () => {
    logger.info(
      {
        listen: config.listen,
        data_dir: config.dataDir,
        installation: config.installation,
        ...(supervisor ? { gateway_pid: supervisor.pid } : {}),
      },
      "controller running",
    );
  });
}
