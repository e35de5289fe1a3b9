import { Writable } from "node:stream";
import { type LogLevel, type Logger, createLogger } from "../../src/observability/logger.js";

/** A logger at `level` whose lines (pino's JSON, one per entry) are kept in `logs` for a test to read. */
export function capturedLogger(level: LogLevel): { logger: Logger; logs: string[] } {
  const logs: string[] = [];
  const logger = createLogger({
    level,
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString("utf8"));
        done();
      },
    }),
  });
  return { logger, logs };
}
