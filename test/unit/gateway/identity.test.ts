// Who a gateway is (GET /identity, <state-dir>/gateway/gateway.json) and what run and the gateway make of it.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../../src/gateway/config.js";
import {
  GATEWAY_KIND,
  type GatewayIdentity,
  canonicalStateDir,
  describeVerdict,
  identityFilePath,
  judgeGateway,
  probeGateway,
} from "../../../src/gateway/identity.js";
import { createGatewayProcess } from "../../../src/gateway/process.js";
import { createLogger } from "../../../src/observability/logger.js";

const identity = (over: Partial<GatewayIdentity> = {}): GatewayIdentity => ({
  kind: GATEWAY_KIND,
  installation: "alpha",
  state_dir: "/srv/alpha/state",
  version: "1.2.0",
  pid: 4242,
  listen: "127.0.0.1:8081",
  started_at: "2026-11-30T00:00:00.000Z",
  ...over,
});
const expected = { installation: "alpha", stateDir: "/srv/alpha/state", version: "1.2.0" };

describe("judgeGateway", () => {
  it("adopts only its own installation and state dir, replaces another version, refuses anything else", () => {
    expect(judgeGateway({ kind: "nothing" }, expected)).toEqual({ kind: "none" });
    expect(judgeGateway({ kind: "identity", identity: identity() }, expected).kind).toBe("ours");
    expect(judgeGateway({ kind: "identity", identity: identity({ version: "1.1.0" }) }, expected).kind).toBe(
      "other_version",
    );
    expect(
      judgeGateway({ kind: "identity", identity: identity({ installation: "beta" }) }, expected).kind,
    ).toBe("stranger");
    // Same installation name, another state dir: another installation all the same (health.json goes elsewhere).
    expect(
      judgeGateway({ kind: "identity", identity: identity({ state_dir: "/srv/beta/state" }) }, expected).kind,
    ).toBe("stranger");
    const unknown = judgeGateway({ kind: "unknown", detail: "GET /identity: HTTP 404" }, expected);
    expect(describeVerdict("127.0.0.1:8081", unknown)).toBe(
      "127.0.0.1:8081 answers, but not as an mcp-portal gateway reporting its identity (GET /identity: HTTP 404)",
    );
  });
});

describe("probeGateway", () => {
  const servers: http.Server[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  async function listen(handler: http.RequestListener): Promise<string> {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it("tells nothing, a gateway and anything else apart, without following redirects or reading much", async () => {
    const closed = await listen(() => undefined);
    await new Promise((resolve) => servers.pop()!.close(resolve));
    expect(await probeGateway(closed)).toEqual({ kind: "nothing" });
    const gateway = await listen((_req, res) => res.end(JSON.stringify(identity())));
    expect(await probeGateway(gateway)).toEqual({ kind: "identity", identity: identity() });
    const notFound = await listen((_req, res) => res.writeHead(404).end());
    expect(await probeGateway(notFound)).toEqual({ kind: "unknown", detail: "GET /identity: HTTP 404" });
    const hits: string[] = [];
    const target = await listen((req, res) => {
      hits.push(req.url ?? "");
      res.end(JSON.stringify(identity()));
    });
    const redirect = await listen((_req, res) =>
      res.writeHead(307, { location: `http://${target}/identity` }).end(),
    );
    expect((await probeGateway(redirect)).kind).toBe("unknown");
    expect(hits).toEqual([]);
    const huge = await listen((_req, res) => res.end(`{"kind":"${"x".repeat(100_000)}"}`));
    expect(await probeGateway(huge)).toEqual({ kind: "unknown", detail: "identity answer too large" });
    const wrong = await listen((_req, res) => res.end(JSON.stringify({ ...identity(), pid: "many" })));
    expect((await probeGateway(wrong)).kind).toBe("unknown");
  });

  it("a gateway refuses to start when its state dir's identity file names another live gateway of it", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "gw-identity-"));
    dirs.push(stateDir);
    const other = identity({ installation: "alpha", state_dir: canonicalStateDir(stateDir), pid: 999_999 });
    let address = "";
    address = await listen((_req, res) => res.end(JSON.stringify({ ...other, listen: address })));
    await mkdir(path.dirname(identityFilePath(stateDir)), { recursive: true });
    await writeFile(identityFilePath(stateDir), JSON.stringify({ ...other, listen: address }));
    const config = loadGatewayConfig({
      MCP_PORTAL_STATE_DIR: stateDir,
      MCP_PORTAL_INSTALLATION: "alpha",
      MCP_PORTAL_GATEWAY_LISTEN: "127.0.0.1:0",
    });
    const logger = createLogger({
      level: "silent",
      destination: new Writable({ write: (_c, _e, d) => d() }),
    });
    const gateway = await createGatewayProcess({ config, env: {}, logger });
    await expect(gateway.start()).rejects.toThrow(
      `gateway pid 999999 (installation "alpha", listening on ${address}) already serves the state dir ${canonicalStateDir(stateDir)}`,
    );
    await gateway.http?.close();
  });
});
