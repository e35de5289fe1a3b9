// `mcp-portal plan` and `mcp-portal status` against a real engine: a daemon converges a tree and stops; then
// the commands run in-process. Plan must say exactly what a run would do and change nothing at all.
import { readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { PlanView } from "../../src/commands/plan.js";
import type { UserStatusView } from "../../src/commands/status.js";
import { LABELS } from "../../src/labels.js";
import { main } from "../../src/main.js";
import { runCli } from "../helpers/cli-io.js";
import { startDaemon, testEnv } from "../helpers/daemon.js";
import { TestDataDir, httpServer, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();

/** Everything of the installation on the engine, and every file of the state dir with its mtime. */
async function snapshot(installation: string, stateDir: string) {
  const label = [`${LABELS.installation}=${installation}`];
  const containers = await docker.listContainers({ all: true, filters: { label } });
  const networks = await docker.listNetworks({ filters: { label } });
  const volumes = (await docker.listVolumes({ filters: { label } })).Volumes ?? [];
  return {
    containers: containers
      .map((c) => `${c.Id} ${c.Names.join(",")} ${c.State} ${c.Created} ${c.Labels[LABELS.specHash]}`)
      .sort(),
    networks: networks.map((n) => n.Id).sort(),
    volumes: volumes.map((v) => v.Name).sort(),
    files: await filesWithMtimes(stateDir),
  };
}

async function filesWithMtimes(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const info = await stat(file);
    out.push(`${path.relative(dir, file)} ${entry.isFile() ? `${info.mtimeMs} ${info.size}` : "dir"}`);
  }
  return out.sort();
}

/** Engine events for the installation's objects between two instants (ms). */
async function eventsBetween(installation: string, since: number, until: number): Promise<string[]> {
  const stream = await docker.getEvents({
    since: (since / 1000).toFixed(3),
    until: (until / 1000 + 1).toFixed(3),
    filters: { label: [`${LABELS.installation}=${installation}`] },
  } as unknown as Parameters<Docker["getEvents"]>[0]);
  let text = "";
  for await (const chunk of stream as AsyncIterable<Buffer>) text += chunk.toString("utf8");
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const e = JSON.parse(line) as { Type?: string; Action?: string; Actor?: { ID?: string } };
      return `${e.Type} ${e.Action} ${e.Actor?.ID}`;
    });
}

