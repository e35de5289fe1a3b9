import type { Config } from "../config.js";
import { dockerFromEnv } from "./connect.js";
import { DockerodeRuntime } from "./dockerode-runtime.js";
import type { ContainerRuntime } from "./runtime.js";
import { SwarmRuntime } from "./swarm-runtime.js";

/** The runtime MCP_PORTAL_BACKEND names, talking to DOCKER_HOST (an engine, or a Swarm manager). */
export function runtimeFor(config: Config, env: NodeJS.ProcessEnv): ContainerRuntime {
  const docker = dockerFromEnv(env);
  if (config.backend === "swarm") {
    return new SwarmRuntime(docker, {
      timeoutMs: config.dockerTimeoutMs,
      restartDelayMs: config.swarm.restartDelayMs,
      crashLoopFailures: config.swarm.crashLoopFailures,
      crashLoopWindowMs: config.swarm.crashLoopWindowMs,
    });
  }
  return new DockerodeRuntime(docker, { timeoutMs: config.dockerTimeoutMs });
}
