// docker-compose.yml run for real with Debian's docker-compose 1.29 (the Compose this machine can install) against
// the real engine: the controller image built offline by scripts/build-image.sh, the example tree copied to a
// temporary data dir, a project name and installation of the test's own, everything torn down even on failure.
// Checks what the README and the compose file promise: /readyz answers, the tree converges, an MCP client reaches
// a server through the gateway service with a user token, restarting the controller drops no MCP client, the
// gateway is given neither the secret keys nor the admin token, and `down` leaves the users' containers running.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, cp, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it, onTestFailed } from "vitest";
import { LABELS } from "../../src/labels.js";
import { testPortRange, waitFor } from "../helpers/daemon.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";
import { freePort } from "../helpers/net.js";

const REPO = path.resolve(import.meta.dirname, "../..");
const COMPOSE_FILE = path.join(REPO, "docker-compose.yml");
const IMAGE = process.env.MCP_PORTAL_TEST_IMAGE ?? "mcp-portal:dev";
const DEMO_IMAGES = ["mcp-portal-demo/stdio-echo:1", "mcp-portal-demo/http-echo:1"];
const ADMIN_TOKEN = `compose-admin-${randomBytes(12).toString("hex")}`;
const SECRET_KEYS = `k1:${randomBytes(32).toString("base64")}`;
const BUILD_TIMEOUT_MS = 600_000;
const UP_TIMEOUT_MS = 180_000;
const CONVERGE_TIMEOUT_MS = 150_000;

const execFileP = promisify(execFile);

/** The part of GET /api/v1/users/{id}/status (the README's status contract) this test reads. */
interface UserStatus {
  phase: string;
  servers: { id: string; health?: string; host_port?: number }[];
}

