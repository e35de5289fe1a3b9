import { spawn } from "node:child_process";
import { mkdir, open } from "node:fs/promises";
import path from "node:path";
import { parseListen } from "../api/http-server.js";
import type { Config } from "../config.js";
import type { Logger } from "../observability/logger.js";

export const DEFAULT_GATEWAY_LISTEN = "127.0.0.1:8081";

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Starts `mcp-portal gateway` as its own detached process unless one already answers on its listener, so that
 * restarting the controller never drops a client's MCP session. Its output goes to <state-dir>/gateway.log.
 */
export async function ensureGateway(
  config: Config,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<"running" | "started" | "failed"> {
  const { host, port } = parseListen(env.MCP_PORTAL_GATEWAY_LISTEN?.trim() || DEFAULT_GATEWAY_LISTEN);
  const healthz = `http://${host.includes(":") ? `[${host}]` : host}:${port}/healthz`;
  if (await answers(healthz)) {
    logger.info({ gateway: healthz }, "gateway already running");
    return "running";
  }
  const entry = process.argv[1];
  if (!entry) return "failed";
  await mkdir(config.stateDir, { recursive: true });
  const log = await open(path.join(config.stateDir, "gateway.log"), "a", 0o600);
  try {
    const child = spawn(
      process.execPath,
      [
        ...process.execArgv,
        entry,
        "gateway",
        "--data-dir",
        config.dataDir,
        "--state-dir",
        config.stateDir,
        "--installation",
        config.installation,
      ],
      { detached: true, stdio: ["ignore", log.fd, log.fd], env },
    );
    child.unref();
    logger.info({ pid: child.pid, log: path.join(config.stateDir, "gateway.log") }, "gateway started");
  } finally {
    await log.close();
  }
  for (let i = 0; i < 50; i++) {
    if (await answers(healthz)) return "started";
    await new Promise((r) => setTimeout(r, 200));
  }
  logger.warn({ gateway: healthz }, "the gateway did not answer within 10 s; see gateway.log");
  return "failed";
}
