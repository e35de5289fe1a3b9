// Network egress enforced on the real engine (issue: per-server egress). Test hosts live in a network namespace
// this test makes, routed by the host over a veth pair of its own (Docker drops traffic between bridges, so they
// are not containers): HTTP on two ports of host A, HTTP on host B, TLS on host A. From inside server containers: the allowed
// host:port answers (HTTP and TLS through the proxy); another port, another host, an IP literal, a direct
// connection and DNS of a denied name fail; a "none" server reaches nothing and its DNS never leaves; a policy
// change replaces only the proxy. Everything is removed afterwards, even on failure.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, readStatus, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir } from "../helpers/data-dir.js";
import {
  cleanupInstallation,
  describeDocker,
  idleNodeServerEntry,
  newTestInstallation,
} from "../helpers/docker.js";

const run = promisify(execFile);
const docker = new Docker();
const REPO = path.resolve(import.meta.dirname, "../..");
const PROXY_IMAGE = "mcp-portal-egress-proxy:1";

const ALLOWED = "allowed.egress-test";
const OTHER = "other.egress-test";

/** Runs in a server container (`node -e`): one network attempt, one JSON line. */
const PROBE = String.raw`
const [mode, a, b] = process.argv.slice(1);
const http = require("http"), tls = require("tls"), net = require("net"), dns = require("dns"), dgram = require("dgram");
const done = (r) => process.stdout.write(JSON.stringify(r) + "\n", () => process.exit(0));
setTimeout(() => done({ ok: false, error: "timeout" }), 4000);
const proxy = new URL(process.env.HTTP_PROXY || "http://egress-proxy:3128");
if (mode === "http") {
  const req = http.get({ host: proxy.hostname, port: proxy.port, path: "http://" + a + ":" + b + "/", headers: { host: a + ":" + b } }, (res) => {
    let body = ""; res.on("data", (c) => (body += c)); res.on("end", () => done({ ok: res.statusCode === 200, status: res.statusCode, body }));
  });
  req.on("error", (e) => done({ ok: false, error: e.code || e.message }));
} else if (mode === "tls") {
  const req = http.request({ host: proxy.hostname, port: proxy.port, method: "CONNECT", path: a + ":" + b });
  req.on("connect", (res, socket) => {
    if (res.statusCode !== 200) return done({ ok: false, status: res.statusCode });
    const s = tls.connect({ socket, servername: a, rejectUnauthorized: false }, () => s.write("GET / HTTP/1.0\r\nHost: " + a + "\r\n\r\n"));
    let body = ""; s.on("data", (c) => (body += c)); s.on("end", () => done({ ok: body.includes("200"), body: body.split("\r\n\r\n")[1] }));
    s.on("error", (e) => done({ ok: false, error: e.code || e.message }));
  });
  req.on("error", (e) => done({ ok: false, error: e.code || e.message }));
  req.end();
} else if (mode === "direct") {
  const s = net.connect({ host: a, port: Number(b) }, () => done({ ok: true }));
  s.on("error", (e) => done({ ok: false, error: e.code || e.message }));
} else if (mode === "dns") {
  dns.lookup(a, { family: 4 }, (e, address) => done(e ? { ok: false, error: e.code } : { ok: true, address }));
} else if (mode === "dns-direct") {
  const s = dgram.createSocket("udp4");
  const q = Buffer.from("abcd01000001000000000000056c65616b7307696e76616c69640000010001", "hex");
  s.on("message", () => done({ ok: true }));
  s.on("error", (e) => done({ ok: false, error: e.code || e.message }));
  s.send(q, 53, a, (e) => { if (e) done({ ok: false, error: e.code || e.message }); });
}
`;

/** Runs in the test's namespace: the test hosts' servers; prints "ready" once all listen. */
const HOSTS = String.raw`
const [hostA, hostB, pHttp, pOther, pTls, certDir] = process.argv.slice(1);
const http = require("http"), https = require("https"), fs = require("fs"), path = require("path");
const answer = (text) => (req, res) => res.end(text);
const tlsOptions = { key: fs.readFileSync(path.join(certDir, "key.pem")), cert: fs.readFileSync(path.join(certDir, "cert.pem")) };
const all = [
  [http.createServer(answer("allowed-http")), hostA, pHttp],
  [http.createServer(answer("other-port")), hostA, pOther],
  [http.createServer(answer("other-host")), hostB, pHttp],
  [https.createServer(tlsOptions, answer("allowed-tls")), hostA, pTls],
];
let left = all.length;
for (const [server, host, port] of all) server.listen(Number(port), host, () => { if (--left === 0) console.log("ready"); });
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`;

