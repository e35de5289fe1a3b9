// policy.json server_security loosens one server's container (root, capabilities). These tests replay the
// hardening issue's attacks of a user with commit rights to their own folder: borrowing that loosening with a
// custom server of the same id, and reaching the loosened container through their environment (LD_PRELOAD into
// the /data volume every container of theirs mounts writable).
import { describe, expect, it } from "vitest";
import type { BlockedOutcome, DesiredUser, RunOutcome } from "../../../src/desired/types.js";
import { computeDesiredUser, effectiveLimits } from "../../../src/desired/user-desired.js";
import { PolicyFile } from "../../../src/schema/policy.js";
import { DEFAULT_LIMITS, type InputOptions, desiredInput, server } from "./fixtures.js";

function runOf(desired: DesiredUser, serverId: string): RunOutcome {
  const outcome = desired.servers.find((s) => s.serverId === serverId);
  if (outcome?.kind !== "run") throw new Error(`${serverId}: expected run, got ${JSON.stringify(outcome)}`);
  return outcome;
}

function blockedOf(desired: DesiredUser, serverId: string): BlockedOutcome {
  const outcome = desired.servers.find((s) => s.serverId === serverId);
  if (outcome?.kind !== "blocked") throw new Error(`${serverId}: expected blocked, got ${outcome?.kind}`);
  return outcome;
}

const LOOSENED = { playwright: { user: "0:0", cap_add: ["SYS_ADMIN"], read_only_rootfs: false } };
const ADMIN_PLAYWRIGHT = server("playwright", { image: "mcp/playwright", tag: "1", user_configurable: true });

describe("a user's custom server under a loosened id", () => {
  it("is Blocked with ShadowsAdminServer instead of running the user's image as root with SYS_ADMIN", () => {
    const desired = computeDesiredUser(
      desiredInput({
        userId: "mallory",
        servers: [ADMIN_PLAYWRIGHT],
        custom: [
          server("playwright", { image: "mcp/anything-i-built", tag: "latest", command: ["sh", "-c", "id"] }),
        ],
        enabled: { servers: [{ id: "playwright" }] },
        policy: { allowed_images: ["mcp/*"], server_security: LOOSENED },
      }),
    );
    const blocked = blockedOf(desired, "playwright");
    expect(blocked.reason).toBe("ShadowsAdminServer");
    // A container it may have left from before must go: it runs the user's code with the admin's rights.
    expect(blocked.keepExisting).toBe(false);
    expect(blocked.message).toContain('server "playwright" in users/alice/custom-servers.json');
    expect(blocked.message).toContain("server_security");
    expect(desired.usage.containers).toBe(0);
  });

  it("is blocked for that reason even when its image is not allowed either", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [ADMIN_PLAYWRIGHT],
        custom: [server("playwright", { image: "ghcr.io/evil/x" })],
        enabled: { servers: [{ id: "playwright" }] },
        policy: { allowed_images: ["mcp/*"], server_security: LOOSENED },
      }),
    );
    expect(blockedOf(desired, "playwright").reason).toBe("ShadowsAdminServer");
  });

  it("is blocked when the loosened id is in no catalog at all (the admin set it up ahead)", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("time")],
        custom: [server("net", { image: "mcp/mine" })],
        enabled: { servers: [{ id: "time" }, { id: "net" }] },
        policy: { server_security: { net: { cap_add: ["NET_ADMIN"] } } },
      }),
    );
    expect(blockedOf(desired, "net").reason).toBe("ShadowsAdminServer");
    expect(runOf(desired, "time").spec.capAdd).toEqual([]);
  });

  it("leaves the admin's own loosened server running with its settings, for every other user", () => {
    const run = runOf(
      computeDesiredUser(
        desiredInput({
          servers: [ADMIN_PLAYWRIGHT],
          enabled: { servers: [{ id: "playwright" }] },
          policy: { server_security: LOOSENED },
        }),
      ),
      "playwright",
    );
    expect(run.spec.image).toBe("mcp/playwright:1");
    expect(run.spec.user).toBe("0:0");
    expect(run.spec.capAdd).toEqual(["SYS_ADMIN"]);
  });

  it("still replaces by id a catalog server that no policy loosens", () => {
    const run = runOf(
      computeDesiredUser(
        desiredInput({
          servers: [server("time", { tag: "v1" })],
          custom: [server("time", { image: "ghcr.io/alice/time", tag: "dev" })],
          policy: { server_security: LOOSENED },
        }),
      ),
      "time",
    );
    expect(run.spec.image).toBe("ghcr.io/alice/time:dev");
    expect(run.spec.user).toBe("1000:1000");
    expect(run.spec.capAdd).toEqual([]);
  });
});

