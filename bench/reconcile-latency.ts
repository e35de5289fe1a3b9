/**
 * Reconcile loop latency (issue "reconcile loop", Measure section), with the controller in-process over a
 * fleet of 10 users x 4 stdio busybox servers (40 containers):
 *
 *  - file edit -> running: users/<id>/enabled-servers.json is rewritten to enable one more server; measured from
 *    just before the write to the engine's `start` event of that server's container. 20 samples, each enabling a
 *    different server (so the controller's per-server start backoff never applies), two per user (so no user
 *    exceeds its limits and nothing is ever removed: the samples never meet the mass-prune guard).
 *  - `docker rm -f` -> replacement running: a managed container is force-removed through the engine API (what
 *    `docker rm -f` sends); measured from just before the request to the `start` event of the replacement.
 *    20 samples on 20 different (user, server) pairs, each started more than 10 s earlier.
 *
 *  - engine reference: the same container create body (containerCreateOptions of a spec the controller sent),
 *    created and started straight through dockerode, 20 times, timed the same way. It carries this run's
 *    installation label but not `mcp.portal.managed_by`, so the controller never sees it. The ratios
 *    "latency without debounce / engine create + start" are the controller's own share.
 *
 * "Running" is observed on the engine's event stream (label filter on this run's installation), which is
 * exact to the event and costs nothing while waiting, unlike polling the list every 20 ms.
 * The debounce is MCP_PORTAL_DEBOUNCE_MS (default 300 ms): file changes wait for it, engine events do not.
 *
 * Every object carries a unique `mcp.portal.installation` and is removed at the end, also on failure or Ctrl-C.
 * Run: npm run bench:latency
 */
import { performance } from "node:perf_hooks";
import Docker from "dockerode";
import { loadConfig } from "../src/config.js";
import { containerCreateOptions } from "../src/docker/dockerode-runtime.js";
import { parseEventStream } from "../src/docker/event-stream.js";
import type { RuntimeEvent } from "../src/docker/runtime.js";
import { LABELS } from "../src/labels.js";
import { TestDataDir, stdioServer } from "../test/helpers/data-dir.js";
import { LABEL_INSTALLATION } from "../test/helpers/docker-objects.js";
import { benchEnv, requireEngine, serverId, startBenchDaemon, userId } from "./lib/fleet.js";
import {
  benchInstallation,
  checkInterrupted,
  fmtMs,
  onCleanup,
  out,
  percentile,
  removeInstallation,
  runBench,
  sleep,
} from "./lib/harness.js";

const BACKGROUND_USERS = 10;
const SERVERS_PER_USER = 4;
const SAMPLES = 20;
const WAIT_TIMEOUT_MS = 30_000;
const probeServer = (i: number) => `probe-${String(i).padStart(2, "0")}`;

/** Waits for engine events matching a predicate; times are taken when the event reaches this process. */
class EventWatch {
  private readonly waiters: { match: (e: RuntimeEvent) => boolean; resolve: (at: number) => void }[] = [];
  private readonly abort = new AbortController();

  async open(docker: Docker, installation: string): Promise<void> {
    const stream = await docker.getEvents({
      filters: { label: [`${LABEL_INSTALLATION}=${installation}`], type: ["container"] },
      abortSignal: this.abort.signal,
    });
    void (async () => {
      try {
        for await (const event of parseEventStream(stream, this.abort.signal)) {
          const at = performance.now();
          for (let i = this.waiters.length - 1; i >= 0; i--) {
            const w = this.waiters[i];
            if (w?.match(event)) {
              this.waiters.splice(i, 1);
              w.resolve(at);
            }
          }
        }
      } catch {
        // aborted at the end
      }
    })();
  }

