// Spec hashes pinned as main computed them before the hardening of user environment and server_security
// (commit fe81dea). An upgrade must not replace a container whose desired state did not change: a server without
// a server_security entry, and a custom server that shadows no admin-loosened id, must keep these exact hashes.
// A failure here means every such running container would be recreated on upgrade.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { volumeKey } from "../../../src/desired/names.js";
import type { DesiredUser, RunOutcome } from "../../../src/desired/types.js";
import { type DesiredUserInput, computeDesiredUser } from "../../../src/desired/user-desired.js";
import { type InputOptions, desiredInput, server } from "./fixtures.js";

/** The volume names 0.1 gave (a 24-bit hash), which an upgraded installation has on its engine. */
function legacyVolumeName(installation: string, userId: string, area: string, subpath: string): string {
  const slug = subpath
    .replace(/[^A-Za-z0-9_.-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  const hash = createHash("sha256")
    .update([installation, userId, area, subpath].join("\u0000"))
    .digest("hex");
  return `mcp-${userId}-${slug ? `${area}-${slug}` : area}-${hash.slice(0, 6)}`;
}

/**
 * The desired state of an installation upgraded from 0.1: its volumes exist under 0.1's names and are adopted by
 * their labels (the controller passes them as existingVolumes), as the pins were computed then.
 */
function computeUpgraded(options: InputOptions): DesiredUser {
  const input: DesiredUserInput = desiredInput(options);
  const fresh = computeDesiredUser(input);
  const existing = new Map(
    fresh.volumes.map((v) => [
      volumeKey(v.area, v.subpath),
      legacyVolumeName(input.installation, input.userId, v.area, v.subpath),
    ]),
  );
  return computeDesiredUser({ ...input, existingVolumes: existing });
}

function runOf(desired: DesiredUser, serverId: string): RunOutcome {
  const outcome = desired.servers.find((s) => s.serverId === serverId);
  if (outcome?.kind !== "run") throw new Error(`${serverId}: expected run, got ${JSON.stringify(outcome)}`);
  return outcome;
}

const USER_ENV_TREE: InputOptions = {
  servers: [
    server("svc", {
      user_configurable: true,
      required_secrets: ["TOKEN"],
      environment: { LOG: "info" },
      volumes: [{ host_path: "{USER_DATA}/svc", container_path: "/work" }],
    }),
    server("web", { transport: "streamable-http", ports: [{ container_port: 8080 }], tag: "2" }),
    server("loose", { tag: "3" }),
  ],
  enabled: {
    environment: { TZ: "UTC", SHARED: "yes" },
    servers: [{ id: "svc", config: { environment: { ONLY_SVC: "1" } } }, { id: "web" }, { id: "loose" }],
  },
  secrets: { TOKEN: "t0ken" },
};

describe("spec hashes pinned from before the hardening", () => {
  it("keeps the hash of servers without server_security, user environment included", () => {
    const desired = computeUpgraded(USER_ENV_TREE);
    expect(runOf(desired, "svc").specHash).toBe("989454e7cf6caec72fae7407bc5fe637");
    expect(runOf(desired, "web").specHash).toBe("c41df12c01462d9009e03dbb5c90e9ad");
    expect(runOf(desired, "loose").specHash).toBe("05d44d6eabe5de652bcca83912ba0e08");
  });

  it("keeps the hash of a loosened server that receives no user environment", () => {
    const desired = computeUpgraded({
      servers: [server("net", { environment: { FROM_CATALOG: "1" } })],
      enabled: { servers: [{ id: "net" }] },
      policy: { server_security: { net: { user: "0:0", cap_add: ["NET_ADMIN"] } } },
    });
    expect(runOf(desired, "net").specHash).toBe("1dc133a33848b80601e54366f1d0eff1");
  });

  it("keeps the hash of a loosened server whose user environment is all in user_env_allow", () => {
    // Pinned from main with the same tree minus user_env_allow (which main did not know): TZ reached it then too.
    const desired = computeUpgraded({
      servers: [server("net", { environment: { FROM_CATALOG: "1" } })],
      enabled: { environment: { TZ: "UTC" }, servers: [{ id: "net" }] },
      policy: { server_security: { net: { user: "0:0", cap_add: ["NET_ADMIN"], user_env_allow: ["TZ"] } } },
    });
    expect(runOf(desired, "net").specHash).toBe("7593b38095224d7d2e3496c039f0a992");
  });

  it("keeps the hash of a custom server that replaces a catalog server no policy loosens", () => {
    const desired = computeUpgraded({
      servers: [server("time", { tag: "v1" })],
      custom: [server("time", { image: "ghcr.io/alice/time", tag: "dev", environment: { A: "b" } })],
      enabled: { environment: { TZ: "UTC" }, servers: [{ id: "time" }] },
      policy: { server_security: { other: { cap_add: ["CHOWN"] } } },
    });
    expect(runOf(desired, "time").specHash).toBe("a13581a8d4a058276c6613d5e4e3e9bf");
  });

  it("gives new volumes (a new installation, a new path) the collision-resistant name, which changes no pin above", () => {
    const desired = computeDesiredUser(desiredInput(USER_ENV_TREE));
    for (const v of desired.volumes) expect(v.name).toMatch(/-[0-9a-f]{32}$/);
    expect(runOf(computeUpgraded(USER_ENV_TREE), "svc").spec.mounts.map((m) => m.volumeName)).toEqual(
      runOf(computeUpgraded(USER_ENV_TREE), "svc").spec.mounts.map((m) => m.volumeName),
    );
    expect(runOf(desired, "svc").specHash).not.toBe("989454e7cf6caec72fae7407bc5fe637");
  });
});
