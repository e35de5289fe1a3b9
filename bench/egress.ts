// npm run bench:egress: the latency a user's egress proxy adds per request (README, "Network egress").
//
// A plain HTTP server in this process listens on one of the host's own addresses (BENCH_EGRESS_HOST_ADDRESS, else
// docker0's, else the first non-loopback IPv4); containers reach it through the host, as they would reach an
// outside host. The controller runs in this process with two servers for one user: `direct` (unrestricted, on the
// user's network) and `proxied` (egress allow-list naming that server, on the internal egress network, through the
// user's proxy). Inside each container one Node process makes sequential GETs, a new connection each (the proxy
// opens one per request too), after a warm-up: `direct` to the address, `proxied` to the proxy (its address
// resolved once) with the absolute URL. Batches alternate between the two, in one run; p50/p99 of each and the
// difference. Bounded by BENCH_EGRESS_REQUESTS (per path) and BENCH_EGRESS_MAX_SECONDS; everything it made is
// removed at the end, on failure and on Ctrl-C.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { z } from "zod";
import { LABELS } from "../src/labels.js";
import { TestDataDir } from "../test/helpers/data-dir.js";
import { TEST_NODE_IMAGE, cleanupInstallation, idleNodeServerEntry } from "../test/helpers/docker-objects.js";
import { benchEnv, startBenchDaemon } from "./lib/fleet.js";
import {
  benchInstallation,
  checkInterrupted,
  fmtMs,
  onCleanup,
  out,
  percentile,
  runBench,
  sleep,
} from "./lib/harness.js";

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, "..");
const PROXY_IMAGE = process.env.MCP_PORTAL_EGRESS_PROXY_IMAGE ?? "mcp-portal-egress-proxy:1";
const HOST_NAME = "bench.egress-test";
/** Requests per path (after the warm-up), in batches that alternate between the paths. */
const REQUESTS = boundedInt("BENCH_EGRESS_REQUESTS", 1000, 10, 100_000);
const BATCH = 100;
const WARMUP = 20;
const MAX_SECONDS = boundedInt("BENCH_EGRESS_MAX_SECONDS", 180, 10, 3600);

function boundedInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}: an integer in ${min}..${max}`);
  return n;
}

/** In a container: `count` sequential GETs (new connection each), then the latencies in ms as one JSON line. */
const CLIENT = String.raw`
const http = require("http"), dns = require("dns");
const [mode, target, port, count] = process.argv.slice(1);
const proxy = new URL(process.env.HTTP_PROXY || "http://egress-proxy:3128");
const one = (options) => new Promise((resolve, reject) => {
  const t0 = process.hrtime.bigint();
  const req = http.get({ ...options, agent: false }, (res) => {
    res.resume();
    res.on("end", () => res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error("status " + res.statusCode)));
  });
  req.setTimeout(5000, () => req.destroy(new Error("timeout")));
  req.on("error", reject);
});
(async () => {
  let options;
  if (mode === "direct") options = { host: target, port: Number(port), path: "/" };
  else {
    const { address } = await dns.promises.lookup(proxy.hostname, { family: 4 });
    options = { host: address, port: Number(proxy.port), path: "http://" + target + ":" + port + "/", headers: { host: target + ":" + port } };
  }
  const ms = [];
  for (let i = 0; i < Number(count); i++) ms.push(await one(options));
  process.stdout.write(JSON.stringify(ms) + "\n");
})().catch((e) => { process.stderr.write(String(e && e.message || e) + "\n"); process.exit(1); });
`;

const Latencies = z.array(z.number().nonnegative()).max(100_000);

function hostAddress(): string {
  const chosen = process.env.BENCH_EGRESS_HOST_ADDRESS;
  if (chosen) return chosen;
  const interfaces = networkInterfaces();
  const v4 = (name: string) => interfaces[name]?.find((a) => a.family === "IPv4" && !a.internal)?.address;
  const found =
    v4("docker0") ??
    Object.keys(interfaces)
      .map(v4)
      .find((a): a is string => a !== undefined);
  if (!found) throw new Error("no IPv4 address of the host: set BENCH_EGRESS_HOST_ADDRESS");
  return found;
}

async function batch(
  containerId: string,
  mode: "direct" | "proxied",
  target: string,
  port: number,
  count: number,
) {
  const { stdout } = await run(
    "docker",
    ["exec", containerId, "node", "-e", CLIENT, mode, target, String(port), String(count)],
    { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  return Latencies.parse(JSON.parse(stdout.trim().split("\n").pop() ?? "[]"));
}

function server(id: string, egress?: Record<string, unknown>): Record<string, unknown> {
  return idleNodeServerEntry(id, { cpuShares: 256, egress });
}

async function main(): Promise<void> {
  const docker = new Docker();
  await docker.ping();
  await docker
    .getImage(TEST_NODE_IMAGE)
    .inspect()
    .catch(() => {
      throw new Error(`image ${TEST_NODE_IMAGE} missing: run scripts/build-test-images.sh`);
    });
  await run("bash", [path.join(REPO, "scripts/build-egress-proxy-image.sh"), PROXY_IMAGE], {
    timeout: 600_000,
  });

  const address = hostAddress();
  const target = http.createServer((_req, res) => res.end("ok"));
  await new Promise<void>((resolve, reject) => {
    target.once("error", reject);
    target.listen(0, address, resolve);
  });
  onCleanup(() => new Promise((resolve) => target.close(resolve)));
  const port = (target.address() as { port: number }).port;

  const installation = benchInstallation("egress");
  onCleanup(() => cleanupInstallation(docker, installation));
  const data = await TestDataDir.create();
  onCleanup(() => data.dispose());
  const stateDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-bench-egress-"));
  onCleanup(() => rm(stateDir, { recursive: true, force: true }));
  await data.baseCatalog("bench", [
    server("direct"),
    server("proxied", { mode: "allow", allow_hosts: [`${HOST_NAME}:${port}`] }),
  ]);
  await data.enable("bench", ["direct", "proxied"]);
  const bench = await startBenchDaemon({
    ...benchEnv(data.root, installation, "10.233.0.0/16"),
    MCP_PORTAL_STATE_DIR: stateDir,
    MCP_PORTAL_GATEWAY: "off",
    MCP_PORTAL_EGRESS_PROXY_IMAGE: PROXY_IMAGE,
    MCP_PORTAL_EGRESS_EXTRA_HOSTS: `${HOST_NAME}=${address}`,
  });

  const ids = new Map<string, string>();
  const deadline = Date.now() + 120_000;
  while (ids.size < 3) {
    checkInterrupted();
    if (Date.now() > deadline) throw new Error("the servers and the proxy did not all run within 120 s");
    const list = await docker.listContainers({
      filters: { label: [`${LABELS.installation}=${installation}`] },
    });
    for (const c of list) {
      if (c.State !== "running") continue;
      ids.set(c.Labels[LABELS.serverId] ?? c.Labels[LABELS.role] ?? "?", c.Id);
    }
    if (ids.size < 3) await sleep(500);
  }
  const direct = ids.get("direct")!;
  const proxied = ids.get("proxied")!;
  out(`bench:egress  ${new Date().toISOString()}  host ${address}:${port}  ${REQUESTS} requests per path`);
  out(`load: ${(await run("uptime", [])).stdout.trim()}`);

  // Warm-up: the proxy's and the containers' first connections (and JIT) are not measured.
  await batch(direct, "direct", address, port, WARMUP);
  await batch(proxied, "proxied", HOST_NAME, port, WARMUP);

  const samples = { direct: [] as number[], proxied: [] as number[] };
  const stopAt = Date.now() + MAX_SECONDS * 1000;
  while (samples.direct.length < REQUESTS && Date.now() < stopAt) {
    checkInterrupted();
    const n = Math.min(BATCH, REQUESTS - samples.direct.length);
    samples.direct.push(...(await batch(direct, "direct", address, port, n)));
    samples.proxied.push(...(await batch(proxied, "proxied", HOST_NAME, port, n)));
  }
  if (samples.direct.length < REQUESTS) out(`stopped at ${MAX_SECONDS} s (BENCH_EGRESS_MAX_SECONDS)`);

  const row = (name: string, values: number[]) =>
    `  ${name.padEnd(28)} n=${String(values.length).padStart(6)}  p50 ${fmtMs(percentile(values, 50)).padStart(9)}  p99 ${fmtMs(percentile(values, 99)).padStart(9)}`;
  out("GET, new connection per request, sequential, from inside a server container:");
  out(row("direct (unrestricted)", samples.direct));
  out(row("via the egress proxy (allow)", samples.proxied));
  const p50 = percentile(samples.proxied, 50) - percentile(samples.direct, 50);
  const p99 = percentile(samples.proxied, 99) - percentile(samples.direct, 99);
  out(`  added by the proxy            p50 ${fmtMs(p50).padStart(9)}  p99 ${fmtMs(p99).padStart(9)}`);
  await bench.stop();
}

await runBench(main);
