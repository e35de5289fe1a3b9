// npm run bench:gateway: what the gateway costs.
//
// 1. Latency it adds per request: the streamable-HTTP test server (test/fixtures/mcp-servers/http-server.ts) runs
//    as a local process on 127.0.0.1; one MCP client (official SDK) calls it directly, another through a gateway
//    endpoint (token check, origin check, reverse proxy) in front of it, with a static token, and a third through
//    the same endpoint with an OpenID Connect JWT access token (signature, claims and audience checked per request
//    against a local issuer's cached keys). 500 tools/call each, interleaved, after a warm-up; p50/p99 and the
//    ratios, in one run; then the token check alone (static vs JWT), per call.
// 2. Requests/s through one bridged stdio server: the stdio test server runs in a container
//    (mcp-portal-test/mcp-stdio:1, no network) the gateway attaches to; 1, 4 and 16 concurrent MCP clients (one
//    session each, same request ids) call tools/call in closed loops of a fixed count.
//
// 3. Protocol eras on the same bridged stdio server, same run: an SDK v2 client pinned to MCP 2026-07-28 (each
//    request stateless, translated onto the gateway's session with the server) against an SDK v1 client (2025
//    session, relayed); tools/call echo interleaved, p50/p99 of each.
//
// Everything talks over loopback (and the engine's socket); loops are bounded in count and time.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import Docker from "dockerode";
import { Registry } from "prom-client";
import { Authenticator } from "../src/auth/authenticate.js";
import { OidcVerifier } from "../src/auth/oidc.js";
import { type OidcSettings, parseOidcSettings } from "../src/auth/oidc-settings.js";
import { TokenCache } from "../src/auth/token-store.js";
import { DockerodeAttacher } from "../src/docker/attach.js";
import { Endpoint, type ServerTarget, type Upstream } from "../src/gateway/endpoint.js";
import { GATEWAY_CLIENT_INFO } from "../src/gateway/gateway.js";
import { DEFAULT_HEALTH_POLICY } from "../src/gateway/health.js";
import { HttpServerUpstream } from "../src/gateway/http-server.js";
import { createGatewayMetrics } from "../src/gateway/metrics.js";
import { parseAllowedOrigins } from "../src/gateway/origin.js";
import { StdioServerUpstream } from "../src/gateway/stdio-server.js";
import { LABELS, MANAGED_BY } from "../src/labels.js";
import { systemClock } from "../src/util/clock.js";
import { cleanupInstallation } from "../test/helpers/docker-objects.js";
import {
  benchInstallation,
  benchLogger,
  fmtMs,
  onCleanup,
  out,
  percentile,
  runBench,
  sleep,
} from "./lib/harness.js";
import { freePort } from "../test/helpers/net.js";
import { startTestIssuer } from "../test/helpers/jwt-issuer.js";

const REPO = path.resolve(import.meta.dirname, "..");
const ADMIN = "bench-gateway-admin-token-0123456789";
const LATENCY_CALLS = Number(process.env.BENCH_GATEWAY_CALLS ?? 500);
const WARMUP_CALLS = 50;
const THROUGHPUT_CALLS = Number(process.env.BENCH_GATEWAY_THROUGHPUT_CALLS ?? 3000);
const CONCURRENCY = [1, 4, 16];
const TIME_CAP_MS = 60_000;
const STDIO_IMAGE = "mcp-portal-test/mcp-stdio:1";
/** Token checks timed alone, per kind of token. */
const AUTH_CHECKS = Number(process.env.BENCH_GATEWAY_AUTH_CHECKS ?? 5000);
const PUBLIC_URL = "http://127.0.0.1";

const logger = benchLogger();

// undici adds an abort listener to the SDK transport's one AbortSignal per request and drops it only when the
// Request is garbage-collected: thousands of calls on one client trip Node's leak warning (at undici's own limit
// of 1500) without a leak. That one warning is dropped; others are printed.
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  if (warning.name !== "MaxListenersExceededWarning")
    process.stderr.write(`${warning.name}: ${warning.message}\n`);
});

async function startHttpServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join(REPO, "test/fixtures/mcp-servers/http-server.ts")],
    {
      cwd: REPO,
      env: { ...process.env, HOST: "127.0.0.1", PORT: String(port) },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  onCleanup(async () => {
    child.kill("SIGTERM");
    await sleep(100);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("the HTTP test server did not start within 20 s")),
      20_000,
    );
    child.stderr?.on("data", (d: Buffer) => {
      if (d.toString().includes("listening")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`the HTTP test server exited (${code})`)));
  });
  return child;
}