describe("the user's environment and a loosened server", () => {
  const enabled = {
    environment: { LD_PRELOAD: "/data/x.so", TZ: "UTC" },
    servers: [
      { id: "playwright", config: { environment: { NODE_OPTIONS: "--require /data/x.js", DEBUG: "1" } } },
      { id: "time" },
    ],
  };

  it("reaches a loosened server not at all: neither top-level nor per-server names", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [ADMIN_PLAYWRIGHT, server("time")],
        enabled,
        policy: { server_security: LOOSENED },
      }),
    );
    const run = runOf(desired, "playwright");
    expect(run.spec.env.LD_PRELOAD).toBeUndefined();
    expect(run.spec.env.NODE_OPTIONS).toBeUndefined();
    expect(run.spec.env.TZ).toBeUndefined();
    expect(run.spec.env.DEBUG).toBeUndefined();
    expect(run.specFields["env.LD_PRELOAD"]).toBeUndefined();
    expect(run.droppedUserEnv).toEqual(["DEBUG", "LD_PRELOAD", "NODE_OPTIONS", "TZ"]);
    // What the admin and the portal put there stays.
    expect(run.spec.env.MCP_USER_ID).toBe("alice");
    // A server without an override still gets all of it.
    const time = runOf(desired, "time");
    expect(time.spec.env).toMatchObject({ LD_PRELOAD: "/data/x.so", TZ: "UTC" });
    expect(time.droppedUserEnv).toBeUndefined();
  });

  it("passes the names listed in user_env_allow, and only those", () => {
    const run = runOf(
      computeDesiredUser(
        desiredInput({
          servers: [ADMIN_PLAYWRIGHT, server("time")],
          enabled,
          policy: {
            server_security: { playwright: { ...LOOSENED.playwright, user_env_allow: ["TZ", "DEBUG"] } },
          },
        }),
      ),
      "playwright",
    );
    expect(run.spec.env.TZ).toBe("UTC");
    expect(run.spec.env.DEBUG).toBe("1");
    expect(run.spec.env.LD_PRELOAD).toBeUndefined();
    expect(run.spec.env.NODE_OPTIONS).toBeUndefined();
    expect(run.droppedUserEnv).toEqual(["LD_PRELOAD", "NODE_OPTIONS"]);
  });

  it("keeps the server's own environment and secrets on a loosened server", () => {
    const run = runOf(
      computeDesiredUser(
        desiredInput({
          servers: [
            server("playwright", { environment: { BROWSER: "chromium" }, required_secrets: ["TOKEN"] }),
          ],
          enabled: { environment: { BROWSER: "user-choice" }, servers: [{ id: "playwright" }] },
          policy: { server_security: LOOSENED },
          secrets: { TOKEN: "t" },
        }),
      ),
      "playwright",
    );
    expect(run.spec.env.BROWSER).toBe("chromium");
    expect(run.spec.env.TOKEN).toBe("t");
    expect(run.droppedUserEnv).toEqual(["BROWSER"]);
  });

  it("treats an override without any loosening field as loosened too (the entry, not its content, counts)", () => {
    const run = runOf(
      computeDesiredUser(
        desiredInput({
          servers: [server("time")],
          enabled: { environment: { LD_PRELOAD: "/data/x.so" }, servers: [{ id: "time" }] },
          policy: { server_security: { time: {} } },
        }),
      ),
      "time",
    );
    expect(run.spec.env.LD_PRELOAD).toBeUndefined();
  });

  it("changes the spec hash of a loosened server that received user environment before (upgrade note)", () => {
    const policy = { server_security: LOOSENED };
    const servers = [ADMIN_PLAYWRIGHT];
    const withEnv = runOf(computeDesiredUser(desiredInput({ servers, enabled, policy })), "playwright");
    const withoutEnv = runOf(
      computeDesiredUser(desiredInput({ servers, enabled: { servers: [{ id: "playwright" }] }, policy })),
      "playwright",
    );
    // The user's environment no longer reaches it, so it hashes as if the user had none.
    expect(withEnv.specHash).toBe(withoutEnv.specHash);
  });
});

