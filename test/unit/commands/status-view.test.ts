// `mcp-portal status --output json`: what a server's row carries from the status file.
import { describe, expect, it } from "vitest";
import { userView } from "../../../src/commands/status.js";
import { UserStatus } from "../../../src/contracts/status-file.js";

function status(servers: unknown[]): UserStatus {
  return UserStatus.parse({
    api_version: "mcp-portal/v1",
    user_id: "alice",
    phase: "Ready",
    observed_generation: "g",
    network: null,
    port_block: { start: 20000, end: 20009 },
    servers,
    resources: null,
    conditions: [],
    errors: [],
    last_reconciles: [],
  });
}

describe("status view", () => {
  it("gives each server its client URL, tool policy and rate limit from the status file", () => {
    const view = userView(
      "alice",
      status([
        {
          id: "github",
          phase: "Running",
          host_port: 20000,
          url: "https://mcp.example.com:20000/mcp",
          tools: { allow: ["get_*"], deny: ["get_secret"] },
          rate_limit: { requests: 60, window_seconds: 60 },
        },
        { id: "time", phase: "Pending", host_port: 20001 },
      ]),
      [],
      Date.now(),
    );
    expect(view.servers[0]).toMatchObject({
      id: "github",
      url: "https://mcp.example.com:20000/mcp",
      tools: { allow: ["get_*"], deny: ["get_secret"] },
      rate_limit: { requests: 60, window_seconds: 60 },
    });
    // Without the gateway (or before a port), there is no URL to give.
    expect(view.servers[1]).not.toHaveProperty("url");
    expect(view.servers[1]).not.toHaveProperty("tools");
  });
});
