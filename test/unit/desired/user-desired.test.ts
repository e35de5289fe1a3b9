import { describe, expect, it } from "vitest";
import { bridgeName, containerName, networkName, volumeName } from "../../../src/desired/names.js";
import type { BlockedOutcome, DesiredUser, RunOutcome } from "../../../src/desired/types.js";
import { SERVER_DEFAULTS, computeDesiredUser, effectiveLimits } from "../../../src/desired/user-desired.js";
import { LABELS } from "../../../src/labels.js";
import { PolicyFile } from "../../../src/schema/policy.js";
import { DEFAULT_LIMITS, desiredInput, server } from "./fixtures.js";

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

function kinds(desired: DesiredUser): string[] {
  return desired.servers.map((s) => `${s.serverId}:${s.kind === "run" ? "run" : s.reason}`);
}

describe("computeDesiredUser: the basics", () => {
  it("builds a labelled, named spec for a stdio server", () => {
    const desired = computeDesiredUser(desiredInput({ servers: [server("time", { tag: "v1" })] }));
    expect(desired.userId).toBe("alice");
    expect(desired.network).toEqual({
      name: networkName("default", "alice"),
      bridgeName: bridgeName("default", "alice"),
    });
    expect(desired.network.name).toBe("mcp-net-alice");
    const run = runOf(desired, "time");
    expect(run.spec.name).toBe(containerName("default", "alice", "time"));
    expect(run.spec.image).toBe("mcp/time:v1");
    expect(run.spec.network).toBe("mcp-net-alice");
    expect(run.spec.hostPort).toBe(20000);
    expect(run.spec.cmd).toBeUndefined();
    expect(run.specHash).toMatch(/^[0-9a-f]{32}$/);
    expect(run.spec.labels).toEqual({
      [LABELS.managedBy]: "mcp-portal",
      [LABELS.installation]: "default",
      [LABELS.userId]: "alice",
      [LABELS.serverId]: "time",
      [LABELS.specHash]: run.specHash,
      [LABELS.hostPort]: "20000",
      [LABELS.transport]: "stdio",
      [LABELS.specFields]: expect.any(String) as string,
      [LABELS.healthCheck]:
        '{"interval_seconds":10,"retries":3,"start_period_seconds":0,"timeout_seconds":5}',
    });
    const recorded = JSON.parse(run.spec.labels[LABELS.specFields]!) as Record<string, string>;
    expect(recorded).toEqual(run.specFields);
    expect(run.specFields.image).toMatch(/^[0-9a-f]{16}$/);
    expect(run.specFields["env.MCP_USER_ID"]).toMatch(/^[0-9a-f]{16}$/);
  });

  it("sets the portal variables", () => {
    const run = runOf(computeDesiredUser(desiredInput({ portalVersion: "9.9.9" })), "time");
    expect(run.spec.env).toEqual({
      MCP_USER_ID: "alice",
      MCP_SERVER_ID: "time",
      MCP_PORTAL_VERSION: "9.9.9",
      MCP_NETWORK_NAME: "mcp-net-alice",
      MCP_TRANSPORT: "stdio",
      MCP_SERVER_PORT: "20000",
    });
  });

  it("is a pure function: the same input gives the same output", () => {
    const servers = [server("a"), server("b", { environment: { X: "1" } })];
    expect(computeDesiredUser(desiredInput({ servers }))).toEqual(
      computeDesiredUser(desiredInput({ servers })),
    );
  });

  it("lists servers in enabled-servers.json order, blocked ones included", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("a"), server("b"), server("c")],
        enabled: { servers: [{ id: "c" }, { id: "ghost" }, { id: "a" }] },
      }),
    );
    expect(kinds(desired)).toEqual(["c:run", "ghost:UnknownServer", "a:run"]);
    expect(runOf(desired, "c").spec.hostPort).toBe(20000);
    expect(runOf(desired, "a").spec.hostPort).toBe(20001);
  });

  it("joins command and args into the CMD", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("both", { command: ["serve"], args: ["--port", "1"] }),
          server("cmd", { command: ["serve"] }),
          server("args", { args: ["--x"] }),
        ],
      }),
    );
    expect(runOf(desired, "both").spec.cmd).toEqual(["serve", "--port", "1"]);
    expect(runOf(desired, "cmd").spec.cmd).toEqual(["serve"]);
    expect(runOf(desired, "args").spec.cmd).toEqual(["--x"]);
  });

  it("uses the user's custom server in place of the catalog one with the same id", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("time", { tag: "v1" })],
        custom: [server("time", { image: "ghcr.io/alice/time", tag: "dev" })],
      }),
    );
    expect(runOf(desired, "time").spec.image).toBe("ghcr.io/alice/time:dev");
  });

  it("puts the installation into every name and label", () => {
    const a = computeDesiredUser(desiredInput({ installation: "default" }));
    const b = computeDesiredUser(desiredInput({ installation: "staging" }));
    expect(b.network.name).not.toBe(a.network.name);
    expect(b.network.bridgeName).not.toBe(a.network.bridgeName);
    expect(runOf(b, "time").spec.name).not.toBe(runOf(a, "time").spec.name);
    expect(runOf(b, "time").spec.labels[LABELS.installation]).toBe("staging");
    expect(b.volumes.map((v) => v.name)).not.toEqual(a.volumes.map((v) => v.name));
    expect(b.volumes.every((v) => v.labels[LABELS.installation] === "staging")).toBe(true);
  });
});