interface ProbeResult {
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
  address?: string;
}

async function probe(containerId: string, ...args: string[]): Promise<ProbeResult> {
  const { stdout, stderr } = await run("docker", ["exec", containerId, "node", "-e", PROBE, ...args], {
    timeout: 30_000,
  });
  const last = stdout.trim().split("\n").pop() ?? "";
  if (last === "")
    throw new Error(`probe ${args.join(" ")} printed nothing; stderr: ${stderr.slice(0, 500)}`);
  return JSON.parse(last) as ProbeResult;
}

function server(id: string, egress?: Record<string, unknown>): Record<string, unknown> {
  return idleNodeServerEntry(id, { cpuShares: 32, egress });
}

describeDocker("per-server network egress, enforced on a real engine", () => {
  const installation = newTestInstallation();
  const suffix = randomBytes(3).toString("hex");
  const iface = `mcpeg${suffix}`; // the host's end of the veth pair (15 characters at most)
  const namespace = `mcp-egress-test-${suffix}`;
  const net = `198.${18 + randomInt(0, 2)}.${randomInt(0, 256)}`;
  const hostA = `${net}.10`;
  const hostB = `${net}.11`;
  const [portHttp, portOther, portTls] = [0, 1, 2].map((i) => 41_000 + randomInt(0, 4000) * 3 + i) as [
    number,
    number,
    number,
  ];
  let hosts: ChildProcess | undefined;
  let interfaceMade = false;
  let namespaceMade = false;
  let certDir: string | undefined;
  let data: TestDataDir;
  let started: StartedDaemon | undefined;

  const containers = () =>
    docker.listContainers({ all: true, filters: { label: [`${LABELS.installation}=${installation}`] } });
  const running = async (serverId: string) => {
    const found = (await containers()).find((c) => c.Labels[LABELS.serverId] === serverId);
    return found?.State === "running" ? found : undefined;
  };
  const proxyContainer = async () =>
    (await containers()).find((c) => c.Labels[LABELS.role] === "egress-proxy" && c.State === "running");

  beforeAll(async () => {
    await run("bash", [path.join(REPO, "scripts/build-egress-proxy-image.sh"), PROXY_IMAGE], {
      timeout: 300_000,
    });
    // A veth pair of our own (the dummy driver is not everywhere), both ends on the host, the test hosts'
    // addresses on one end: local addresses the host routes to, reachable from the routed user networks.
    await run("ip", ["netns", "add", namespace]);
    namespaceMade = true;
    await run("ip", ["link", "add", iface, "type", "veth", "peer", "name", `${iface}n`]);
    interfaceMade = true;
    const inNs = (...args: string[]) => run("ip", ["netns", "exec", namespace, ...args]);
    await run("ip", ["link", "set", `${iface}n`, "netns", namespace]);
    await run("ip", ["addr", "add", `${net}.1/24`, "dev", iface]);
    await run("ip", ["link", "set", iface, "up"]);
    await inNs("ip", "link", "set", "lo", "up");
    await inNs("ip", "addr", "add", `${net}.2/24`, "dev", `${iface}n`);
    await inNs("ip", "addr", "add", `${hostA}/32`, "dev", `${iface}n`);
    await inNs("ip", "addr", "add", `${hostB}/32`, "dev", `${iface}n`);
    await inNs("ip", "link", "set", `${iface}n`, "up");
    await inNs("ip", "route", "add", "default", "via", `${net}.1`);
    certDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-egress-cert-"));
    await run("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${ALLOWED}`,
      "-keyout", path.join(certDir, "key.pem"), "-out", path.join(certDir, "cert.pem"),
    ]); // prettier-ignore
    const child = spawn(
      "ip",
      ["netns", "exec", namespace, process.execPath, "-e", HOSTS, hostA, hostB,
        String(portHttp), String(portOther), String(portTls), certDir], // prettier-ignore
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    hosts = child;
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`the test hosts exited (${code})`)));
      child.stdout.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("ready")) resolve();
      });
    });

    data = await TestDataDir.create();
    await data.baseCatalog("main", [
      server("fetcher", { mode: "allow", allow_hosts: [`${ALLOWED}:${portHttp}`, `${ALLOWED}:${portTls}`] }),
      server("sealed", { mode: "none" }),
      server("open"),
    ]);
    await data.enable("alice", ["fetcher", "sealed", "open"]);
    started = await startDaemon(
      testEnv(data.root, installation, {
        MCP_PORTAL_EGRESS_PROXY_IMAGE: PROXY_IMAGE,
        MCP_PORTAL_EGRESS_EXTRA_HOSTS: `${ALLOWED}=${hostA},${OTHER}=${hostB}`,
        MCP_PORTAL_EGRESS_DENIAL_POLL_SECONDS: "1",
      }),
      { listen: true },
    );
    await waitFor(
      "alice's servers and proxy running",
      async () =>
        (await running("fetcher")) && (await running("sealed")) && (await running("open"))
          ? proxyContainer()
          : undefined,
      60_000,
    );
  }, 420_000);

  afterAll(async () => {
    // The host's pieces first (they do not depend on the engine, which may be slow to answer), each on its own.
    hosts?.stdin?.end();
    hosts?.kill();
    if (interfaceMade) await run("ip", ["link", "del", iface]).catch(() => undefined);
    if (namespaceMade) await run("ip", ["netns", "del", namespace]).catch(() => undefined);
    if (certDir) await rm(certDir, { recursive: true, force: true });
    await started?.stop().catch(() => undefined);
    await cleanupInstallation(docker, installation);
    await data?.dispose();
  }, 240_000);

  it("an unrestricted server reaches the test hosts directly (so the refusals below are the egress rules)", async () => {
    const open = (await running("open"))!;
    expect(await probe(open.Id, "direct", hostA, String(portHttp))).toMatchObject({ ok: true });
    expect(await probe(open.Id, "direct", hostB, String(portHttp))).toMatchObject({ ok: true });
  });

  it(
    "an allow-listed server reaches its host:port over HTTP and TLS through the proxy, and nothing else",
    { timeout: 180_000 },
    async () => {
      const fetcher = (await running("fetcher"))!;
      expect(await probe(fetcher.Id, "http", ALLOWED, String(portHttp))).toMatchObject({
        ok: true,
        body: "allowed-http",
      });
      expect(await probe(fetcher.Id, "tls", ALLOWED, String(portTls))).toMatchObject({
        ok: true,
        body: "allowed-tls",
      });
      // Another port of the allowed host, another host, the allowed host's IP: refused by the proxy.
      expect(await probe(fetcher.Id, "http", ALLOWED, String(portOther))).toMatchObject({
        ok: false,
        status: 403,
      });
      expect(await probe(fetcher.Id, "tls", OTHER, String(portHttp))).toMatchObject({
        ok: false,
        status: 403,
      });
      expect(await probe(fetcher.Id, "tls", hostA, String(portHttp))).toMatchObject({
        ok: false,
        status: 403,
      });
      // Bypassing the proxy: no route out of the egress network.
      const direct = await probe(fetcher.Id, "direct", hostA, String(portHttp));
      expect(direct.ok).toBe(false);
      // DNS: the allowed name resolves (through the proxy's resolver), a denied one does not.
      expect(await probe(fetcher.Id, "dns", ALLOWED)).toMatchObject({ ok: true, address: hostA });
      expect(await probe(fetcher.Id, "dns", OTHER)).toMatchObject({ ok: false });
    },
  );

  it(
    'a "none" server reaches nothing, and its DNS questions go to the proxy only (no leak)',
    { timeout: 180_000 },
    async () => {
      const sealed = (await running("sealed"))!;
      const info = await docker.getContainer(sealed.Id).inspect();
      const proxy = await docker.getContainer((await proxyContainer())!.Id).inspect();
      const egressNet = Object.keys(info.NetworkSettings.Networks);
      expect(egressNet).toHaveLength(1);
      const proxyAddress = proxy.NetworkSettings.Networks[egressNet[0]!]?.IPAddress;
      // Docker's embedded DNS forwards outside names only to the servers given here: the proxy, never the host's.
      expect(info.HostConfig.Dns).toEqual([proxyAddress]);
      expect(await probe(sealed.Id, "direct", hostA, String(portHttp))).toMatchObject({ ok: false });
      expect(await probe(sealed.Id, "http", ALLOWED, String(portHttp))).toMatchObject({ ok: false });
      expect(await probe(sealed.Id, "dns", ALLOWED)).toMatchObject({ ok: false });
      // The host's own resolver, asked directly: unreachable.
      const hostResolver = /^nameserver\s+(\d+\.\d+\.\d+\.\d+)/m.exec(
        await readFile("/etc/resolv.conf", "utf8"),
      );
      if (hostResolver)
        expect(await probe(sealed.Id, "dns-direct", hostResolver[1]!)).toMatchObject({ ok: false });
      // The question reached our resolver (and was refused there): the proxy reports it, with server and name.
      const lines = await waitFor(
        "the proxy's refusal lines",
        async () => {
          const log = await docker.getContainer(proxy.Id).logs({ stdout: true, stderr: false });
          const text = log.toString("utf8");
          return text.includes(`"server":"sealed","kind":"dns","destination":"${ALLOWED}"`) &&
            text.includes(`"server":"fetcher","kind":"connect","destination":"${OTHER}:${portHttp}"`)
            ? text
            : undefined;
        },
        25_000,
      );
      expect(lines).toContain('"msg":"egress_denied"');
      expect(lines).toContain('"user":"alice"');
    },
  );

  it(
    "the controller audits the refusals (server, destination, user, count, window) and counts them in /metrics",
    { timeout: 120_000 },
    async () => {
      const fetcher = (await running("fetcher"))!;
      // Three refusals of one destination in one window: one audit line with count 3 (a loop cannot flood it).
      const target = `${OTHER}:${portOther}`;
      for (let i = 0; i < 3; i++)
        expect(await probe(fetcher.Id, "http", OTHER, String(portOther))).toMatchObject({ status: 403 });
      const auditFile = path.join(data.stateDir, "audit.log");
      type AuditLine = Record<string, unknown> & { details: Record<string, unknown> };
      const denialLines = async () =>
        (await readFile(auditFile, "utf8").catch(() => ""))
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as AuditLine)
          .filter((l) => l.action === "egress_denied" && l.details.destination === target);
      const total = (lines: AuditLine[]) => lines.reduce((n, l) => n + Number(l.details.count), 0);
      const lines = await waitFor(
        "the audit lines of the refusals",
        async () => {
          const found = await denialLines();
          return total(found) >= 3 ? found : undefined;
        },
        40_000,
      );
      // One line per window: the three probes may straddle a window's end, never more than that.
      expect(total(lines)).toBe(3);
      expect(lines.length).toBeLessThanOrEqual(2);
      expect(lines[0]).toMatchObject({
        event_type: "ACTION_BLOCKED",
        user_id: "alice",
        resource: "fetcher",
        result: "blocked",
        details: { server: "fetcher", kind: "connect", destination: target, window_seconds: 10 },
      });
      expect(typeof lines[0]!.details.window_end).toBe("string");
      const address = started!.daemon.http!.server.address() as AddressInfo;
      const metrics = await (await fetch(`http://127.0.0.1:${address.port}/metrics`)).text();
      const connect = /^mcp_portal_egress_denied_total\{kind="connect"\} (\d+)$/m.exec(metrics);
      const dns = /^mcp_portal_egress_denied_total\{kind="dns"\} (\d+)$/m.exec(metrics);
      // At least these three, and the refusals of the tests before (denied connections and DNS questions).
      expect(Number(connect?.[1])).toBeGreaterThanOrEqual(3);
      expect(Number(dns?.[1])).toBeGreaterThanOrEqual(1);
    },
  );

  it("a policy.json change replaces only the proxy and applies at once", { timeout: 180_000 }, async () => {
    const before = new Map((await containers()).map((c) => [c.Labels[LABELS.serverId] ?? "proxy", c.Id]));
    await data.policy({
      egress: { servers: { fetcher: { mode: "allow", allow_hosts: [`${ALLOWED}:${portTls}`] } } },
    });
    await waitFor(
      "a new proxy",
      async () => {
        const proxy = await proxyContainer();
        return proxy && proxy.Id !== before.get("proxy") ? proxy : undefined;
      },
      60_000,
    ).catch((error: unknown) => {
      // Say what the controller did meanwhile (the engine here is shared and often slow).
      throw new Error(`${String(error)}\ncontroller log:\n${started?.logs.slice(-20).join("")}`);
    });
    const after = await containers();
    for (const id of ["fetcher", "sealed", "open"])
      expect(after.find((c) => c.Labels[LABELS.serverId] === id)?.Id).toBe(before.get(id));
    const fetcher = (await running("fetcher"))!;
    await waitFor("the narrowed policy", async () => {
      const r = await probe(fetcher.Id, "http", ALLOWED, String(portHttp));
      return r.status === 403 ? r : undefined;
    });
    expect(await probe(fetcher.Id, "tls", ALLOWED, String(portTls))).toMatchObject({ ok: true });
    const status = await readStatus(data.stateDir, "alice");
    expect(status?.servers.find((s) => s.id === "fetcher")?.egress).toBe(`allow ${ALLOWED}:${portTls}`);
    expect(status?.servers.find((s) => s.id === "open")?.egress).toBe("unrestricted");
  });
});
