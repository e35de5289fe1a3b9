// The gateway's lifecycle under `run`, with real processes (`run` as the CLI, its gateway as the CLI's child):
// supervision (stop on SIGTERM, restart after a crash, stop when run is killed), --keep-gateway and adoption, and
// the refusal of another installation's gateway. Every process a test starts (or finds) is killed in afterEach.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import Docker from "dockerode";
import { afterEach, expect, it } from "vitest";
import { type GatewayIdentity, probeGateway } from "../../src/gateway/identity.js";
import { spawnDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";
import { freePort } from "../helpers/net.js";
import { PORTAL_VERSION } from "../../src/version.js";

/** A stand-in gateway (plain node, no tsx): answers /identity as told, exits on SIGTERM. */
const FAKE_GATEWAY = `
const http = require("node:http");
const [host, port] = process.env.FAKE_LISTEN.split(":");
http.createServer((_req, res) => res.end(JSON.stringify({
  kind: "mcp-portal-gateway", installation: process.env.FAKE_INSTALLATION, state_dir: process.env.FAKE_STATE_DIR,
  version: process.env.FAKE_VERSION, pid: process.pid, listen: process.env.FAKE_LISTEN, started_at: "2026-01-01T00:00:00Z",
}))).listen(Number(port), host, () => process.stdout.write("ready\\n"));
process.on("SIGTERM", () => process.exit(0));
`;

const docker = new Docker();

/** Whether `pid` runs; an exited process nobody reaped yet (a zombie) counts as gone. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

describeDocker("gateway lifecycle under run", () => {
  const runs: ChildProcess[] = [];
  const pids = new Set<number>();
  const dirs: TestDataDir[] = [];
  const installations: string[] = [];
  const servers: http.Server[] = [];

  afterEach(async () => {
    for (const child of runs.splice(0))
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    // Gateways: the ones seen, and whatever the state dirs' identity files name.
    for (const dir of dirs) {
      try {
        const file = JSON.parse(
          await readFile(path.join(dir.stateDir, "gateway", "gateway.json"), "utf8"),
        ) as {
          pid?: unknown;
        };
        if (typeof file.pid === "number") pids.add(file.pid);
      } catch {
        // no identity file
      }
    }
    for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
    pids.clear();
    for (const server of servers.splice(0)) server.close();
    for (const installation of installations.splice(0)) await cleanupInstallation(docker, installation);
    for (const dir of dirs.splice(0)) await dir.dispose();
  });

  async function setup(listen?: number) {
    const data = await TestDataDir.create();
    dirs.push(data);
    await data.write("catalogs/base/empty.json", {
      version: "1.0.0",
      source: "base",
      metadata: { name: "empty" },
      servers: [],
    });
    const installation = newTestInstallation();
    installations.push(installation);
    const port = listen ?? (await freePort());
    const env = testEnv(data.root, installation, {
      MCP_PORTAL_GATEWAY: "on",
      MCP_PORTAL_GATEWAY_LISTEN: `127.0.0.1:${port}`,
    });
    return { data, installation, listen: `127.0.0.1:${port}`, env };
  }

  /** Starts a stand-in gateway for `setup`'s installation reporting `version`; resolves once it listens. */
  async function fakeGateway(
    target: { data: TestDataDir; installation: string; listen: string },
    version: string,
  ): Promise<ChildProcess> {
    await mkdir(target.data.stateDir, { recursive: true });
    const child = spawn(process.execPath, ["-e", FAKE_GATEWAY], {
      env: {
        FAKE_LISTEN: target.listen,
        FAKE_INSTALLATION: target.installation,
        FAKE_STATE_DIR: realpathSync(target.data.stateDir),
        FAKE_VERSION: version,
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    runs.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("exit", () => reject(new Error("the fake gateway exited")));
    });
    return child;
  }

  function startRun(env: Record<string, string>, args: string[] = []) {
    const run = spawnDaemon(env, args);
    runs.push(run.child);
    return run;
  }

  /** The gateway answering on `listen` for `installation` (optionally: not the one with pid `not`). */
  async function gatewayOf(listen: string, installation: string, not?: number): Promise<GatewayIdentity> {
    const identity = await waitFor(
      `the gateway of ${installation} on ${listen}`,
      async () => {
        const probed = await probeGateway(listen);
        return (
          probed.kind === "identity" &&
          probed.identity.installation === installation &&
          probed.identity.pid !== not &&
          probed.identity
        );
      },
      60_000,
    );
    pids.add(identity.pid);
    return identity;
  }

  it("stops its gateway on SIGTERM and waits for it: no gateway process is left", async () => {
    const { data, installation, listen, env } = await setup();
    const run = startRun(env);
    const gateway = await gatewayOf(listen, installation);
    expect(gateway.state_dir).toBe(realpathSync(data.stateDir));
    await waitFor("controller running", () => run.output().includes('"msg":"controller running"'), 60_000);
    // The gateway logs to its own rotated file, not to run's output.
    expect(await readFile(path.join(data.stateDir, "gateway.log"), "utf8")).toContain(
      '"msg":"gateway running"',
    );
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(alive(gateway.pid)).toBe(false);
    expect((await probeGateway(listen)).kind).toBe("nothing");
    expect(run.output()).toContain('"msg":"gateway stopped"');
  });

  it("restarts a gateway that was killed, and the gateway stops itself when run is killed with SIGKILL", async () => {
    const { installation, listen, env } = await setup();
    const run = startRun(env);
    const first = await gatewayOf(listen, installation);
    process.kill(first.pid, "SIGKILL");
    const second = await gatewayOf(listen, installation, first.pid);
    expect(second.pid).not.toBe(first.pid);
    expect(run.output()).toContain("the gateway exited unexpectedly; restarting it");
    // run dies without a chance to stop anything: its gateway notices (the IPC channel closes) and stops.
    run.child.kill("SIGKILL");
    await run.exited;
    await waitFor("the orphaned gateway gone", () => !alive(second.pid), 30_000);
    expect((await probeGateway(listen)).kind).toBe("nothing");
  });

  it("--keep-gateway leaves the gateway running; the next run of the installation adopts it (and stops it)", async () => {
    const { installation, listen, env } = await setup();
    const first = startRun(env, ["--keep-gateway"]);
    const gateway = await gatewayOf(listen, installation);
    await waitFor("controller running", () => first.output().includes('"msg":"controller running"'), 60_000);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain("leaving the gateway running (--keep-gateway)");
    expect(alive(gateway.pid)).toBe(true);
    const second = startRun(env);
    await waitFor(
      "the second run adopting it",
      () => second.output().includes('"msg":"adopted the running gateway of this installation"'),
      60_000,
    );
    await waitFor("controller running", () => second.output().includes('"msg":"controller running"'), 60_000);
    const probed = await probeGateway(listen);
    expect(probed.kind === "identity" && probed.identity.pid).toBe(gateway.pid);
    expect(second.output()).not.toContain('"msg":"gateway started"');
    // This run was started without --keep-gateway: it owns the adopted gateway's lifetime now.
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    await waitFor("the adopted gateway stopped", () => !alive(gateway.pid), 30_000);
  });

  it("replaces this installation's gateway of another version (an upgrade) with its own", async () => {
    const target = await setup();
    const old = await fakeGateway(target, "0.0.1-old");
    const oldExit = new Promise((resolve) => old.once("exit", resolve));
    const run = startRun(target.env);
    const gateway = await gatewayOf(target.listen, target.installation, old.pid);
    expect(gateway.version).toBe(PORTAL_VERSION);
    await oldExit;
    expect(run.output()).toContain("replacing this installation's gateway of another version");
    await waitFor("controller running", () => run.output().includes('"msg":"controller running"'), 60_000);
    run.child.kill("SIGTERM");
    expect(await run.exited, run.output()).toBe(0);
    expect(alive(gateway.pid)).toBe(false);
  });

  it("starts a gateway of its own when the one it adopted vanishes", async () => {
    const target = await setup();
    const adopted = await fakeGateway(target, PORTAL_VERSION);
    const run = startRun(target.env);
    await waitFor(
      "adoption",
      () => run.output().includes('"msg":"adopted the running gateway of this installation"'),
      60_000,
    );
    adopted.kill("SIGKILL");
    const own = await gatewayOf(target.listen, target.installation, adopted.pid);
    expect(run.output()).toContain("the adopted gateway is gone; starting one");
    await waitFor("controller running", () => run.output().includes('"msg":"controller running"'), 60_000);
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(alive(own.pid)).toBe(false);
  });

  it("refuses loudly, with a non-zero exit, another installation's gateway or a stranger on the gateway address", async () => {
    const first = await setup();
    const runA = startRun(first.env);
    const gatewayA = await gatewayOf(first.listen, first.installation);
    // A second installation configured with the same gateway address.
    const second = await setup(Number(first.listen.split(":")[1]));
    const runB = startRun(second.env);
    expect(await runB.exited).toBe(1);
    expect(runB.output()).toContain(
      `held by the gateway of installation \\"${first.installation}\\" (state dir ${realpathSync(first.data.stateDir)}, pid ${gatewayA.pid})`,
    );
    expect(runB.output()).toContain("each installation needs its own MCP_PORTAL_GATEWAY_LISTEN");
    // The first installation's gateway was neither used nor disturbed.
    const probed = await probeGateway(first.listen);
    expect(probed.kind === "identity" && probed.identity.pid).toBe(gatewayA.pid);
    // Something that is no gateway at all (or a gateway too old to say who it is) on the address.
    const other = http.createServer((_req, res) => res.writeHead(404).end("not here"));
    servers.push(other);
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const third = await setup((other.address() as { port: number }).port);
    const runC = startRun(third.env);
    expect(await runC.exited).toBe(1);
    expect(runC.output()).toContain("answers, but not as an mcp-portal gateway reporting its identity");
    await waitFor("controller running", () => runA.output().includes('"msg":"controller running"'), 60_000);
    runA.child.kill("SIGTERM");
    expect(await runA.exited).toBe(0);
    expect(alive(gatewayA.pid)).toBe(false);
  });
});