describe("computeDesiredUser: environment", () => {
  const configurable = server("svc", {
    user_configurable: true,
    required_secrets: ["TOKEN", "API_KEY"],
    environment: {
      SERVER_ONLY: "server",
      USER_WINS: "server",
      MCP_USER_ID: "server",
      TOKEN: "server",
      OVERRIDE_WINS: "server",
    },
  });

  it("layers server env < user env < MCP_* < secrets < per-server overrides", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [configurable],
        enabled: {
          environment: { USER_WINS: "user", MCP_USER_ID: "user", TOKEN: "user", OVERRIDE_WINS: "user" },
          servers: [
            {
              id: "svc",
              config: { environment: { OVERRIDE_WINS: "override", API_KEY: "override", MCP_SERVER_ID: "o" } },
            },
          ],
        },
        secrets: { TOKEN: "secret-token", API_KEY: "secret-key", MCP_USER_ID: "never-asked" },
      }),
    );
    const env = runOf(desired, "svc").spec.env;
    expect(env.SERVER_ONLY).toBe("server");
    expect(env.USER_WINS).toBe("user");
    expect(env.MCP_USER_ID).toBe("alice");
    expect(env.TOKEN).toBe("secret-token");
    expect(env.OVERRIDE_WINS).toBe("override");
    expect(env.API_KEY).toBe("override");
    expect(env.MCP_SERVER_ID).toBe("o");
  });

  it("applies the user's environment to every server and overrides to one only", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("a", { user_configurable: true }), server("b")],
        enabled: {
          environment: { SHARED: "yes" },
          servers: [{ id: "a", config: { environment: { ONLY_A: "1" } } }, { id: "b" }],
        },
      }),
    );
    expect(runOf(desired, "a").spec.env).toMatchObject({ SHARED: "yes", ONLY_A: "1" });
    expect(runOf(desired, "b").spec.env.SHARED).toBe("yes");
    expect(runOf(desired, "b").spec.env.ONLY_A).toBeUndefined();
  });

  it("keeps MCP_PORTAL_VERSION out of the spec hash", () => {
    const v1 = runOf(computeDesiredUser(desiredInput({ portalVersion: "1.0.0" })), "time");
    const v2 = runOf(computeDesiredUser(desiredInput({ portalVersion: "2.0.0" })), "time");
    expect(v1.spec.env.MCP_PORTAL_VERSION).toBe("1.0.0");
    expect(v2.spec.env.MCP_PORTAL_VERSION).toBe("2.0.0");
    expect(v2.specHash).toBe(v1.specHash);
    expect(v2.specFields).toEqual(v1.specFields);
    expect(v2.spec.labels).toEqual(v1.spec.labels);
    expect(v1.specFields["env.MCP_PORTAL_VERSION"]).toBeUndefined();
  });

  it("changes the hash, and names the field, when a plain env value changes", () => {
    const a = runOf(
      computeDesiredUser(desiredInput({ servers: [server("t", { environment: { LOG: "info" } })] })),
      "t",
    );
    const b = runOf(
      computeDesiredUser(desiredInput({ servers: [server("t", { environment: { LOG: "debug" } })] })),
      "t",
    );
    expect(b.specHash).not.toBe(a.specHash);
    const changed = Object.keys(b.specFields).filter((k) => b.specFields[k] !== a.specFields[k]);
    expect(changed.sort()).toEqual(["env", "env.LOG"]);
  });
});

