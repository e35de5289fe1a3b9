import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { validateCommand } from "../../../src/commands/validate.js";
import { useTempDirs } from "../catalog/fixtures.js";
import { EXAMPLE_DIR, copyExample, editJson, serversOf } from "./example-tree.js";
import { runCli } from "../../helpers/cli-io.js";

const tempDir = useTempDirs("mcp-portal-validate-cmd-");

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(validateCommand, args, env);
}

async function brokenExample(): Promise<string> {
  const dir = await copyExample(path.join(await tempDir(), "data"));
  await editJson(dir, "users/bob/enabled-servers.json", (c) => void serversOf(c).push({ id: "weather" }));
  await editJson(dir, "policy.json", (c) => void (c.allowed_images = ["mcp/*"]));
  return dir;
}

describe("mcp-portal validate", () => {
  it("exits 0 on the example tree, from --data-dir or MCP_PORTAL_DATA_DIR", async () => {
    const byFlag = await run(["--data-dir", EXAMPLE_DIR]);
    expect(byFlag).toMatchObject({ code: 0, stdout: "" });
    expect(byFlag.stderr).toMatch(/: no problems\n$/);
    expect((await run([], { MCP_PORTAL_DATA_DIR: EXAMPLE_DIR })).code).toBe(0);
    expect((await run(["--data-dir", EXAMPLE_DIR], { MCP_PORTAL_OVERLAYS: "production" })).code).toBe(0);
  });

  it("prints one file: path: reason line per problem and exits 1", async () => {
    const dir = await brokenExample();
    const result = await run(["--data-dir", dir]);
    expect(result.code).toBe(1);
    expect(result.stdout.split("\n").filter(Boolean)).toEqual([
      'catalogs/base/community.json: $.servers[3].image: image "mcp-portal-demo/http-echo" is not allowed by policy.json allowed_images',
      'catalogs/base/community.json: $.servers[4].image: image "mcp-portal-demo/stdio-echo" is not allowed by policy.json allowed_images',
      'catalogs/base/official.json: $.servers[5].image: image "mcp-portal-demo/stdio-echo" is not allowed by policy.json allowed_images',
      'users/alice/custom-servers.json: $.servers[0].image: image "mcp-portal-demo/stdio-echo" is not allowed by policy.json allowed_images',
      'users/bob/custom-servers.json: $.servers[0].image: image "mcp-portal-demo/stdio-echo" is not allowed by policy.json allowed_images',
      'users/bob/enabled-servers.json: $.servers[2].id: unknown server "weather": not in the base catalogs or users/bob/custom-servers.json',
      'users/carol/custom-servers.json: $.servers[0].image: image "mcp-portal-demo/http-echo" is not allowed by policy.json allowed_images',
    ]);
    expect(result.stderr).toMatch(/: 7 problems in 6 files\n$/);
  });

  it("checks tool policies and rate limits: a bad glob or limit is a problem at its path", async () => {
    const dir = await copyExample(path.join(await tempDir(), "data"));
    await editJson(dir, "users/bob/enabled-servers.json", (c) => {
      const first = serversOf(c)[0] as Record<string, unknown>;
      first.tools = { allow: ["get_*", "has space"], deny: ["ok"] };
    });
    await editJson(dir, "policy.json", (c) => {
      c.server_tools = { github: { deny: [""] } };
      c.rate_limits = { per_user: { requests: 0, window_seconds: 60 } };
    });
    const result = await run(["--data-dir", dir]);
    expect(result.code).toBe(1);
    const lines = result.stdout.split("\n").filter(Boolean);
    const glob = "tool globs are printable ASCII characters without spaces (* and ? are wildcards)";
    expect(lines).toEqual([
      "policy.json: $.rate_limits.per_user.requests: Too small: expected number to be >=1",
      "policy.json: $.server_tools.github.deny[0]: Too small: expected string to have >=1 characters",
      `policy.json: $.server_tools.github.deny[0]: ${glob}`,
      `users/bob/enabled-servers.json: $.servers[0].tools.allow[1]: ${glob}`,
    ]);

    // Valid policies are no problem.
    await editJson(dir, "users/bob/enabled-servers.json", (c) => {
      (serversOf(c)[0] as Record<string, unknown>).tools = { allow: ["get_*"], deny: ["get_secret"] };
    });
    await editJson(dir, "policy.json", (c) => {
      c.server_tools = { github: { deny: ["delete_*"] } };
      c.rate_limits = { per_user: { requests: 60, window_seconds: 60 } };
    });
    expect((await run(["--data-dir", dir])).code).toBe(0);
  });

  it("prints {ok, problems, warnings, allowed_images} with --output json", async () => {
    const clean = await run(["--data-dir", EXAMPLE_DIR, "--output", "json"]);
    expect(clean.code).toBe(0);
    expect(JSON.parse(clean.stdout)).toEqual({
      ok: true,
      problems: [],
      warnings: [],
      allowed_images: { source: "policy.json", globs: ["mcp/*", "mcp-portal-demo/*"] },
    });

    const dir = await brokenExample();
    const broken = await run(["--output=json", "--data-dir", dir]);
    expect(broken.code).toBe(1);
    const parsed = JSON.parse(broken.stdout) as { ok: boolean; problems: unknown[] };
    expect(parsed.ok).toBe(false);
    expect(parsed.problems).toHaveLength(7);
    expect(parsed.problems).toContainEqual({
      file: "users/bob/enabled-servers.json",
      path: "$.servers[2].id",
      message: 'unknown server "weather": not in the base catalogs or users/bob/custom-servers.json',
    });
  });

  it("on MCP_PORTAL_BACKEND=swarm warns that idle timeouts are not applied, at each field that sets one", async () => {
    const dir = await copyExample(path.join(await tempDir(), "data"));
    await editJson(dir, "catalogs/base/official.json", (c) => {
      (serversOf(c)[0] as Record<string, unknown>).idle_timeout_seconds = 600;
      (serversOf(c)[1] as Record<string, unknown>).idle_timeout_seconds = 0;
    });
    await editJson(dir, "users/alice/custom-servers.json", (c) => {
      (serversOf(c)[0] as Record<string, unknown>).idle_timeout_seconds = 60;
    });
    await editJson(dir, "policy.json", (c) => {
      c.idle = { default_timeout_seconds: 900 };
      c.users = { bob: { idle: { max_timeout_seconds: 3600 } } };
    });
    const reason =
      "not applied: idle servers (scale to zero) need the Docker Engine backend; on MCP_PORTAL_BACKEND=swarm every server stays on";
    const swarm = await run(["--data-dir", dir], { MCP_PORTAL_BACKEND: "swarm" });
    expect(swarm.code).toBe(0);
    expect(swarm.stdout.split("\n").filter((l) => l.includes("scale to zero"))).toEqual([
      `warning: catalogs/base/official.json: $.servers[0].idle_timeout_seconds: ${reason}`,
      `warning: policy.json: $.idle.default_timeout_seconds: ${reason}`,
      `warning: policy.json: $.users.bob.idle.max_timeout_seconds: ${reason}`,
      `warning: users/alice/custom-servers.json: $.servers[0].idle_timeout_seconds: ${reason}`,
    ]);
    // The Docker Engine backend applies them: nothing to warn about.
    const engine = await run(["--data-dir", dir]);
    expect(engine.code).toBe(0);
    expect(engine.stdout).not.toMatch(/scale to zero/);
  });

  it("merges the overlays named by --overlays or MCP_PORTAL_OVERLAYS", async () => {
    const dir = await copyExample(path.join(await tempDir(), "data"));
    await editJson(
      dir,
      "users/carol/enabled-servers.json",
      (c) => void serversOf(c).push({ id: "everything" }),
    );
    expect((await run(["--data-dir", dir])).code).toBe(0);
    expect((await run(["--data-dir", dir, "--overlays", "production"])).code).toBe(1);
    expect((await run(["--data-dir", dir], { MCP_PORTAL_OVERLAYS: "production" })).code).toBe(1);
    expect((await run(["--data-dir", dir, "--all-overlays"])).code).toBe(1);
  });

  it("says which image allow-list applies, and that MCP_PORTAL_ALLOWED_IMAGES applies only without allowed_images", async () => {
    const fromPolicy = await run(["--data-dir", EXAMPLE_DIR], { MCP_PORTAL_ALLOWED_IMAGES: "ghcr.io/*" });
    expect(fromPolicy.code).toBe(0);
    expect(fromPolicy.stderr).toContain(
      "validate: allowed images from policy.json allowed_images: mcp/*, mcp-portal-demo/*\n",
    );

    const dir = await copyExample(path.join(await tempDir(), "data"));
    await editJson(dir, "policy.json", (c) => void delete c.allowed_images);
    const fromEnvironment = await run(["--data-dir", dir], {
      MCP_PORTAL_ALLOWED_IMAGES: "mcp/*, mcp-portal-demo/*",
    });
    expect(fromEnvironment.code).toBe(0);
    expect(fromEnvironment.stderr).toContain(
      "validate: allowed images from MCP_PORTAL_ALLOWED_IMAGES (policy.json gives no allowed_images): mcp/*, mcp-portal-demo/*\n",
    );
    const narrower = await run(["--data-dir", dir, "--output", "json"], {
      MCP_PORTAL_ALLOWED_IMAGES: "mcp/*",
    });
    expect(narrower.code).toBe(1);
    const view = JSON.parse(narrower.stdout) as { allowed_images: unknown; problems: { message: string }[] };
    expect(view.allowed_images).toEqual({ source: "MCP_PORTAL_ALLOWED_IMAGES", globs: ["mcp/*"] });
    expect(view.problems.map((p) => p.message)).toContain(
      'image "mcp-portal-demo/stdio-echo" is not allowed by MCP_PORTAL_ALLOWED_IMAGES (policy.json gives no allowed_images)',
    );
  });

  it("warns loudly, and still exits 0, when no image allow-list applies at all", async () => {
    const dir = await copyExample(path.join(await tempDir(), "data"));
    await editJson(dir, "policy.json", (c) => void delete c.allowed_images);
    const result = await run(["--data-dir", dir]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      "warning: policy.json: $.allowed_images: not set, and MCP_PORTAL_ALLOWED_IMAGES is not set either: any image from any registry may run (set one of them)\n",
    );
    expect(result.stderr).toContain("any image from any registry may run");
    expect(result.stderr).toMatch(/: no problems\n$/);
  });

  it("warns, and still exits 0, when the tree has more users than the port or subnet pool holds", async () => {
    // Three users; two blocks of 16 ports and two /27 subnets.
    const pools = {
      MCP_PORTAL_PORT_RANGE_START: "20000",
      MCP_PORTAL_PORT_RANGE_END: "20047",
      MCP_PORTAL_PORT_EXCLUDE: "20040",
      MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "10.9.0.0/26",
    };
    const result = await run(["--data-dir", EXAMPLE_DIR], pools);
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n").filter(Boolean)).toEqual([
      'warning: users: $: the tree has 3 users, but the port block pool holds 2 (blocks of 16 ports in 20000-20047, 1 skipped for MCP_PORTAL_PORT_EXCLUDE): 1 would stay Stalled (PortPoolExhausted); widen MCP_PORTAL_PORT_RANGE_START/_END or lower MCP_PORTAL_PORTS_PER_USER (README, "Capacity")',
      'warning: users: $: the tree has 3 users, but the subnet pool holds 2 (/27 subnets of 10.9.0.0/26): 1 would stay Stalled (SubnetPoolExhausted); widen MCP_PORTAL_USER_NETWORK_SUBNET_BASE or raise MCP_PORTAL_USER_NETWORK_SUBNET_SIZE (README, "Capacity")',
    ]);
    // Pools that hold every user: no word.
    const roomy = await run(["--data-dir", EXAMPLE_DIR], { ...pools, MCP_PORTAL_PORT_RANGE_END: "20063" });
    expect(roomy.stdout).not.toContain("port block pool");
  });

  it("counts a user with a restricted-egress server as two subnets of the pool", async () => {
    const dir = await copyExample(path.join(await tempDir(), "data"));
    // Three users, four /27 subnets: enough until two users enable a server with restricted egress.
    const pools = { MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "10.9.0.0/25" };
    const subnets = (r: { stdout: string }) => r.stdout.split("\n").filter((l) => l.includes("subnet"));
    expect(subnets(await run(["--data-dir", dir], pools))).toEqual([]);
    await editJson(dir, "policy.json", (c) => void (c.egress = { servers: { time: { mode: "none" } } }));
    for (const user of ["alice", "bob"]) {
      await editJson(dir, `users/${user}/enabled-servers.json`, (c) => {
        if (!serversOf(c).some((s) => s.id === "time")) serversOf(c).push({ id: "time" });
      });
    }
    const result = await run(["--data-dir", dir], pools);
    expect(result.code).toBe(0);
    expect(subnets(result)).toEqual([
      'warning: users: $: the tree needs 5 subnets (3 users, 2 of them with restricted egress and a second subnet for it), but the subnet pool holds 4 (/27 subnets of 10.9.0.0/25): 1 would stay Stalled (SubnetPoolExhausted); widen MCP_PORTAL_USER_NETWORK_SUBNET_BASE or raise MCP_PORTAL_USER_NETWORK_SUBNET_SIZE (README, "Capacity")',
    ]);
  });

  it("on MCP_PORTAL_BACKEND=swarm, warns that each restricted-egress server is refused, at its entry", async () => {
    const dir = await copyExample(path.join(await tempDir(), "data"));
    await editJson(dir, "policy.json", (c) => void (c.egress = { servers: { time: { mode: "none" } } }));
    await editJson(dir, "users/alice/enabled-servers.json", (c) => {
      if (!serversOf(c).some((s) => s.id === "time")) serversOf(c).push({ id: "time" });
    });
    const engine = await run(["--data-dir", dir, "--output", "json"]);
    expect(JSON.stringify(JSON.parse(engine.stdout))).not.toContain("EgressUnsupported");
    const swarm = await run(["--data-dir", dir, "--output", "json"], { MCP_PORTAL_BACKEND: "swarm" });
    const warnings = (
      JSON.parse(swarm.stdout) as { warnings: { file: string; path: string; message: string }[] }
    ).warnings;
    const index = (
      JSON.parse(await readFile(path.join(dir, "users/alice/enabled-servers.json"), "utf8")) as {
        servers: { id: string }[];
      }
    ).servers.findIndex((s) => s.id === "time");
    expect(warnings).toContainEqual({
      file: "users/alice/enabled-servers.json",
      path: `$.servers[${index}].id`,
      message:
        'server "time" has restricted egress (none), which MCP_PORTAL_BACKEND=swarm cannot enforce: it is refused rather than run unrestricted (README, "Network egress"); status says Blocked (EgressUnsupported)',
    });
  });

  it("warns when policy.json gives a max_ports larger than a port block", async () => {
    const dir = await copyExample(path.join(await tempDir(), "data"));
    await editJson(dir, "policy.json", (c) => {
      const users = c.users as Record<string, { limits: Record<string, number> }>;
      users.alice!.limits.max_ports = 40;
    });
    const result = await run(["--data-dir", dir, "--output", "json"]);
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as { warnings: unknown[] }).warnings).toEqual([
      {
        file: "policy.json",
        path: "$.users.alice.limits.max_ports",
        message:
          "40 is more than a new user's port block holds (MCP_PORTAL_PORTS_PER_USER 16): servers beyond the block are Blocked (PortBlockFull); a block does not grow once the user's network exists",
      },
    ]);
    expect((await run(["--data-dir", dir], { MCP_PORTAL_PORTS_PER_USER: "40" })).stdout).toBe("");
  });

  it("exits 2 on usage errors", async () => {
    for (const args of [
      ["--bogus"],
      ["--output", "yaml", "--data-dir", EXAMPLE_DIR],
      ["stray-positional"],
      ["--data-dir", path.join(EXAMPLE_DIR, "does-not-exist")],
      ["--data-dir", EXAMPLE_DIR, "--overlays", "a", "--all-overlays"],
      ["--data-dir", EXAMPLE_DIR, "--overlays", "not valid!"],
    ]) {
      const result = await run(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toMatch(/^error: /);
      expect(result.stdout).toBe("");
    }
    expect((await run(["--help"])).code).toBe(0);
  });
});