  /** Registers before the action, so an event arriving immediately is not missed. */
  next(what: string, match: (e: RuntimeEvent) => boolean): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no event within ${WAIT_TIMEOUT_MS} ms: ${what}`)),
        WAIT_TIMEOUT_MS,
      );
      this.waiters.push({
        match,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      });
    });
  }

  close(): void {
    this.abort.abort();
  }
}

const isServer = (e: RuntimeEvent, user: string, server: string) =>
  e.labels[LABELS.userId] === user && e.labels[LABELS.serverId] === server;

function summary(label: string, values: number[]): string {
  return (
    `${label}: p50 ${fmtMs(percentile(values, 50))}, p95 ${fmtMs(percentile(values, 95))}, ` +
    `min ${fmtMs(Math.min(...values))}, max ${fmtMs(Math.max(...values))}`
  );
}

async function main(): Promise<void> {
  const docker = new Docker();
  await requireEngine(docker);
  const installation = benchInstallation("lat");
  onCleanup(() => removeInstallation(docker, installation));
  const data = await TestDataDir.create();
  onCleanup(() => data.dispose());

  const fleetServers = Array.from({ length: SERVERS_PER_USER }, (_, s) => serverId(s));
  const probes = Array.from({ length: SAMPLES }, (_, i) => probeServer(i));
  await data.baseCatalog(
    "bench",
    [...fleetServers, ...probes].map((id) => stdioServer(id)),
  );
  const enabled = new Map<string, string[]>();
  for (let u = 0; u < BACKGROUND_USERS; u++) {
    enabled.set(userId(u), [...fleetServers]);
    await data.enable(userId(u), fleetServers);
  }

  const env = benchEnv(data.root, installation, "10.232.0.0/16");
  const config = loadConfig(env);
  // The controller logs "applying N step(s)" when a reconcile of the sample's user starts mutating.
  let applyingAt: number | undefined;
  let sampleUser: string | undefined;
  const bench = await startBenchDaemon(env, {
    onLogLine: (line, at) => {
      if (applyingAt !== undefined || sampleUser === undefined) return;
      try {
        const entry = JSON.parse(line) as { user_id?: string; msg?: string };
        if (entry.user_id === sampleUser && entry.msg?.startsWith("applying ")) applyingAt = at;
      } catch {
        // not JSON
      }
    },
  });
  const { daemon } = bench;
  const events = new EventWatch();
  await events.open(docker, installation);
  onCleanup(() => Promise.resolve(events.close()));
  out(
    `reconcile latency: ${BACKGROUND_USERS} users x ${SERVERS_PER_USER} stdio servers, ` +
      `debounce ${config.debounceMs} ms (MCP_PORTAL_DEBOUNCE_MS), concurrency ${config.concurrency}, ` +
      `installation ${installation}; converged ${BACKGROUND_USERS * SERVERS_PER_USER} containers in ${fmtMs(bench.startMs)}`,
  );

  // 1. File edit -> container running.
  const edit: number[] = [];
  const editToApply: number[] = [];
  const applyToRunning: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    checkInterrupted();
    const server = probeServer(i);
    const user = userId(i % BACKGROUND_USERS);
    const servers = enabled.get(user) as string[];
    servers.push(server);
    const started = events.next(
      `start of ${user}/${server}`,
      (e) => e.action === "start" && isServer(e, user, server),
    );
    applyingAt = undefined;
    sampleUser = user;
    const t0 = performance.now();
    await data.enable(user, servers);
    const at = await started;
    edit.push(at - t0);
    if (applyingAt !== undefined) {
      editToApply.push(applyingAt - t0);
      applyToRunning.push(at - applyingAt);
    }
    sampleUser = undefined;
    await daemon.controller.idle();
    await sleep(200);
  }

  // 2. docker rm -f of a managed container -> replacement running.
  const rm: number[] = [];
  const rmCall: number[] = [];
  const rmToRunning: number[] = [];
  const owned = await docker.listContainers({
    filters: JSON.stringify({ label: [`${LABEL_INSTALLATION}=${installation}`], status: ["running"] }),
  });
  for (let i = 0; i < SAMPLES; i++) {
    checkInterrupted();
    const user = userId(i % BACKGROUND_USERS);
    const server = serverId(Math.floor(i / BACKGROUND_USERS) % SERVERS_PER_USER);
    const victim = owned.find(
      (c) => c.Labels[LABELS.userId] === user && c.Labels[LABELS.serverId] === server,
    );
    if (!victim) throw new Error(`no running container for ${user}/${server}`);
    const replaced = events.next(
      `replacement of ${user}/${server}`,
      (e) => e.action === "start" && isServer(e, user, server) && e.id !== victim.Id,
    );
    const t0 = performance.now();
    await docker.getContainer(victim.Id).remove({ force: true });
    const t1 = performance.now();
    const at = await replaced;
    rm.push(at - t0);
    rmCall.push(t1 - t0);
    rmToRunning.push(at - t1);
    await daemon.controller.idle();
    await sleep(200);
  }

  // 3. Engine reference: create + start of the same container body, with the controller still running.
  const engine: number[] = [];
  const template = bench.timed.containers.find((c) => c.spec.labels[LABELS.serverId] === probeServer(0));
  if (!template) throw new Error("no create request of the first probe server was recorded");
  for (let i = 0; i < SAMPLES; i++) {
    checkInterrupted();
    const labels = { [LABEL_INSTALLATION]: installation, "mcp.portal.bench": "engine-reference" };
    const body = containerCreateOptions({ ...template.spec, labels }, `${template.name}-ref${i}`);
    const t0 = performance.now();
    const container = await docker.createContainer(body);
    const started = events.next(
      `start of ${container.id}`,
      (e) => e.action === "start" && e.id === container.id,
    );
    await container.start();
    engine.push((await started) - t0);
    await container.remove({ force: true });
    await sleep(200);
  }
  await bench.stop();
  const engineP50 = percentile(engine, 50);

  const debounce = config.debounceMs;
  const p50 = percentile(edit, 50);
  out("");
  out(
    `file edit (enable one more server in users/<id>/enabled-servers.json) -> its container running, ${SAMPLES} samples`,
  );
  out(`  ${summary("latency", edit)}, mean ${fmtMs(edit.reduce((a, b) => a + b, 0) / edit.length)}`);
  out(
    `  debounce ${debounce} ms = ${((debounce / p50) * 100).toFixed(0)} % of the p50; p50 without it ${fmtMs(p50 - debounce)}`,
  );
  if (editToApply.length === edit.length) {
    out(`  ${summary("  edit -> reconcile applying (watcher + debounce + queue + load/plan)", editToApply)}`);
    out(`  ${summary("  applying -> running (image check, create, start)", applyToRunning)}`);
  }
  out(
    `  ratio p50 without debounce / engine create + start p50: ${((p50 - debounce) / engineP50).toFixed(2)}` +
      ` (edit p50 / engine p50: ${(p50 / engineP50).toFixed(2)})`,
  );
  out("");
  out(
    `docker rm -f of a managed container -> replacement running, ${SAMPLES} samples (no debounce on engine events)`,
  );
  out(`  ${summary("latency", rm)}, mean ${fmtMs(rm.reduce((a, b) => a + b, 0) / rm.length)}`);
  out(`  ${summary("  rm -f request itself", rmCall)}`);
  out(`  ${summary("  rm -f answered -> replacement running", rmToRunning)}`);
  out(
    `  ratio (rm -f answered -> running) p50 / engine create + start p50: ` +
      `${(percentile(rmToRunning, 50) / engineP50).toFixed(2)}`,
  );
  out("");
  out(
    `engine reference: create + start of the same container body straight through dockerode, ${SAMPLES} samples`,
  );
  out(`  ${summary("create request -> start event", engine)}`);
}

await runBench(main);