describe("computeDesiredUser: secrets", () => {
  const withSecret = server("gh", { required_secrets: ["GITHUB_TOKEN"] });
  const PLAINTEXT = "ghp_plaintextvalue123";

  function compute(value: string, digest: string): RunOutcome {
    return runOf(
      computeDesiredUser(
        desiredInput({
          servers: [withSecret],
          resolveSecret: () => ({ ok: true, value, digest }),
        }),
      ),
      "gh",
    );
  }

  it("injects the value but keeps it out of the hash, the labels and the spec fields", () => {
    const run = compute(PLAINTEXT, "digest-1");
    expect(run.spec.env.GITHUB_TOKEN).toBe(PLAINTEXT);
    expect(run.specHash).not.toContain(PLAINTEXT);
    expect(JSON.stringify(run.spec.labels)).not.toContain(PLAINTEXT);
    expect(JSON.stringify(run.specFields)).not.toContain(PLAINTEXT);
    const { env: _env, ...rest } = run.spec;
    expect(JSON.stringify({ ...run, spec: rest })).not.toContain(PLAINTEXT);
  });

  it("changes the hash only through the digest", () => {
    const base = compute(PLAINTEXT, "digest-1");
    expect(compute("a-completely-different-value", "digest-1").specHash).toBe(base.specHash);
    const rotated = compute(PLAINTEXT, "digest-2");
    expect(rotated.specHash).not.toBe(base.specHash);
    const changed = Object.keys(rotated.specFields).filter(
      (k) => rotated.specFields[k] !== base.specFields[k],
    );
    expect(changed.sort()).toEqual(["env", "env.GITHUB_TOKEN"]);
  });

  it("blocks a missing secret without keeping the container", () => {
    const desired = computeDesiredUser(desiredInput({ servers: [withSecret, server("time")] }));
    expect(blockedOf(desired, "gh")).toEqual({
      serverId: "gh",
      kind: "blocked",
      reason: "MissingSecret",
      message: "secret GITHUB_TOKEN is not in secrets.env",
      keepExisting: false,
    });
    expect(runOf(desired, "time").spec.hostPort).toBe(20000);
    expect(desired.usage.containers).toBe(1);
  });

  it("blocks an undecryptable secret but keeps the running container", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [withSecret],
        secrets: { GITHUB_TOKEN: "x" },
        undecryptable: ["GITHUB_TOKEN"],
      }),
    );
    expect(blockedOf(desired, "gh")).toMatchObject({ reason: "SecretDecryptFailed", keepExisting: true });
  });

  it("asks only for the secrets a server requires", () => {
    const asked: string[] = [];
    computeDesiredUser(
      desiredInput({
        servers: [server("a", { required_secrets: ["A_TOKEN"] }), server("b")],
        resolveSecret: (name) => {
          asked.push(name);
          return { ok: true, value: "v", digest: "d" };
        },
      }),
    );
    expect(asked).toEqual(["A_TOKEN"]);
  });
});