async function openEndpoint(
  target: ServerTarget,
  upstream: Upstream,
  stateDir: string,
  oidc?: OidcSettings,
): Promise<Endpoint> {
  const authenticator = new Authenticator(
    ADMIN,
    new TokenCache(stateDir),
    oidc ? new OidcVerifier(oidc) : undefined,
  );
  const endpoint = new Endpoint(target, {
    upstream,
    listenHost: "127.0.0.1",
    authenticate: (header, audiences) => authenticator.authenticate(header, { audiences }),
    identity: { publicUrl: PUBLIC_URL, oidc },
    origins: { allowed: parseAllowedOrigins(""), publishHost: "127.0.0.1" },
    clock: systemClock,
    logger,
    metrics: createGatewayMetrics(new Registry(), { defaultMetrics: false }),
    onHealth: () => undefined,
  });
  onCleanup(() => endpoint.close());
  endpoint.open();
  for (let i = 0; i < 100 && !endpoint.isListening; i++) await sleep(20);
  if (!endpoint.isListening) throw new Error(`cannot listen on 127.0.0.1:${target.hostPort}`);
  return endpoint;
}

async function connect(url: string, token?: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  });
  const client = new Client({ name: "bench", version: "1.0.0" });
  await client.connect(transport);
  onCleanup(() => client.close());
  return client;
}

async function echo(client: Client, text: string): Promise<void> {
  const result = (await client.callTool({ name: "echo", arguments: { text } })) as {
    content: { text: string }[];
  };
  if (result.content[0]?.text !== text) throw new Error(`echo answered ${JSON.stringify(result)}`);
}

function target(hostPort: number, transport: ServerTarget["transport"], containerId: string): ServerTarget {
  return {
    key: `bench/${transport}`,
    userId: "bench",
    serverId: transport.replace(/[^a-z]/g, ""),
    hostPort,
    transport,
    containerId,
    state: "running",
    // Probes at the default interval stay out of the measurement's way.
    policy: { ...DEFAULT_HEALTH_POLICY, intervalMs: 600_000 },
    containerPort: undefined,
  };
}

function oidcSettings(issuer: string): OidcSettings {
  const settings = parseOidcSettings({
    issuer,
    audience: undefined,
    apiAudience: undefined,
    userClaim: "preferred_username",
    adminClaim: undefined,
    adminValue: undefined,
    algorithms: "RS256",
    clockSkewSeconds: 60,
    jwksCacheSeconds: 600,
    scopes: "",
    timeoutSeconds: 5,
  });
  if (!settings) throw new Error("no OIDC settings");
  return settings;
}

