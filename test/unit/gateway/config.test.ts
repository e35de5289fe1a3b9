import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/config.js";
import { loadGatewayConfig } from "../../../src/gateway/config.js";

describe("gateway configuration", () => {
  it("has the documented limits by default", () => {
    expect(loadGatewayConfig({}).limits).toEqual({
      maxInflightPerSession: 64,
      maxInflightPerServer: 256,
      maxBatchMessages: 100,
      requestTimeoutMs: 300_000,
      maxSubscriptionsPerSession: 100,
      maxSessionsPerServer: 1000,
      probeMaxBytes: 1_048_576,
      stderrLinesPerMinute: 120,
      logMaxBytes: 10_485_760,
    });
  });

  it("reads each limit from its variable and refuses invalid values", () => {
    const env = {
      MCP_PORTAL_GATEWAY_MAX_INFLIGHT_PER_SESSION: "8",
      MCP_PORTAL_GATEWAY_MAX_INFLIGHT_PER_SERVER: "32",
      MCP_PORTAL_GATEWAY_MAX_BATCH: "10",
      MCP_PORTAL_GATEWAY_REQUEST_TIMEOUT_SECONDS: "30",
      MCP_PORTAL_GATEWAY_MAX_SUBSCRIPTIONS_PER_SESSION: "5",
      MCP_PORTAL_GATEWAY_MAX_SESSIONS_PER_SERVER: "50",
      MCP_PORTAL_GATEWAY_PROBE_MAX_BYTES: "65536",
      MCP_PORTAL_GATEWAY_STDERR_LINES_PER_MINUTE: "0",
      MCP_PORTAL_GATEWAY_LOG_MAX_BYTES: "1048576",
    };
    expect(loadGatewayConfig(env).limits).toEqual({
      maxInflightPerSession: 8,
      maxInflightPerServer: 32,
      maxBatchMessages: 10,
      requestTimeoutMs: 30_000,
      maxSubscriptionsPerSession: 5,
      maxSessionsPerServer: 50,
      probeMaxBytes: 65_536,
      stderrLinesPerMinute: 0,
      logMaxBytes: 1_048_576,
    });
    expect(() => loadGatewayConfig({ MCP_PORTAL_GATEWAY_MAX_BATCH: "0" })).toThrow(ConfigError);
    expect(() => loadGatewayConfig({ MCP_PORTAL_GATEWAY_REQUEST_TIMEOUT_SECONDS: "soon" })).toThrow(
      /MCP_PORTAL_GATEWAY_REQUEST_TIMEOUT_SECONDS/,
    );
  });
});