describe("computeDesiredUser: blocks", () => {
  it("blocks servers not in the catalog (UnknownServer, not kept)", () => {
    const desired = computeDesiredUser(
      desiredInput({ servers: [server("time")], enabled: { servers: [{ id: "nope" }] } }),
    );
    expect(blockedOf(desired, "nope")).toMatchObject({ reason: "UnknownServer", keepExisting: false });
    expect(blockedOf(desired, "nope").message).toContain('"nope"');
  });

  it("blocks images the policy does not allow (ImageNotAllowed, not kept)", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("time"), server("acme", { image: "ghcr.io/acme/tool" })],
        policy: { allowed_images: ["ghcr.io/acme/*"] },
      }),
    );
    const blocked = blockedOf(desired, "time");
    expect(blocked).toMatchObject({ reason: "ImageNotAllowed", keepExisting: false });
    expect(blocked.message).toContain("mcp/time");
    expect(runOf(desired, "acme").spec.hostPort).toBe(20000);
  });

  it("refuses config for a server that is not user_configurable (InvalidSpec, kept)", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("locked")],
        enabled: { servers: [{ id: "locked", config: { environment: { X: "1" } } }] },
      }),
    );
    const blocked = blockedOf(desired, "locked");
    expect(blocked).toMatchObject({ reason: "InvalidSpec", keepExisting: true });
    expect(blocked.message).toContain("user_configurable");
  });

  it("refuses volume paths outside the user's area (InvalidSpec, kept) naming path and origin", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("cat", { volumes: [{ host_path: "/etc", container_path: "/etc-host" }] }),
          server("usr", { user_configurable: true }),
        ],
        enabled: {
          servers: [
            { id: "cat" },
            { id: "usr", config: { volumes: [{ host_path: "{USER_DATA}/../bob", container_path: "/x" }] } },
          ],
        },
      }),
    );
    const cat = blockedOf(desired, "cat");
    expect(cat).toMatchObject({ reason: "InvalidSpec", keepExisting: true });
    expect(cat.message).toContain("/etc");
    expect(cat.message).toContain("catalog");
    const usr = blockedOf(desired, "usr");
    expect(usr).toMatchObject({ reason: "InvalidSpec", keepExisting: true });
    expect(usr.message).toContain("enabled-servers.json");
    expect(desired.volumes).toEqual([]);
    expect(desired.usage).toEqual({ containers: 0, memory_mb: 0, cpu_shares: 0, ports: 0 });
  });
});