async function latency(stateDir: string): Promise<void> {
  const issuer = await startTestIssuer();
  onCleanup(() => issuer.close());
  const oidc = oidcSettings(issuer.issuer);
  const serverPort = await freePort();
  await startHttpServer(serverPort);
  const gatewayPort = await freePort();
  const httpTarget = target(gatewayPort, "streamable-http", "local-process");
  await openEndpoint(
    httpTarget,
    new HttpServerUpstream(httpTarget, {
      resolve: () => Promise.resolve({ host: "127.0.0.1", port: serverPort }),
      logger,
      metrics: createGatewayMetrics(new Registry(), { defaultMetrics: false }),
      clientInfo: GATEWAY_CLIENT_INFO,
    }),
    stateDir,
    oidc,
  );
  const jwt = await issuer.sign(
    { aud: `${PUBLIC_URL}:${gatewayPort}/mcp`, preferred_username: httpTarget.userId },
    { ttlSeconds: 3600 },
  );
  const clients = {
    direct: await connect(`http://127.0.0.1:${serverPort}/mcp`),
    gateway: await connect(`http://127.0.0.1:${gatewayPort}/mcp`, ADMIN),
    jwt: await connect(`http://127.0.0.1:${gatewayPort}/mcp`, jwt),
  };
  const paths = ["direct", "gateway", "jwt"] as const;
  for (let i = 0; i < WARMUP_CALLS; i++) for (const path of paths) await echo(clients[path], `w${i}`);
  const times = { direct: [] as number[], gateway: [] as number[], jwt: [] as number[] };
  const deadline = performance.now() + TIME_CAP_MS;
  for (let i = 0; i < LATENCY_CALLS && performance.now() < deadline; i++) {
    // Interleaved, rotating who goes first, so all see the same machine.
    for (let k = 0; k < paths.length; k++) {
      const path = paths[(i + k) % paths.length]!;
      const start = performance.now();
      await echo(clients[path], `m${i}`);
      times[path].push(performance.now() - start);
    }
  }
  const p = (path: keyof typeof times, q: number) => percentile(times[path], q);
  const d50 = p("direct", 50);
  const d99 = p("direct", 99);
  const g50 = p("gateway", 50);
  const g99 = p("gateway", 99);
  const j50 = p("jwt", 50);
  const j99 = p("jwt", 99);
  out(`HTTP server, tools/call echo, ${times.direct.length} sequential calls per path (SSE responses):`);
  out(`  direct                     p50 ${fmtMs(d50)}  p99 ${fmtMs(d99)}`);
  out(`  via gateway, static token  p50 ${fmtMs(g50)}  p99 ${fmtMs(g99)}`);
  out(`  via gateway, OIDC JWT      p50 ${fmtMs(j50)}  p99 ${fmtMs(j99)}`);
  out(
    `  gateway adds (static)      p50 +${fmtMs(g50 - d50)}  p99 +${fmtMs(g99 - d99)}` +
      `   ratio p50 ${(g50 / d50).toFixed(2)}x  p99 ${(g99 / d99).toFixed(2)}x`,
  );
  out(
    `  JWT vs static token        p50 ${signedMs(j50 - g50)}  p99 ${signedMs(j99 - g99)}` +
      `   ratio p50 ${(j50 / g50).toFixed(2)}x  p99 ${(j99 / g99).toFixed(2)}x`,
  );
  await tokenChecks(stateDir, oidc, jwt, `${PUBLIC_URL}:${gatewayPort}/mcp`);
  out(`  key set fetched ${issuer.jwksFetches} time(s) in all (once per verifier: the keys are cached)`);
}

/** The token check alone, as the gateway makes it per request: static admin token vs JWT (keys cached). */
async function tokenChecks(
  stateDir: string,
  oidc: OidcSettings,
  jwt: string,
  audience: string,
): Promise<void> {
  const authenticator = new Authenticator(ADMIN, new TokenCache(stateDir), new OidcVerifier(oidc));
  const audiences = [audience];
  const kinds = { static: `Bearer ${ADMIN}`, jwt: `Bearer ${jwt}` };
  const times = { static: [] as number[], jwt: [] as number[] };
  const deadline = performance.now() + TIME_CAP_MS;
  for (let i = 0; i < AUTH_CHECKS && performance.now() < deadline; i++) {
    for (const kind of i % 2 === 0 ? (["static", "jwt"] as const) : (["jwt", "static"] as const)) {
      const start = performance.now();
      const result = await authenticator.authenticate(kinds[kind], { audiences });
      times[kind].push(performance.now() - start);
      if (!result.ok) throw new Error(`${kind} token refused: ${result.message}`);
    }
  }
  const us = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
  out(
    `  token check alone, ${times.static.length} checks each (the first JWT check fetches discovery and keys):`,
  );
  for (const kind of ["static", "jwt"] as const)
    out(
      `    ${kind.padEnd(6)}  p50 ${us(percentile(times[kind], 50))}  p99 ${us(percentile(times[kind], 99))}`,
    );
}

function signedMs(ms: number): string {
  return `${ms >= 0 ? "+" : "-"}${fmtMs(Math.abs(ms))}`;
}

async function startStdioContainer(docker: Docker, installation: string): Promise<string> {
  onCleanup(() => cleanupInstallation(docker, installation));
  const container = await docker.createContainer({
    Image: STDIO_IMAGE,
    name: `${installation}-stdio`,
    Labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.installation]: installation },
    User: "1000:1000",
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: false,
    Tty: false,
    HostConfig: { NetworkMode: "none", Memory: 256 * 1024 * 1024, CapDrop: ["ALL"] },
  });
  await container.start();
  return container.id;
}

