import { describe, expect, it } from "vitest";
import { createLogger, isLogLevel, REDACTED } from "../../../src/observability/logger.js";
import type { LoggerOptions } from "../../../src/observability/logger.js";

const SECRET = "s3cr3t-ghp_0123456789";

function capture(options: Omit<LoggerOptions, "destination"> = {}) {
  const lines: string[] = [];
  const logger = createLogger({
    ...options,
    destination: { write: (line: string) => void lines.push(line) },
  });
  const records = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, records };
}

describe("createLogger", () => {
  it("writes one JSON object per line with an ISO time, level and message", () => {
    const { logger, lines, records } = capture();
    logger.info({ user_id: "alice" }, "reconciled");
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith("\n")).toBe(true);
    const [record] = records();
    expect(record).toMatchObject({ level: 30, msg: "reconciled", user_id: "alice", name: "mcp-portal" });
    expect(new Date(record?.time as string).toISOString()).toBe(record?.time);
  });

  it("respects the level", () => {
    const { logger, lines } = capture({ level: "warn" });
    logger.info("hidden");
    logger.debug("hidden");
    logger.warn("shown");
    expect(lines).toHaveLength(1);
  });

  it("redacts secrets at the logger, whatever the call site passes", () => {
    const { logger, lines, records } = capture({ level: "trace" });
    logger.info({ value: SECRET }, "top-level value");
    logger.info({ secret: { value: SECRET } }, "nested value");
    logger.info({ server: { secrets: { GITHUB_TOKEN: SECRET } } }, "secrets map");
    logger.info({ env: { GITHUB_TOKEN: SECRET } }, "env at root");
    logger.info({ spec: { env: [`GITHUB_TOKEN=${SECRET}`], environment: { A: SECRET } } }, "env in a spec");
    logger.info({ req: { headers: { authorization: `Bearer ${SECRET}` } } }, "request");
    logger.info({ headers: { authorization: `Bearer ${SECRET}` } }, "headers");
    logger.info({ api: { token: SECRET }, db: { password: SECRET } }, "token and password");
    logger.info({ a: { b: { token: SECRET } } }, "two levels down");
    const child = logger.child({ user_id: "alice" });
    child.warn({ secret: SECRET }, "child logger");
    expect(lines).toHaveLength(10);
    for (const line of lines) expect(line).not.toContain(SECRET);
    expect(records()[0]).toMatchObject({ value: REDACTED });
    expect(records()[2]).toMatchObject({ server: { secrets: REDACTED } });
    expect(records()[9]).toMatchObject({ user_id: "alice", secret: REDACTED });
  });

  it("keeps harmless fields", () => {
    const { logger, records } = capture();
    logger.info({ user_id: "alice", server_id: "github", secret_names: ["GITHUB_TOKEN"] }, "ok");
    expect(records()[0]).toMatchObject({
      user_id: "alice",
      server_id: "github",
      secret_names: ["GITHUB_TOKEN"],
    });
  });

  it("isLogLevel accepts pino's levels only", () => {
    expect(isLogLevel("debug")).toBe(true);
    expect(isLogLevel("silent")).toBe(true);
    expect(isLogLevel("verbose")).toBe(false);
  });
});