describe("computeDesiredUser: limits", () => {
  const three = [server("a"), server("b"), server("c")];

  it("combines defaults, policy defaults and per-user limits, capping ports at the block size", () => {
    const policy = PolicyFile.parse({
      default_limits: { max_containers: 5, max_memory_mb: 1000 },
      users: { alice: { limits: { max_containers: 7, max_ports: 500 } } },
    });
    expect(effectiveLimits(policy, "alice", DEFAULT_LIMITS, 100)).toEqual({
      max_containers: 7,
      max_memory_mb: 1000,
      max_cpu_shares: 1024,
      max_ports: 100,
    });
    expect(effectiveLimits(policy, "bob", DEFAULT_LIMITS, 100)).toEqual({
      max_containers: 5,
      max_memory_mb: 1000,
      max_cpu_shares: 1024,
      max_ports: 100,
    });
    expect(effectiveLimits(policy, "bob", DEFAULT_LIMITS, 20).max_ports).toBe(20);
  });

  it("blocks the servers beyond max_containers, in file order", () => {
    const desired = computeDesiredUser(
      desiredInput({ servers: three, defaultLimits: { ...DEFAULT_LIMITS, max_containers: 2 } }),
    );
    expect(kinds(desired)).toEqual(["a:run", "b:run", "c:LimitExceeded"]);
    expect(blockedOf(desired, "c").message).toMatch(/^max_containers 2 reached/);
    expect(blockedOf(desired, "c").keepExisting).toBe(false);
    expect(desired.usage).toEqual({
      containers: 2,
      memory_mb: 2 * SERVER_DEFAULTS.memoryMb,
      cpu_shares: 2 * SERVER_DEFAULTS.cpuShares,
      ports: 2,
    });
    expect(desired.limits.max_containers).toBe(2);

    const reversed = computeDesiredUser(
      desiredInput({
        servers: three,
        enabled: { servers: [{ id: "c" }, { id: "b" }, { id: "a" }] },
        defaultLimits: { ...DEFAULT_LIMITS, max_containers: 2 },
      }),
    );
    expect(kinds(reversed)).toEqual(["c:run", "b:run", "a:LimitExceeded"]);
  });

  it("blocks on max_memory_mb and still admits a later server that fits", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("big", { resources: { memory_mb: 1024 } }),
          server("huge", { resources: { memory_mb: 1500 } }),
          server("small", { resources: { memory_mb: 512 } }),
        ],
      }),
    );
    expect(kinds(desired)).toEqual(["big:run", "huge:LimitExceeded", "small:run"]);
    expect(blockedOf(desired, "huge").message).toContain("max_memory_mb 2048");
    expect(desired.usage.memory_mb).toBe(1536);
  });

  it("blocks on max_cpu_shares", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("a", { resources: { cpu_shares: 600 } }),
          server("b", { resources: { cpu_shares: 600 } }),
        ],
      }),
    );
    expect(kinds(desired)).toEqual(["a:run", "b:LimitExceeded"]);
    expect(blockedOf(desired, "b").message).toContain("max_cpu_shares 1024");
  });

  it("blocks on max_ports (capped by the port block): the block is full", () => {
    const desired = computeDesiredUser(
      desiredInput({ servers: three, portBlock: { start: 20000, end: 20001 } }),
    );
    expect(kinds(desired)).toEqual(["a:run", "b:run", "c:PortBlockFull"]);
    expect(blockedOf(desired, "c").message).toBe(
      `every port of the user's block 20000-20001 (2 ports) is taken: a block keeps the size it was made with ` +
        `(README, "Capacity": how to move a user to a larger block)`,
    );
    expect(desired.limits.max_ports).toBe(2);
  });

  it("blocks on a policy max_ports below the block as LimitExceeded, above it as PortBlockFull", () => {
    const below = { default_limits: { max_ports: 1 } };
    const desired = computeDesiredUser(desiredInput({ servers: three, policy: below }));
    expect(kinds(desired)).toEqual(["a:run", "b:LimitExceeded", "c:LimitExceeded"]);
    expect(blockedOf(desired, "b").message).toBe("max_ports 1 reached");

    const above = { users: { alice: { limits: { max_ports: 50 } } } };
    const full = computeDesiredUser(
      desiredInput({ servers: three, policy: above, portBlock: { start: 20000, end: 20001 } }),
    );
    expect(kinds(full)).toEqual(["a:run", "b:run", "c:PortBlockFull"]);
    expect(blockedOf(full, "c").message).toContain(
      "policy.json gives max_ports 50, more than the block holds",
    );
  });

  it("gives a block of another size (an earlier MCP_PORTAL_PORTS_PER_USER) its own size as max_ports", () => {
    expect(
      effectiveLimits(PolicyFile.parse({}), "alice", { ...DEFAULT_LIMITS, max_ports: 16 }, 100).max_ports,
    ).toBe(100);
  });

  it("lowering a limit in policy.json blocks the later servers", () => {
    const before = computeDesiredUser(desiredInput({ servers: three }));
    expect(kinds(before)).toEqual(["a:run", "b:run", "c:run"]);
    const after = computeDesiredUser(
      desiredInput({ servers: three, policy: { users: { alice: { limits: { max_containers: 1 } } } } }),
    );
    expect(kinds(after)).toEqual(["a:run", "b:LimitExceeded", "c:LimitExceeded"]);
    expect(runOf(after, "a").specHash).toBe(runOf(before, "a").specHash);
    const other = computeDesiredUser(
      desiredInput({
        userId: "bob",
        servers: three,
        policy: { users: { alice: { limits: { max_containers: 1 } } } },
      }),
    );
    expect(kinds(other)).toEqual(["a:run", "b:run", "c:run"]);
  });

  it("does not count blocked servers towards usage", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("a", { required_secrets: ["MISSING"] }), server("b")],
        defaultLimits: { ...DEFAULT_LIMITS, max_containers: 1 },
      }),
    );
    expect(kinds(desired)).toEqual(["a:MissingSecret", "b:run"]);
  });
});

