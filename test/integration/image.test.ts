// The controller image: built by scripts/build-image.sh (offline here: local test base, prebuilt context), then
// checked as shipped (version, non-root user, HEALTHCHECK) and run for real against this engine the way the
// Dockerfile and docker-compose.yml document it: socket mounted, its group added, example data read-only at /data,
// a named volume at /state, hardened (read-only root, no capabilities), listener published on 127.0.0.1.
import { execFile } from "node:child_process";
import { chmod, cp, mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { testPortRange, waitFor } from "../helpers/daemon.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const REPO = path.resolve(import.meta.dirname, "../..");
const IMAGE = process.env.MCP_PORTAL_TEST_IMAGE ?? "mcp-portal:dev";
const DEMO_IMAGES = ["mcp-portal-demo/stdio-echo:1", "mcp-portal-demo/http-echo:1"];
const BUILD_TIMEOUT_MS = 600_000;
const RUN_TIMEOUT_MS = 240_000;

const execFileP = promisify(execFile);

/** Runs a command; resolves with stdout, rejects with the exit code and stderr in the message. */
async function run(command: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await execFileP(command, args, {
      cwd: REPO,
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
      encoding: "utf8",
    });
    return stdout;
  } catch (error) {
    const e = error as { code?: number | string; stderr?: string; message: string };
    const tail = (e.stderr ?? "").split("\n").slice(-40).join("\n");
    throw new Error(`${command} ${args.join(" ")} failed (${e.code ?? e.message}):\n${tail}`);
  }
}

function socketPath(): string {
  const host = process.env.DOCKER_HOST;
  if (host === undefined || host === "") return "/var/run/docker.sock";
  if (host.startsWith("unix://")) return host.slice("unix://".length);
  throw new Error(`DOCKER_HOST=${host}: this test mounts a unix socket into the controller container`);
}

async function httpStatus(url: string): Promise<number> {
  const response = await fetch(url, { signal: AbortSignal.timeout(3_000) });
  await response.body?.cancel();
  return response.status;
}

/** `user/server` for every server enabled in the data dir's users/<id>/enabled-servers.json. */
async function enabledServers(dataDir: string): Promise<string[]> {
  const expected: string[] = [];
  for (const user of await readdir(path.join(dataDir, "users"))) {
    const file = path.join(dataDir, "users", user, "enabled-servers.json");
    const enabled = JSON.parse(await readFile(file, "utf8")) as { servers: { id: string }[] };
    for (const server of enabled.servers) expected.push(`${user}/${server.id}`);
  }
  return expected.sort();
}