describeDocker("plan and status commands against a real engine", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let env: Record<string, string>;

  const cli = (args: string[]) => runCli(main, args, env);

  /** Runs `plan` and checks it touched nothing: same objects and states, no events, no state-dir writes. */
  const planUntouched = async (args: string[] = []) => {
    const before = await snapshot(installation, data.stateDir);
    const started = Date.now();
    const result = await cli(["plan", ...args]);
    const ended = Date.now();
    expect(await snapshot(installation, data.stateDir)).toEqual(before);
    expect(await eventsBetween(installation, started, ended)).toEqual([]);
    return result;
  };

  beforeAll(async () => {
    data = await TestDataDir.create();
    await data.baseCatalog("main", [
      stdioServer("echo", { environment: { GREETING: "hello" } }),
      httpServer("web"),
    ]);
    await data.enable("alice", ["echo", "web"]);
    await data.enable("bob", ["echo"]);
    env = testEnv(data.root, installation);
    if (process.env.DOCKER_HOST) env.DOCKER_HOST = process.env.DOCKER_HOST;
    const started = await startDaemon(env);
    await started.stop();
  });

  afterAll(async () => {
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  });

  it("plan on a converged tree: in sync, exit 0, nothing touched", async () => {
    const text = await planUntouched();
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("alice: in sync");
    expect(text.stdout).toContain("bob: in sync");
    expect(text.stdout).toMatch(/Plan: in sync \(2 user\(s\)\)/);
    const json = await planUntouched(["--output", "json"]);
    expect(json.code).toBe(0);
    const view = JSON.parse(json.stdout) as PlanView;
    expect(view.in_sync).toBe(true);
    expect(view.users.map((u) => [u.user_id, u.in_sync, u.steps.length, u.problems.length])).toEqual([
      ["alice", true, 0, 0],
      ["bob", true, 0, 0],
    ]);
  });

  it("status: a row per server, Running, with its host port and age; json parses", async () => {
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.installation}=${installation}`] },
    });
    const portOf = (user: string, server: string) =>
      containers.find((c) => c.Labels[LABELS.userId] === user && c.Labels[LABELS.serverId] === server)
        ?.Labels[LABELS.hostPort];
    const before = await filesWithMtimes(data.stateDir);
    const text = await cli(["status"]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^USER\s+SERVER\s+PHASE\s+STATE\s+PORT\s+AGE\s+REASON$/);
    for (const [user, server] of [
      ["alice", "echo"],
      ["alice", "web"],
      ["bob", "echo"],
    ] as const) {
      const port = portOf(user, server);
      expect(port).toMatch(/^\d+$/);
      expect(lines).toContainEqual(
        expect.stringMatching(
          new RegExp(`^${user}\\s+${server}\\s+Running\\s+running\\s+${port}\\s+\\d+[smhd]`),
        ),
      );
    }
    // Columns line up: every row starts its SERVER cell where the header does.
    const serverColumn = lines[0]!.indexOf("SERVER");
    for (const line of lines.slice(1)) expect(line[serverColumn - 1]).toBe(" ");

    const json = await cli(["status", "--output", "json", "--user", "alice"]);
    expect(json.code).toBe(0);
    const { users } = JSON.parse(json.stdout) as { users: UserStatusView[] };
    expect(users).toHaveLength(1);
    expect(users[0]).toMatchObject({ user_id: "alice", phase: "Ready" });
    expect(users[0]!.servers.map((s) => [s.id, s.phase, s.state, String(s.host_port)])).toEqual([
      ["echo", "Running", "running", portOf("alice", "echo")],
      ["web", "Running", "running", portOf("alice", "web")],
    ]);
    expect(users[0]!.servers.every((s) => typeof s.age_seconds === "number")).toBe(true);
    expect(await filesWithMtimes(data.stateDir)).toEqual(before);
  });

  it("after a catalog edit (drift): exit 2, names the replace and the changed field", async () => {
    const file = path.join(data.root, "catalogs/base/main.json");
    const original = await readFile(file, "utf8");
    await writeFile(file, original.replace('"hello"', '"bonjour"'));
    try {
      const text = await planUntouched();
      expect(text.code).toBe(2);
      // The replace, one engine call per line: aside, stop, remove, take the name, start.
      expect(text.stdout).toMatch(
        new RegExp(
          [
            String.raw`alice: 6 step\(s\)`,
            String.raw`  \+ echo: pull image \S+ if absent \(replace: spec changed: env GREETING\)`,
            String.raw`  \+ echo: create container (mcp-alice-echo-\S+)-next-\S+ \(replace: spec changed: env GREETING\)`,
            String.raw`  - echo: stop \1 \(replace: spec changed: env GREETING\)`,
            String.raw`  - echo: remove \1 \(replace: spec changed: env GREETING\)`,
            String.raw`  ~ echo: rename \1-next-\S+ -> \1 \(take over the final name\)`,
            String.raw`  > echo: start \1 \(replace: spec changed: env GREETING\)`,
          ].join("\n"),
        ),
      );
      expect(text.stdout).toMatch(/bob: 6 step\(s\)/);
      const view = JSON.parse(
        (await planUntouched(["--output", "json", "--user", "bob"])).stdout,
      ) as PlanView;
      expect(view.version).toBe(2);
      expect(view.users).toHaveLength(1);
      expect(view.users[0]!.steps.map((s) => s.kind)).toEqual([
        "pullImage",
        "createContainer",
        "stopContainer",
        "removeContainer",
        "renameContainer",
        "startContainer",
      ]);
      expect(view.users[0]!.steps[1]).toEqual(
        expect.objectContaining({
          kind: "createContainer",
          server_id: "echo",
          replaces: expect.stringMatching(/^mcp-bob-echo-/) as unknown,
          changed_fields: ["env GREETING"],
          cause: "replace: spec changed: env GREETING",
        }),
      );
    } finally {
      await writeFile(file, original);
    }
  });

  it("after docker rm -f of a container: exit 2, names the create", async () => {
    const [web] = await docker.listContainers({
      all: true,
      filters: {
        label: [`${LABELS.installation}=${installation}`, `${LABELS.userId}=alice`, `${LABELS.serverId}=web`],
      },
    });
    await docker.getContainer(web!.Id).remove({ force: true });
    const text = await planUntouched();
    expect(text.code).toBe(2);
    expect(text.stdout).toMatch(
      /alice: 3 step\(s\)\n {2}\+ web: pull image \S+ if absent \(container missing\)\n {2}\+ web: create container mcp-alice-web-\S+ \(container missing\)\n {2}> web: start mcp-alice-web-\S+ \(new container\)/,
    );
    expect(text.stdout).toContain("bob: in sync");
    const view = JSON.parse((await planUntouched(["--output", "json"])).stdout) as PlanView;
    expect(
      view.users.find((u) => u.user_id === "alice")!.steps.map((s) => [s.kind, s.server_id, s.cause]),
    ).toEqual([
      ["pullImage", "web", "container missing"],
      ["createContainer", "web", "container missing"],
      ["startContainer", "web", "new container"],
    ]);
    // status shows what the engine has now: the status file still says Running, the container is missing.
    const status = await cli(["status", "--user", "alice"]);
    expect(status.stdout).toMatch(/alice\s+web\s+Running\s+missing/);
  });

  it("on an invalid tree: exit 1, names the file, plans nothing for that user", async () => {
    const file = path.join(data.root, "users/bob/enabled-servers.json");
    const original = await readFile(file, "utf8");
    await writeFile(file, '{"servers": [');
    try {
      const text = await planUntouched();
      expect(text.code).toBe(1);
      expect(text.stdout).toContain("bob: nothing planned: InvalidDesiredState");
      expect(text.stdout).toContain("! users/bob/enabled-servers.json: ");
      const view = JSON.parse((await planUntouched(["--output", "json"])).stdout) as PlanView;
      const bob = view.users.find((u) => u.user_id === "bob")!;
      expect(bob.in_sync).toBe(false);
      expect(bob.problems.map((p) => p.file)).toEqual(["users/bob/enabled-servers.json"]);
    } finally {
      await writeFile(file, original);
    }
  });

  it("says which image allow-list applies: none (a warning), MCP_PORTAL_ALLOWED_IMAGES, or policy.json", async () => {
    const none = JSON.parse((await planUntouched(["--output", "json"])).stdout) as PlanView;
    expect(none.allowed_images).toEqual({ source: "none", globs: ["*"] });
    expect(none.warnings).toContainEqual(expect.stringContaining("any image from any registry may run"));
    expect((await planUntouched()).stdout).toContain("warning: policy.json: $.allowed_images: not set");

    const saved = env;
    env = { ...env, MCP_PORTAL_ALLOWED_IMAGES: "mcp-portal-test/*" };
    try {
      const fromEnvironment = JSON.parse((await planUntouched(["--output", "json"])).stdout) as PlanView;
      expect(fromEnvironment.allowed_images).toEqual({
        source: "MCP_PORTAL_ALLOWED_IMAGES",
        globs: ["mcp-portal-test/*"],
      });
      expect(fromEnvironment.warnings.join("\n")).not.toContain("any image");
      await data.policy({ allowed_images: ["mcp-portal-test/*", "mcp/*"] });
      const text = await planUntouched();
      expect(text.stdout).toContain(
        "allowed images from policy.json allowed_images: mcp-portal-test/*, mcp/*",
      );
    } finally {
      env = saved;
      await rm(path.join(data.root, "policy.json"), { force: true });
    }
  });

  it("reports an unreachable engine with exit 1", async () => {
    const saved = env;
    env = { ...env, DOCKER_HOST: "tcp://127.0.0.1:1" };
    try {
      const plan = await cli(["plan"]);
      expect(plan.code).toBe(1);
      expect(plan.stderr).toContain("cannot reach the Docker Engine");
      const status = await cli(["status"]);
      expect(status.code).toBe(1);
    } finally {
      env = saved;
    }
  });
});