describe("computeDesiredUser: ports and publishing", () => {
  it("keeps the host ports existing containers hold and gives new servers the lowest free", () => {
    const servers = [server("a"), server("b"), server("c")];
    const first = computeDesiredUser(desiredInput({ servers }));
    const ports = new Map(first.servers.map((s) => [s.serverId, (s as RunOutcome).spec.hostPort]));
    expect([...ports.values()]).toEqual([20000, 20001, 20002]);

    // a goes away, d arrives at the front: b and c keep theirs, d takes the freed 20000
    const second = computeDesiredUser(
      desiredInput({
        servers: [...servers, server("d")],
        enabled: { servers: [{ id: "d" }, { id: "b" }, { id: "c" }] },
        currentPorts: ports,
      }),
    );
    expect(runOf(second, "b").spec.hostPort).toBe(20001);
    expect(runOf(second, "c").spec.hostPort).toBe(20002);
    expect(runOf(second, "d").spec.hostPort).toBe(20000);
    expect(runOf(second, "b").specHash).toBe(runOf(first, "b").specHash);
    expect(runOf(second, "c").spec.labels[LABELS.hostPort]).toBe("20002");
  });

  it("publishes an HTTP server's declared port on its host port, bound to the publish host", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("web", { transport: "streamable-http", ports: [{ container_port: 8080 }] })],
        currentPorts: new Map([["web", 20042]]),
      }),
    );
    const run = runOf(desired, "web");
    expect(run.spec.publish).toEqual({
      containerPort: 8080,
      protocol: "tcp",
      hostIp: "127.0.0.1",
      hostPort: 20042,
    });
    expect(run.spec.exposedPorts).toEqual([{ port: 8080, protocol: "tcp" }]);
    expect(run.spec.openStdin).toBe(false);
    expect(run.spec.env.MCP_SERVER_PORT).toBe("8080");
    expect(run.spec.env.MCP_TRANSPORT).toBe("streamable-http");
    expect(run.spec.labels[LABELS.transport]).toBe("streamable-http");
    expect(run.spec.labels[LABELS.hostPort]).toBe("20042");
  });

  it("binds to the configured publish host", () => {
    const run = runOf(
      computeDesiredUser(
        desiredInput({
          servers: [server("web", { transport: "sse", ports: [{ container_port: 3000, protocol: "udp" }] })],
          publishHost: "10.0.0.5",
        }),
      ),
      "web",
    );
    expect(run.spec.publish).toEqual({
      containerPort: 3000,
      protocol: "udp",
      hostIp: "10.0.0.5",
      hostPort: 20000,
    });
  });

  it("publishes nothing for a stdio server and keeps its stdin open, even with declared ports", () => {
    const run = runOf(
      computeDesiredUser(desiredInput({ servers: [server("s", { ports: [{ container_port: 9000 }] })] })),
      "s",
    );
    expect(run.spec.publish).toBeUndefined();
    expect(run.spec.openStdin).toBe(true);
    expect(run.spec.exposedPorts).toEqual([{ port: 9000, protocol: "tcp" }]);
    expect(run.spec.hostPort).toBe(20000);
  });
});

describe("computeDesiredUser: hardening", () => {
  it("applies hardened defaults", () => {
    const run = runOf(computeDesiredUser(desiredInput({ containerUser: "65534:65534" })), "time");
    expect(run.spec.user).toBe("65534:65534");
    expect(run.spec.noNewPrivileges).toBe(true);
    expect(run.spec.capAdd).toEqual([]);
    expect(run.spec.readOnlyRootfs).toBe(false);
    expect(Object.keys(run.spec.tmpfs)).toEqual(["/tmp"]);
    expect(run.spec.tmpfs["/tmp"]).toMatch(/noexec/);
    expect(run.spec.tmpfs["/tmp"]).toMatch(/nosuid/);
    expect(run.spec.pidsLimit).toBe(SERVER_DEFAULTS.pidsLimit);
    expect(run.spec.memoryBytes).toBe(SERVER_DEFAULTS.memoryMb * 1024 * 1024);
    expect(run.spec.cpuShares).toBe(SERVER_DEFAULTS.cpuShares);
    expect(run.memoryMb).toBe(SERVER_DEFAULTS.memoryMb);
    expect(run.cpuShares).toBe(SERVER_DEFAULTS.cpuShares);
  });

  it("uses the server's own resource requests", () => {
    const run = runOf(
      computeDesiredUser(
        desiredInput({
          servers: [server("r", { resources: { memory_mb: 256, cpu_shares: 512, pids_limit: 40 } })],
        }),
      ),
      "r",
    );
    expect(run.spec.memoryBytes).toBe(256 * 1024 * 1024);
    expect(run.spec.cpuShares).toBe(512);
    expect(run.spec.pidsLimit).toBe(40);
    expect(run.memoryMb).toBe(256);
  });

  it("lets policy server_security loosen one server only", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("net", { transport: "sse", ports: [{ container_port: 80 }] }), server("time")],
        policy: {
          server_security: {
            net: {
              user: "0:0",
              cap_add: ["NET_BIND_SERVICE", "CHOWN"],
              no_new_privileges: false,
              read_only_rootfs: true,
              publish_host: "0.0.0.0",
            },
          },
        },
      }),
    );
    const net = runOf(desired, "net");
    expect(net.spec.user).toBe("0:0");
    expect(net.spec.capAdd).toEqual(["CHOWN", "NET_BIND_SERVICE"]);
    expect(net.spec.noNewPrivileges).toBe(false);
    expect(net.spec.readOnlyRootfs).toBe(true);
    expect(net.spec.publish?.hostIp).toBe("0.0.0.0");
    const time = runOf(desired, "time");
    expect(time.spec.user).toBe("1000:1000");
    expect(time.spec.capAdd).toEqual([]);
    expect(time.spec.noNewPrivileges).toBe(true);
  });

  it("replaces a container when its security override changes", () => {
    const plain = runOf(computeDesiredUser(desiredInput()), "time");
    const loosened = runOf(
      computeDesiredUser(desiredInput({ policy: { server_security: { time: { cap_add: ["CHOWN"] } } } })),
      "time",
    );
    expect(loosened.specHash).not.toBe(plain.specHash);
    expect(loosened.specFields.capAdd).not.toBe(plain.specFields.capAdd);
  });
});

