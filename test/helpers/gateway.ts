// The gateway in-process for integration tests, as `portal gateway` wires it but without its own listener
// (no /healthz, no identity file), its log lines kept for assertions.
import { Writable } from "node:stream";
import { loadGatewayConfig } from "../../src/gateway/config.js";
import {
  type GatewayProcess,
  type GatewayProcessOptions,
  createGatewayProcess,
} from "../../src/gateway/process.js";
import { type LogLevel, createLogger } from "../../src/observability/logger.js";

export interface TestGatewayOptions {
  /** Every log line is pushed here (pino JSON). */
  logs: string[];
  level?: LogLevel;
  /** Merged over the defaults: a 15 s wait for a server's first answer, a 0.5 s port re-bind. */
  tuning?: GatewayProcessOptions["tuning"];
}

/** Creates and starts the gateway for `env`; the caller stops it (a failed start stops what it began). */
export async function startTestGateway(
  env: NodeJS.ProcessEnv,
  options: TestGatewayOptions,
): Promise<GatewayProcess> {
  const { logs } = options;
  const gateway = await createGatewayProcess({
    config: loadGatewayConfig(env),
    env,
    listen: false,
    logger: createLogger({
      level: options.level ?? "info",
      destination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          logs.push(chunk.toString("utf8"));
          done();
        },
      }),
    }),
    tuning: { readyWaitMs: 15_000, bindRetryMs: 500, ...options.tuning },
  });
  try {
    await gateway.start();
  } catch (error) {
    await gateway.stop().catch(() => undefined);
    throw error;
  }
  return gateway;
}
