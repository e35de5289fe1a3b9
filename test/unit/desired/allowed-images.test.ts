// Without allowed_images in policy.json (or without policy.json) every image of every registry ran.
// MCP_PORTAL_ALLOWED_IMAGES now sets the allow-list for that case; policy.json, when it gives the field, wins.
import { describe, expect, it } from "vitest";
import type { DesiredUser } from "../../../src/desired/types.js";
import { computeDesiredUser } from "../../../src/desired/user-desired.js";
import { desiredInput, server } from "./fixtures.js";

const SERVERS = [server("time"), server("miner", { image: "docker.io/evil/miner" })];

function outcomes(desired: DesiredUser): string[] {
  return desired.servers.map((s) => `${s.serverId}:${s.kind === "run" ? "run" : s.reason}`);
}

describe("the image allow-list of computeDesiredUser", () => {
  it("lets any image run when neither policy.json nor MCP_PORTAL_ALLOWED_IMAGES names any", () => {
    expect(outcomes(computeDesiredUser(desiredInput({ servers: SERVERS })))).toEqual([
      "time:run",
      "miner:run",
    ]);
  });

  it("applies MCP_PORTAL_ALLOWED_IMAGES when policy.json gives no allowed_images", () => {
    for (const policy of [{}, { default_limits: { max_containers: 5 } }]) {
      const desired = computeDesiredUser(
        desiredInput({ servers: SERVERS, policy, defaultAllowedImages: ["mcp/*"] }),
      );
      expect(outcomes(desired)).toEqual(["time:run", "miner:ImageNotAllowed"]);
      const miner = desired.servers[1];
      expect(miner?.kind === "blocked" && miner.message).toBe(
        'image "docker.io/evil/miner" is not allowed by MCP_PORTAL_ALLOWED_IMAGES (policy.json gives no allowed_images)',
      );
      expect(miner?.kind === "blocked" && miner.keepExisting).toBe(false);
    }
  });

  it("lets policy.json's allowed_images win over MCP_PORTAL_ALLOWED_IMAGES", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: SERVERS,
        policy: { allowed_images: ["docker.io/evil/*"] },
        defaultAllowedImages: ["mcp/*"],
      }),
    );
    expect(outcomes(desired)).toEqual(["time:ImageNotAllowed", "miner:run"]);
    const time = desired.servers[0];
    expect(time?.kind === "blocked" && time.message).toBe(
      'image "mcp/time" is not allowed by policy.json allowed_images',
    );
  });

  it("lets an empty allowed_images in policy.json refuse everything, whatever the environment says", () => {
    const desired = computeDesiredUser(
      desiredInput({ servers: SERVERS, policy: { allowed_images: [] }, defaultAllowedImages: ["*"] }),
    );
    expect(outcomes(desired)).toEqual(["time:ImageNotAllowed", "miner:ImageNotAllowed"]);
  });
});