describe("computeDesiredUser: volumes", () => {
  it("mounts /data and /cache by default and creates their labelled volumes", () => {
    const desired = computeDesiredUser(desiredInput());
    const data = volumeName("default", "alice", "data", "");
    const cache = volumeName("default", "alice", "cache", "");
    expect(runOf(desired, "time").spec.mounts).toEqual([
      { volumeName: cache, target: "/cache", readOnly: false },
      { volumeName: data, target: "/data", readOnly: false },
    ]);
    expect(desired.volumes.map((v) => v.name).sort()).toEqual([cache, data].sort());
    const dataVolume = desired.volumes.find((v) => v.name === data);
    expect(dataVolume).toEqual({
      name: data,
      area: "data",
      subpath: "",
      labels: {
        [LABELS.managedBy]: "mcp-portal",
        [LABELS.installation]: "default",
        [LABELS.userId]: "alice",
        [LABELS.volumeArea]: "data",
        [LABELS.volumePath]: "",
      },
    });
  });

  it("adds catalog and user volumes; a volume on /data replaces the default one", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("gh", {
            user_configurable: true,
            volumes: [
              { host_path: "{USER_DATA}/github", container_path: "/data" },
              { host_path: "{USER_CONFIG}/gh", container_path: "/etc/gh", mode: "ro" },
            ],
          }),
        ],
        enabled: {
          servers: [
            { id: "gh", config: { volumes: [{ host_path: "notes", container_path: "/notes", mode: "ro" }] } },
          ],
        },
      }),
    );
    const mounts = runOf(desired, "gh").spec.mounts;
    expect(mounts).toEqual([
      { volumeName: volumeName("default", "alice", "cache", ""), target: "/cache", readOnly: false },
      { volumeName: volumeName("default", "alice", "data", "github"), target: "/data", readOnly: false },
      { volumeName: volumeName("default", "alice", "config", "gh"), target: "/etc/gh", readOnly: true },
      { volumeName: volumeName("default", "alice", "data", "notes"), target: "/notes", readOnly: true },
    ]);
    // the unused default data volume is not created for this server
    expect(desired.volumes.map((v) => `${v.area}:${v.subpath}`).sort()).toEqual([
      "cache:",
      "config:gh",
      "data:github",
      "data:notes",
    ]);
    const names = desired.volumes.map((v) => v.name);
    expect(names).toEqual([...names].sort());
  });

  it("shares a volume between servers and lists it once", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("a", { volumes: [{ host_path: "shared", container_path: "/shared" }] }),
          server("b", { volumes: [{ host_path: "{USER_DATA}/shared", container_path: "/s" }] }),
        ],
      }),
    );
    const shared = volumeName("default", "alice", "data", "shared");
    expect(runOf(desired, "a").spec.mounts.find((m) => m.target === "/shared")?.volumeName).toBe(shared);
    expect(runOf(desired, "b").spec.mounts.find((m) => m.target === "/s")?.volumeName).toBe(shared);
    expect(desired.volumes.filter((v) => v.name === shared)).toHaveLength(1);
    expect(desired.volumes).toHaveLength(3);
  });

  it("creates no volumes for blocked servers", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("a", { required_secrets: ["NOPE"], volumes: [{ host_path: "a", container_path: "/a" }] }),
        ],
      }),
    );
    expect(desired.volumes).toEqual([]);
  });

  it("substitutes {USER_ID} in volume paths", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("a", { volumes: [{ host_path: "{USER_CACHE}/{USER_ID}", container_path: "/u" }] })],
      }),
    );
    expect(runOf(desired, "a").spec.mounts.find((m) => m.target === "/u")?.volumeName).toBe(
      volumeName("default", "alice", "cache", "alice"),
    );
  });
});