describeDocker("controller image", () => {
  const docker = new Docker();
  const installation = newTestInstallation();
  const controllerName = `mcp-portal-controller-${installation}`;
  const networkName = `mcp-portal-controller-${installation}`;
  const stateVolume = `mcp-portal-state-${installation}`;
  let dataDir: string | undefined;

  beforeAll(async () => {
    const missing = [];
    for (const image of DEMO_IMAGES) {
      if (
        !(await docker
          .getImage(image)
          .inspect()
          .then(
            () => true,
            () => false,
          ))
      )
        missing.push(image);
    }
    if (missing.length > 0) await run("bash", ["scripts/build-demo-images.sh"], 300_000);
  }, 300_000);

  afterAll(async () => {
    await docker
      .getContainer(controllerName)
      .remove({ force: true })
      .catch(() => undefined);
    // The servers' containers, networks and volumes, and the test's own network, volume (and controller).
    await cleanupInstallation(docker, installation);
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  }, 120_000);

  it(
    "builds with scripts/build-image.sh",
    async () => {
      const started = Date.now();
      const out = await run("bash", ["scripts/build-image.sh", IMAGE], BUILD_TIMEOUT_MS);
      expect(out.trim().split("\n").at(-1)).toBe(IMAGE);
      console.info(`[image.test] ${IMAGE} ready in ${Math.round((Date.now() - started) / 1000)} s`);
    },
    BUILD_TIMEOUT_MS,
  );

  it("prints the package version", async () => {
    const pkg = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as { version: string };
    const out = await run("docker", ["run", "--rm", "--network", "none", IMAGE, "--version"]);
    expect(out.trim()).toBe(pkg.version);
  });

  it("runs as a non-root user, listens on 8080 and declares a HEALTHCHECK on /healthz", async () => {
    const info = await docker.getImage(IMAGE).inspect();
    const user = info.Config.User ?? "";
    expect(user).not.toBe("");
    expect(["root", "0"]).not.toContain(user.split(":")[0]);
    const uid = await run("docker", ["run", "--rm", "--network", "none", "--entrypoint", "id", IMAGE, "-u"]);
    expect(uid.trim()).not.toBe("0");
    const healthcheck = (info.Config as { Healthcheck?: { Test?: string[] } }).Healthcheck;
    expect(healthcheck?.Test?.[0]).toBe("CMD");
    expect(healthcheck?.Test?.join(" ")).toContain("/healthz");
    expect(Object.keys(info.Config.ExposedPorts ?? {})).toEqual(["8080/tcp"]);
    expect(info.Config.Env).toEqual(
      expect.arrayContaining([
        "MCP_PORTAL_DATA_DIR=/data",
        "MCP_PORTAL_STATE_DIR=/state",
        "MCP_PORTAL_LISTEN=0.0.0.0:8080",
      ]),
    );
    expect(info.Config.Entrypoint).toEqual(["node", "/app/dist/cli.js"]);
    expect(info.Config.Cmd).toEqual(["run"]);
  });

  it(
    "runs the controller against this engine and stops cleanly on SIGTERM",
    async () => {
      const socket = socketPath();
      const socketGid = (await stat(socket)).gid;
      dataDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-image-test-"));
      await cp(path.join(REPO, "manifests/example"), dataDir, { recursive: true });
      await chmod(dataDir, 0o755); // mkdtemp makes it 0700; the controller runs as uid 1000
      const expected = await enabledServers(dataDir);
      expect(expected.length).toBeGreaterThan(0);

      // docker0 may be unusable on a test host: the controller gets a network of its own (labelled, so the
      // installation's cleanup removes it; no managed_by label, so the controller itself leaves it alone).
      const label = `${LABELS.installation}=${installation}`;
      await run("docker", ["network", "create", "--label", label, networkName]);
      await run("docker", ["volume", "create", "--label", label, stateVolume]);
      const ports = testPortRange();
      await run("docker", [
        "run",
        "--detach",
        "--name",
        controllerName,
        "--label",
        label,
        "--network",
        networkName,
        "--publish",
        "127.0.0.1::8080",
        "--volume",
        `${socket}:/var/run/docker.sock`,
        "--group-add",
        String(socketGid),
        "--volume",
        `${dataDir}:/data:ro`,
        "--volume",
        `${stateVolume}:/state`,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        // The image's HEALTHCHECK command, probed more often than in production.
        "--health-interval",
        "2s",
        "--env",
        `MCP_PORTAL_INSTALLATION=${installation}`,
        "--env",
        `MCP_PORTAL_PORT_RANGE_START=${ports.start}`,
        "--env",
        `MCP_PORTAL_PORT_RANGE_END=${ports.end}`,
        "--env",
        "MCP_PORTAL_PORTS_PER_USER=10",
        // The test's own network above takes the engine's next default /16, which can be the default user
        // subnet pool itself when earlier networks hold 172.18 and 172.19: a pool outside Docker's defaults.
        "--env",
        "MCP_PORTAL_USER_NETWORK_SUBNET_BASE=10.213.0.0/16",
        "--env",
        "MCP_PORTAL_STOP_TIMEOUT_SECONDS=1",
        IMAGE,
      ]);
      const controller = docker.getContainer(controllerName);

      try {
        const published = (await controller.inspect()).NetworkSettings.Ports["8080/tcp"]?.[0]?.HostPort;
        expect(published).toBeDefined();
        const base = `http://127.0.0.1:${published}`;

        await waitFor("/healthz 200", async () => (await httpStatus(`${base}/healthz`)) === 200, 60_000);
        await waitFor("/readyz 200", async () => (await httpStatus(`${base}/readyz`)) === 200, 90_000);

        // The image ships the web console: the page and the hashed script it names.
        const page = await fetch(`${base}/`, { signal: AbortSignal.timeout(3_000) });
        expect(page.status).toBe(200);
        expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
        const script = /src="(\/assets\/app-[A-Z0-9]+\.js)"/.exec(await page.text())?.[1];
        expect(script).toBeDefined();
        expect(await httpStatus(`${base}${script}`)).toBe(200);

        const running = await waitFor(
          `running containers for ${expected.join(", ")}`,
          async () => {
            const containers = await docker.listContainers({
              all: true,
              filters: { label: [`${LABELS.managedBy}=mcp-portal`, label] },
            });
            const up = containers
              .filter((c) => c.State === "running" && c.Labels[LABELS.serverId] !== undefined)
              .map((c) => `${c.Labels[LABELS.userId]}/${c.Labels[LABELS.serverId]}`)
              .sort();
            return expected.every((e) => up.includes(e)) ? up : undefined;
          },
          90_000,
        );
        expect(running).toEqual(expect.arrayContaining(expected));

        await waitFor(
          "the HEALTHCHECK to report healthy",
          async () => (await controller.inspect()).State.Health?.Status === "healthy",
          60_000,
        );

        await controller.stop({ t: 30 });
        const state = (await controller.inspect()).State;
        expect(state.Running).toBe(false);
        expect(state.ExitCode).toBe(0);

        // Stopping the controller leaves the servers running.
        const after = await docker.listContainers({
          filters: { label: [label, `${LABELS.managedBy}=mcp-portal`] },
        });
        expect(after.length).toBeGreaterThanOrEqual(expected.length);
      } catch (error) {
        const logs = await execFileP("docker", ["logs", "--tail", "80", controllerName], {
          encoding: "utf8",
        }).then(
          (r) => r.stdout + r.stderr,
          (e: unknown) => String(e),
        );
        throw new Error(
          `${error instanceof Error ? error.message : String(error)}\ncontroller logs:\n${logs}`,
        );
      }
    },
    RUN_TIMEOUT_MS,
  );
});