async function throughput(stateDir: string): Promise<void> {
  const docker = new Docker();
  await docker.ping();
  await promisify(execFile)("bash", [path.join(REPO, "scripts/build-mcp-test-images.sh")], { cwd: REPO });
  const containerId = await startStdioContainer(docker, benchInstallation("gateway"));
  const port = await freePort();
  const stdioTarget = target(port, "stdio", containerId);
  const attacher = new DockerodeAttacher(docker, { timeoutMs: 10_000 });
  const upstream = new StdioServerUpstream({
    userId: stdioTarget.userId,
    attach: (id) => attacher.attachStdio(id),
    clock: systemClock,
    logger,
    metrics: createGatewayMetrics(new Registry(), { defaultMetrics: false }),
    clientInfo: GATEWAY_CLIENT_INFO,
  });
  await openEndpoint(stdioTarget, upstream, stateDir);
  await upstream.mux.whenReady(20_000);
  const url = `http://127.0.0.1:${port}/mcp`;
  out();
  out(
    `stdio server in a container, bridged (attach + multiplexer), tools/call echo, ${THROUGHPUT_CALLS} calls per run:`,
  );
  for (const concurrency of CONCURRENCY) {
    const clients = await Promise.all(Array.from({ length: concurrency }, () => connect(url, ADMIN)));
    for (const client of clients) await echo(client, "warm-up");
    const perClient = Math.ceil(THROUGHPUT_CALLS / concurrency);
    const latencies: number[] = [];
    const deadline = performance.now() + TIME_CAP_MS;
    const start = performance.now();
    await Promise.all(
      clients.map(async (client, c) => {
        for (let i = 0; i < perClient && performance.now() < deadline; i++) {
          const t = performance.now();
          await echo(client, `c${c}-${i}`);
          latencies.push(performance.now() - t);
        }
      }),
    );
    const elapsed = (performance.now() - start) / 1000;
    out(
      `  ${String(concurrency).padStart(2)} client(s): ${(latencies.length / elapsed).toFixed(0).padStart(5)} req/s` +
        `   latency p50 ${fmtMs(percentile(latencies, 50))}  p99 ${fmtMs(percentile(latencies, 99))}` +
        `   (${latencies.length} calls in ${elapsed.toFixed(2)} s)`,
    );
    await Promise.all(clients.map((client) => client.close()));
  }
  await eras(url);
}

async function eras(url: string): Promise<void> {
  const modern = new ModernClient(
    { name: "bench-2026", version: "1.0.0" },
    { versionNegotiation: { mode: { pin: "2026-07-28" } } },
  );
  await modern.connect(
    new ModernTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${ADMIN}` } } }),
  );
  onCleanup(() => modern.close());
  const legacy = await connect(url, ADMIN);
  const call = async (client: Client | ModernClient, text: string) => {
    const result = (await client.callTool({ name: "echo", arguments: { text } })) as {
      content: { text: string }[];
    };
    if (result.content[0]?.text !== text) throw new Error(`echo answered ${JSON.stringify(result)}`);
  };
  for (let i = 0; i < WARMUP_CALLS; i++) {
    await call(modern, `w${i}`);
    await call(legacy, `w${i}`);
  }
  const times = { modern: [] as number[], legacy: [] as number[] };
  const deadline = performance.now() + TIME_CAP_MS;
  for (let i = 0; i < LATENCY_CALLS && performance.now() < deadline; i++) {
    const order = i % 2 === 0 ? (["modern", "legacy"] as const) : (["legacy", "modern"] as const);
    for (const era of order) {
      const start = performance.now();
      await call(era === "modern" ? modern : legacy, `m${i}`);
      times[era].push(performance.now() - start);
    }
  }
  const m50 = percentile(times.modern, 50);
  const m99 = percentile(times.modern, 99);
  const l50 = percentile(times.legacy, 50);
  const l99 = percentile(times.legacy, 99);
  out();
  out(`same stdio server, tools/call echo, ${times.modern.length} sequential calls per client, interleaved:`);
  out(`  2025 session (SDK v1)          p50 ${fmtMs(l50)}  p99 ${fmtMs(l99)}`);
  out(`  2026-07-28 pinned (SDK v2)     p50 ${fmtMs(m50)}  p99 ${fmtMs(m99)}`);
  out(`  ratio 2026/2025                p50 ${(m50 / l50).toFixed(2)}x  p99 ${(m99 / l99).toFixed(2)}x`);
}

await runBench(async () => {
  const stateDir = await mkdtemp(path.join(tmpdir(), "bench-gateway-"));
  onCleanup(() => rm(stateDir, { recursive: true, force: true }));
  out(`node ${process.version}, ${String(await import("node:os").then((os) => os.cpus().length))} cpus`);
  await latency(stateDir);
  await throughput(stateDir);
});