describe("computeDesiredUser: what a user file cannot do", () => {
  // Known bug: the first failing secret in required_secrets order decides, so the same facts (one secret
  // missing, one undecryptable) keep or remove the container depending on the order of the catalog's list.
  it("decides keepExisting for failing secrets independently of the order of required_secrets", () => {
    const outcome = (order: string[]) =>
      blockedOf(
        computeDesiredUser(
          desiredInput({
            servers: [server("s", { required_secrets: order })],
            secrets: { DECRYPT_FAILS: "v" },
            undecryptable: ["DECRYPT_FAILS"],
          }),
        ),
        "s",
      );
    const first = outcome(["MISSING", "DECRYPT_FAILS"]);
    const second = outcome(["DECRYPT_FAILS", "MISSING"]);
    expect(first.keepExisting).toBe(second.keepExisting);
    expect(first.reason).toBe(second.reason);
  });

  // Known bug: the user_configurable check (InvalidSpec, keepExisting) runs before the image check, so a
  // user who adds `config` to a non-configurable server keeps a container whose image policy.json now bans.
  it("cannot keep a banned image running by giving a non-configurable server config", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("time")],
        enabled: { servers: [{ id: "time", config: {} }] },
        policy: { allowed_images: ["ghcr.io/acme/*"] },
        currentPorts: new Map([["time", 20000]]),
      }),
    );
    expect(blockedOf(desired, "time")).toMatchObject({ reason: "ImageNotAllowed", keepExisting: false });
  });

  // Known bug: containers kept by a keepExisting block (InvalidSpec, SecretDecryptFailed) keep running but
  // are not counted towards the limits, so a user can exceed max_containers by breaking one server's config.
  it("cannot exceed max_containers by invalidating the config of a running server", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [server("a", { user_configurable: true }), server("b")],
        enabled: {
          servers: [
            { id: "a", config: { volumes: [{ host_path: "/etc", container_path: "/host-etc" }] } },
            { id: "b" },
          ],
        },
        policy: { default_limits: { max_containers: 1 } },
        // a's container exists (it holds a host port) and is kept as it is
        currentPorts: new Map([["a", 20000]]),
      }),
    );
    expect(blockedOf(desired, "a")).toMatchObject({ reason: "InvalidSpec", keepExisting: true });
    expect(blockedOf(desired, "b").reason).toBe("LimitExceeded");
  });
});

describe("computeDesiredUser: kept containers", () => {
  // Known bug: assignHostPorts only sees admitted servers, so the host port a kept container still holds
  // (and publishes) is handed to a new server: its create then fails with "port is already allocated".
  it("never hands the host port of a container kept by a keepExisting block to another server", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("web", { transport: "sse", ports: [{ container_port: 8080 }], required_secrets: ["TOKEN"] }),
          server("new"),
        ],
        secrets: { TOKEN: "t" },
        undecryptable: ["TOKEN"],
        currentPorts: new Map([["web", 20000]]),
      }),
    );
    expect(blockedOf(desired, "web")).toMatchObject({ reason: "SecretDecryptFailed", keepExisting: true });
    expect(runOf(desired, "new").spec.hostPort).not.toBe(20000);
  });
});

describe("ports when the gateway serves them", () => {
  it("publishes nothing but still labels the host port, the container port and the health check", () => {
    const desired = computeDesiredUser(
      desiredInput({
        servers: [
          server("web", {
            transport: "streamable-http",
            ports: [{ container_port: 8080 }],
            health_check: { interval_seconds: 7 },
          }),
        ],
        publishPorts: false,
      }),
    );
    const web = desired.servers[0]!;
    if (web.kind !== "run") throw new Error("expected run");
    expect(web.spec.publish).toBeUndefined();
    expect(web.spec.labels["mcp.portal.host_port"]).toBe("20000");
    expect(web.spec.labels["mcp.portal.container_port"]).toBe("8080");
    expect(JSON.parse(web.spec.labels["mcp.portal.health_check"]!)).toEqual({
      interval_seconds: 7,
      timeout_seconds: 5,
      retries: 3,
      start_period_seconds: 0,
    });
  });
});