describeDocker("docker-compose.yml with docker-compose 1.29", () => {
  const docker = new Docker();
  const installation = newTestInstallation();
  const project = `mcp-portal-${installation}`;
  const label = `${LABELS.installation}=${installation}`;
  // The built image under a tag of this test's own, so a rebuild of IMAGE by another test cannot swap it mid-run.
  const runImage = `mcp-portal-compose-test:${installation}`;
  let tagged = false;
  let workDir: string | undefined;
  let composeArgs: string[] = [];
  let apiBase = "";
  let gatewayBase = "";
  /** Only what the compose file and the test set: nothing of the test runner's own MCP_PORTAL_* leaks in. */
  let composeEnv: NodeJS.ProcessEnv = {};

  async function compose(args: string[], timeoutMs = 120_000): Promise<string> {
    const started = Date.now();
    try {
      const { stdout } = await execFileP("docker-compose", [...composeArgs, ...args], {
        cwd: REPO,
        env: composeEnv,
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        encoding: "utf8",
      });
      if (["up", "down", "restart"].includes(args[0]!)) {
        console.info(`[compose.test] docker-compose ${args.join(" ")}: ${Date.now() - started} ms`);
      }
      return stdout;
    } catch (error) {
      const e = error as { code?: number | string; stderr?: string; message: string };
      throw new Error(
        `docker-compose ${args.join(" ")} failed (${e.code ?? e.message}):\n${(e.stderr ?? "").slice(-4000)}`,
      );
    }
  }

  async function api<T>(pathname: string): Promise<T | undefined> {
    const response = await fetch(`${apiBase}/api/v1${pathname}`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      signal: AbortSignal.timeout(5_000),
    });
    return response.ok ? ((await response.json()) as T) : undefined;
  }

  async function httpStatus(url: string): Promise<number> {
    const response = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    await response.body?.cancel();
    return response.status;
  }

  /** The users' server containers of this installation: id, server and when it started. */
  async function serverContainers() {
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.managedBy}=mcp-portal`, label] },
    });
    return Promise.all(
      containers
        .filter((c) => c.Labels[LABELS.serverId] !== undefined)
        .map(async (c) => {
          const state = (await docker.getContainer(c.Id).inspect()).State;
          return {
            id: c.Id,
            server: `${c.Labels[LABELS.userId]}/${c.Labels[LABELS.serverId]}`,
            running: state.Running,
            startedAt: state.StartedAt,
          };
        }),
    );
  }

  beforeAll(async () => {
    try {
      await execFileP("docker-compose", ["version"], { timeout: 30_000 });
    } catch {
      throw new Error(
        "docker-compose is not installed (scripts/ensure-docker.sh installs Debian's docker-compose)",
      );
    }
    for (const image of DEMO_IMAGES) {
      const present = await docker
        .getImage(image)
        .inspect()
        .then(
          () => true,
          () => false,
        );
      if (!present) {
        await execFileP("bash", ["scripts/build-demo-images.sh"], { cwd: REPO, timeout: 300_000 });
        break;
      }
    }
    await execFileP("bash", ["scripts/build-image.sh", IMAGE], {
      cwd: REPO,
      timeout: BUILD_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    });
    const [repo, tag] = runImage.split(":") as [string, string];
    await docker.getImage(IMAGE).tag({ repo, tag });
    tagged = true;

    workDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-compose-test-"));
    const dataDir = path.join(workDir, "data");
    await cp(path.join(REPO, "manifests/example"), dataDir, { recursive: true });
    await chmod(workDir, 0o755); // mkdtemp makes it 0700; the controller runs as uid 1000
    const apiPort = await freePort();
    const gatewayPort = await freePort();
    apiBase = `http://127.0.0.1:${apiPort}`;
    gatewayBase = `http://127.0.0.1:${gatewayPort}`;
    const ports = testPortRange();
    // The settings an operator would put in .env; the file is the test's own, never the repo's .env.
    const settings: Record<string, string> = {
      DOCKER_GID: String((await stat("/var/run/docker.sock")).gid),
      MCP_PORTAL_IMAGE: runImage,
      MCP_PORTAL_DATA_HOST_DIR: dataDir,
      MCP_PORTAL_HOST_PORT: String(apiPort),
      MCP_PORTAL_GATEWAY_LISTEN: `127.0.0.1:${gatewayPort}`,
      MCP_PORTAL_INSTALLATION: installation,
      MCP_PORTAL_OVERLAYS: "production",
      MCP_PORTAL_PORT_RANGE_START: String(ports.start),
      MCP_PORTAL_PORT_RANGE_END: String(ports.end),
      MCP_PORTAL_PORTS_PER_USER: "10",
      // The project's own bridge takes the engine's next default subnet, which may lie in the default user pool.
      MCP_PORTAL_USER_NETWORK_SUBNET_BASE: "10.214.0.0/16",
      MCP_PORTAL_STOP_TIMEOUT_SECONDS: "1",
      MCP_PORTAL_ADMIN_TOKEN: ADMIN_TOKEN,
      MCP_PORTAL_SECRET_KEYS: SECRET_KEYS,
    };
    const envFile = path.join(workDir, "compose.env");
    await writeFile(
      envFile,
      Object.entries(settings)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(""),
      { mode: 0o600 },
    );
    // Labels on the project's own objects, so the test run's global teardown removes them even if `down` fails.
    const override = path.join(workDir, "labels.yml");
    const labels = { [LABELS.installation]: installation };
    await writeFile(
      override,
      JSON.stringify({
        services: { controller: { labels }, gateway: { labels } },
        networks: { default: { labels } },
        volumes: { state: { labels } },
      }),
    );
    composeArgs = ["--project-name", project, "--env-file", envFile, "-f", COMPOSE_FILE, "-f", override];
    composeEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: workDir };
    if (process.env.DOCKER_HOST) composeEnv.DOCKER_HOST = process.env.DOCKER_HOST;
    await compose(["up", "-d", "--no-build"], UP_TIMEOUT_MS);
  }, BUILD_TIMEOUT_MS + UP_TIMEOUT_MS);

  afterAll(async () => {
    if (composeArgs.length > 0)
      await compose(["down", "--volumes", "--remove-orphans"]).catch(() => undefined);
    await cleanupInstallation(docker, installation);
    // Removes the test's tag only; the image stays while IMAGE (or another tag) names it.
    if (tagged)
      await docker
        .getImage(runImage)
        .remove()
        .catch(() => undefined);
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  }, 120_000);

  it("gives the gateway neither the secret keys nor the admin token; the controller gets both", async () => {
    const envOf = async (service: string) => {
      const id = (await compose(["ps", "-q", service])).trim();
      const env = (await docker.getContainer(id).inspect()).Config.Env ?? [];
      return env.filter((entry) => entry.includes("=")).map((entry) => entry.slice(0, entry.indexOf("=")));
    };
    const controller = await envOf("controller");
    expect(controller).toEqual(expect.arrayContaining(["MCP_PORTAL_SECRET_KEYS", "MCP_PORTAL_ADMIN_TOKEN"]));
    const gateway = await envOf("gateway");
    expect(gateway).toEqual(expect.arrayContaining(["MCP_PORTAL_INSTALLATION", "MCP_PORTAL_GATEWAY_LISTEN"]));
    expect(gateway.filter((name) => /SECRET_KEYS|ADMIN_TOKEN/.test(name))).toEqual([]);
  });

  it(
    "answers /readyz, converges the example tree and serves a server through the gateway to an MCP client",
    async () => {
      let lastStatuses: unknown;
      // A red run here once timed out waiting for Ready and kept nothing to read: keep what the services said.
      onTestFailed(async () => {
        console.error(`[compose.test] last user statuses: ${JSON.stringify(lastStatuses)}`);
        const logs = await compose(["logs", "--no-color", "--tail=300"]).catch((e: Error) => e.message);
        console.error(`[compose.test] docker-compose logs --tail 300:\n${logs}`);
      });
      await waitFor(
        "controller /readyz 200",
        async () => (await httpStatus(`${apiBase}/readyz`)) === 200,
        120_000,
      );
      await waitFor(
        "gateway /readyz 200",
        async () => (await httpStatus(`${gatewayBase}/readyz`)) === 200,
        60_000,
      );

      const users = ["alice", "bob", "carol"];
      const statuses = await waitFor(
        "every example user Ready (all servers running and Ready through the gateway)",
        async () => {
          const all = await Promise.all(users.map((user) => api<UserStatus>(`/users/${user}/status`)));
          lastStatuses = all;
          return all.every((s) => s?.phase === "Ready" && s.servers.every((srv) => srv.health === "Ready"))
            ? (all as UserStatus[])
            : undefined;
        },
        CONVERGE_TIMEOUT_MS,
      );
      expect(statuses.flatMap((s) => s.servers).length).toBeGreaterThanOrEqual(6);

      const token = (
        await compose(["exec", "-T", "controller", "node", "/app/dist/cli.js", "tokens", "create", "alice"])
      )
        .trim()
        .split(/\s+/)
        .find((word) => word.startsWith("mcp_"));
      expect(token).toBeDefined();
      const alice = statuses[0]!;
      for (const serverId of ["echo", "http-echo"]) {
        const port = alice.servers.find((s) => s.id === serverId)?.host_port;
        expect(port, serverId).toBeDefined();
        const client = new Client({ name: "compose-test", version: "1.0.0" });
        await client.connect(
          new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), {
            requestInit: { headers: { Authorization: `Bearer ${token}` } },
          }),
        );
        try {
          const tools = await client.listTools();
          expect(tools.tools.length, serverId).toBeGreaterThan(0);
          if (serverId === "echo") {
            expect(tools.tools.map((t) => t.name)).toContain("echo");
            const before = JSON.stringify(
              await client.callTool({ name: "echo", arguments: { text: "before" } }),
            );
            expect(before).toContain("before");
            // The gateway is its own service: restarting the controller drops no MCP client.
            await compose(["restart", "controller"]);
            const after = JSON.stringify(
              await client.callTool({ name: "echo", arguments: { text: "after" } }),
            );
            expect(after).toContain("after");
          }
        } finally {
          await client.close();
        }
      }
      // Without a token the gateway answers 401 before anything reaches the container.
      const port = alice.servers.find((s) => s.id === "echo")!.host_port;
      expect(
        (
          await fetch(`http://127.0.0.1:${port}/mcp`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "{}",
          })
        ).status,
      ).toBe(401);
    },
    CONVERGE_TIMEOUT_MS + 180_000,
  );

  it("`down` removes the controller and the gateway and leaves the users' containers running", async () => {
    const before = await serverContainers();
    expect(before.length).toBeGreaterThanOrEqual(6);
    expect(before.every((c) => c.running)).toBe(true);

    await compose(["down"]);
    expect((await compose(["ps", "-q"])).trim()).toBe("");
    const after = await serverContainers();
    // The same containers, never restarted, still running; their networks and the state volume are kept.
    expect(after.map((c) => [c.id, c.running, c.startedAt]).sort()).toEqual(
      before.map((c) => [c.id, true, c.startedAt]).sort(),
    );
    const networks = await docker.listNetworks({
      filters: { label: [`${LABELS.managedBy}=mcp-portal`, label] },
    });
    expect(networks.length).toBe(3);
    const volumes = await docker.listVolumes({ filters: { label: [label] } });
    expect((volumes.Volumes ?? []).map((v) => v.Name)).toContain(
      `${project.replace(/[^a-z0-9_-]/g, "")}_state`,
    );
  }, 120_000);
});
