import { readFileSync } from "node:fs";
import path from "node:path";
import Docker from "dockerode";

/**
 * A client for the engine named by DOCKER_HOST in `env` (unix:// or tcp://, with DOCKER_TLS_VERIFY and
 * DOCKER_CERT_PATH as the docker CLI reads them), else the default socket. Taking `env` rather than
 * process.env lets one process (tests, a future multi-host setup) talk to several engines.
 */
export function dockerFromEnv(env: NodeJS.ProcessEnv): Docker {
  const host = env.DOCKER_HOST?.trim();
  if (!host) return new Docker({ socketPath: "/var/run/docker.sock" });
  if (host.startsWith("unix://")) return new Docker({ socketPath: host.slice("unix://".length) });
  const tls =
    env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== "" && env.DOCKER_TLS_VERIFY !== "0";
  const url = new URL(host.replace(/^tcp:\/\//, tls ? "https://" : "http://"));
  const certDir = env.DOCKER_CERT_PATH ?? path.join(env.HOME ?? "", ".docker");
  return new Docker({
    host: url.hostname,
    port: Number(url.port || (tls ? 2376 : 2375)),
    protocol: tls ? "https" : "http",
    ...(tls
      ? {
          ca: readFileSync(path.join(certDir, "ca.pem")),
          cert: readFileSync(path.join(certDir, "cert.pem")),
          key: readFileSync(path.join(certDir, "key.pem")),
        }
      : {}),
  });
}
