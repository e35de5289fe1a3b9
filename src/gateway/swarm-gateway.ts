import { hostname } from "node:os";
import path from "node:path";
import { loadConfig } from "../config.js";
import { runtimeFor } from "../docker/backend.js";
import { dockerFromEnv } from "../docker/connect.js";
import { DockerodeRuntime } from "../docker/dockerode-runtime.js";
import { createLogger, type LogLevel, type Logger } from "../observability/logger.js";
import type { GatewayConfig } from "./config.js";
import { EntryGateway } from "./entry.js";
import { NetworkJoiner } from "./network-joiner.js";
import { createGatewayProcess } from "./process.js";
import { RelayServer } from "./relay.js";

/*
 * The two gateway roles of a Swarm installation (README, "Several hosts"), wired in one place: a node gateway
 * per node (the usual gateway on that node's own engine, plus the relay port and the overlay joins), and the
 * entry (the stable address, forwarding to the node gateways).
 */

/** How often a node gateway looks for new local servers' networks to join. */
const JOIN_INTERVAL_MS = 2_000;

export interface RoleProcess {
  logger: Logger;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function roleLogger(config: GatewayConfig, logger: Logger | undefined, role: string): Logger {
  return (
    logger ??
    createLogger({ level: config.logLevel as LogLevel, pretty: config.logPretty }).child({
      component: `gateway-${role}`,
    })
  );
}

/**
 * A node gateway: runs in a container on its node with the node's own engine socket (DOCKER_HOST), serves the
 * servers whose tasks run there (their containers carry our labels) on loopback, joins their overlays, and takes
 * the entry's connections on the relay port.
 */
export async function createNodeGatewayProcess(options: {
  config: GatewayConfig;
  env: NodeJS.ProcessEnv;
  logger?: Logger;
}): Promise<RoleProcess> {
  const logger = roleLogger(options.config, options.logger, "node");
  const node = hostname();
  const config: GatewayConfig = {
    ...options.config,
    healthFile: path.join(options.config.stateDir, "gateway", `health-${node}.json`),
  };
  const inner = await createGatewayProcess({ config, env: options.env, logger, listen: false });
  const docker = dockerFromEnv(options.env);
  const joiner = new NetworkJoiner(
    docker,
    new DockerodeRuntime(docker, { timeoutMs: config.dockerTimeoutMs }),
    {
      installation: config.installation,
      self: config.selfContainer ?? node,
      logger,
    },
  );
  const relay = new RelayServer({
    host: "0.0.0.0",
    port: config.relayPort,
    targetHost: config.publishHost,
    served: () => new Set([...inner.gateway.endpoints.values()].map((e) => e.currentTarget.hostPort)),
    logger,
  });
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const join = async () => {
    try {
      await joiner.sync();
    } catch (error) {
      logger.warn(
        { err: error instanceof Error ? error.message : String(error) },
        "joining user networks failed",
      );
    }
  };
  const loop = () => {
    if (stopped) return;
    timer = setTimeout(() => void join().finally(loop), JOIN_INTERVAL_MS);
  };
  return {
    logger,
    async start() {
      await join();
      await inner.start();
      await relay.listen();
      loop();
      logger.info({ node, relay_port: config.relayPort }, "node gateway running");
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await relay.close();
      await inner.stop();
    },
  };
}

/** The entry: lists the Swarm manager (DOCKER_HOST) and forwards users' ports to their nodes' relay ports. */
export function createEntryGatewayProcess(options: {
  config: GatewayConfig;
  env: NodeJS.ProcessEnv;
  logger?: Logger;
}): Promise<RoleProcess> {
  const { config, env } = options;
  const logger = roleLogger(config, options.logger, "entry");
  const base = loadConfig(env, { MCP_PORTAL_BACKEND: "swarm", MCP_PORTAL_INSTALLATION: config.installation });
  const entry = new EntryGateway({
    runtime: runtimeFor(base, env),
    installation: config.installation,
    listenHost: config.publishHost,
    relayPort: config.relayPort,
    pollMs: Math.min(config.resyncMs, base.swarm.pollMs),
    logger,
  });
  return Promise.resolve({
    logger,
    async start() {
      await entry.start();
      logger.info({ listen_host: config.publishHost, relay_port: config.relayPort }, "entry gateway running");
    },
    stop: () => entry.stop(),
  });
}