describe("keys from files are looked up as own properties", () => {
  // Object.prototype has `constructor`, `toString`, `valueOf`, ...: a plain `record[id]` would find them.
  const names = ["constructor", "toString", "valueOf", "hasOwnProperty"];

  it("does not take a custom server named like an Object.prototype member for a loosened one", () => {
    for (const id of names) {
      const desired = computeDesiredUser(
        desiredInput({
          servers: [server("time")],
          custom: [server(id, { image: "mcp/mine" })],
          enabled: { environment: { TZ: "UTC" }, servers: [{ id }] },
          policy: { server_security: LOOSENED },
        }),
      );
      const run = runOf(desired, id);
      expect(run.spec.user).toBe("1000:1000");
      expect(run.spec.env.TZ).toBe("UTC");
      expect(run.droppedUserEnv).toBeUndefined();
    }
  });

  it("applies an override that policy.json gives under such a name, as an own key", () => {
    const policy = PolicyFile.parse(JSON.parse('{"server_security":{"constructor":{"user":"0:0"}}}'));
    expect(Object.hasOwn(policy.server_security, "constructor")).toBe(true);
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("constructor")],
        policy: { server_security: { constructor: { user: "0:0" } } },
      }),
    );
    expect(runOf(desired, "constructor").spec.user).toBe("0:0");
  });

  it("finds no per-user limits for a user named like an Object.prototype member", () => {
    const policy = PolicyFile.parse({ users: { alice: { limits: { max_containers: 1 } } } });
    for (const userId of ["constructor", "toString", "valueOf"]) {
      expect(effectiveLimits(policy, userId, DEFAULT_LIMITS, 100)).toEqual(DEFAULT_LIMITS);
    }
  });
});

describe("user volumes on a loosened server", () => {
  const tree = (security: Record<string, unknown>): InputOptions => ({
    servers: [server("net", { user_configurable: true })],
    enabled: {
      servers: [
        {
          id: "net",
          config: { volumes: [{ host_path: "{USER_DATA}/bin", container_path: "/usr/local/bin" }] },
        },
      ],
    },
    policy: { server_security: { net: { user: "0:0", ...security } } },
  });

  it("blocks it rather than mount the user's writable data into a root container", () => {
    const outcome = computeDesiredUser(desiredInput(tree({}))).servers[0]!;
    expect(outcome).toMatchObject({ kind: "blocked", reason: "InvalidSpec", keepExisting: false });
    expect(outcome.kind === "blocked" && outcome.message).toContain("allow_user_volumes");
  });

  it("mounts them when the admin allows it, and always on a server nobody loosens", () => {
    const allowed = computeDesiredUser(desiredInput(tree({ allow_user_volumes: true }))).servers[0]!;
    expect(allowed.kind).toBe("run");
    const plain = computeDesiredUser(desiredInput({ ...tree({}), policy: {} })).servers[0]!;
    expect(plain.kind === "run" && plain.spec.mounts.map((m) => m.target)).toContain("/usr/local/bin");
  });
});
