// Identity at the gateway against a real engine and a real OpenID provider: the controller (in-process, gateway
// on, so it writes users' gateway-access.json and servers' URLs) runs the MCP test servers; the gateway
// (in-process, its own object graph as in production) serves them on users' ports; `oidc-provider` runs in this
// process and issues JWT access tokens with resource indicators; the official MCP SDK client signs in with its
// OAuth support (discovery from the 401, authorization code + PKCE, approved headlessly).
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError, type OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from "@modelcontextprotocol/sdk/shared/auth.js";
import Docker from "dockerode";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createToken } from "../../src/auth/token-store.js";
import type { HealthFileContent } from "../../src/gateway/health-file.js";
import type { GatewayProcess } from "../../src/gateway/process.js";
import { LABELS } from "../../src/labels.js";
import { type StartedDaemon, readStatus, startDaemon, testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";
import { startTestGateway } from "../helpers/gateway.js";
import {
  TEST_REDIRECT_URI,
  TEST_SCOPE,
  type TestOpenIdProvider,
  startTestOpenIdProvider,
} from "../helpers/oidc-provider.js";

const docker = new Docker();
const REPO = path.resolve(import.meta.dirname, "../..");
const HEALTH = { interval_seconds: 1, timeout_seconds: 3, retries: 2 };
const RESOURCES = { memory_mb: 128, cpu_shares: 64, pids_limit: 64 };
/** The gateway fetches the provider's keys again after this long (MCP_PORTAL_OIDC_JWKS_CACHE_SECONDS). */
const JWKS_CACHE_SECONDS = 2;
/** carol's requests to all her servers (policy.json rate_limits.users.carol), refilled only after an hour. */
const CAROL_LIMIT = 6;
/** Requests carol's rate-limit loop sends at most. */
const RATE_LOOP = 20;
/** In every tool argument sent here; it must never appear in a file or a log. */
const CANARY = `canary-${randomUUID()}`;

const SERVERS = [
  {
    id: "tools-stdio",
    name: "tools-stdio",
    image: "mcp-portal-test/mcp-stdio",
    tag: "1",
    transport: "stdio",
    resources: RESOURCES,
    health_check: HEALTH,
  },
  {
    id: "tools-http",
    name: "tools-http",
    image: "mcp-portal-test/mcp-http",
    tag: "1",
    transport: "streamable-http",
    ports: [{ container_port: 8080 }],
    resources: RESOURCES,
    health_check: HEALTH,
  },
];

/** The SDK's OAuth client state, in memory; the "browser" is the test provider's `approve`. */
class HeadlessOAuthClient implements OAuthClientProvider {
  authorizationUrl: URL | undefined;
  private info: OAuthClientInformationMixed | undefined;
  private saved: OAuthTokens | undefined;
  private verifier = "";

  get redirectUrl(): string {
    return TEST_REDIRECT_URI;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: "mcp-portal identity test",
      redirect_uris: [TEST_REDIRECT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.info;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.info = info;
  }

  tokens(): OAuthTokens | undefined {
    return this.saved;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.saved = tokens;
  }

  redirectToAuthorization(url: URL): void {
    this.authorizationUrl = url;
  }

  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }

  codeVerifier(): string {
    return this.verifier;
  }
}

describeDocker("identity at the gateway", () => {
  const installation = newTestInstallation();
  let data: TestDataDir;
  let provider: TestOpenIdProvider;
  let controller: StartedDaemon | undefined;
  /** The controller while it starts: a timed-out beforeAll must not leave it reconciling after the cleanup. */
  let starting: Promise<StartedDaemon> | undefined;
  let gateway: GatewayProcess | undefined;
  const gatewayLogs: string[] = [];
  let bobToken: string;
  let carolToken: string;
  const clients: Client[] = [];

  const healthFile = async (): Promise<HealthFileContent | undefined> => {
    try {
      return JSON.parse(
        await readFile(path.join(data.stateDir, "gateway", "health.json"), "utf8"),
      ) as HealthFileContent;
    } catch {
      return undefined;
    }
  };
  /** The server's MCP URL once the gateway reports it Ready: `http://127.0.0.1:<port>/mcp`. */
  const urlOf = async (userId: string, serverId: string): Promise<string> => {
    const ready = await waitFor(
      `${userId}/${serverId} Ready`,
      async () => {
        const h = (await healthFile())?.servers.find((s) => s.user_id === userId && s.server_id === serverId);
        return h?.state === "Ready" && h;
      },
      60_000,
    );
    return `http://127.0.0.1:${ready.host_port}/mcp`;
  };
  const connect = async (url: string, token: string): Promise<Client> => {
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name: "identity-test", version: "1.0.0" });
    await client.connect(transport);
    clients.push(client);
    return client;
  };
  const toolNames = async (client: Client): Promise<string[]> =>
    (await client.listTools()).tools.map((t) => t.name).sort();
  const text = (result: unknown): string =>
    (result as { content: { type: string; text: string }[] }).content[0]?.text ?? "";
  const rpc = (url: string, token: string | undefined, body: unknown, session?: string) =>
    fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
        ...(session !== undefined ? { "mcp-session-id": session } : {}),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
  const INITIALIZE = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
  };
  /** The status of an initialize request with `token` (its answer is discarded). */
  const initializeStatus = async (url: string, token: string): Promise<number> => {
    const response = await rpc(url, token, INITIALIZE);
    await response.body?.cancel();
    return response.status;
  };
  const containerOf = async (userId: string, serverId: string) => {
    const list = await docker.listContainers({
      all: true,
      filters: {
        label: [
          `${LABELS.installation}=${installation}`,
          `${LABELS.userId}=${userId}`,
          `${LABELS.serverId}=${serverId}`,
        ],
      },
    });
    if (!list[0]) throw new Error(`no container for ${userId}/${serverId}`);
    return docker.getContainer(list[0].Id);
  };
  /** A container's log: both streams, or stderr only (a stdio server's stdout is the protocol itself). */
  const containerLogs = async (userId: string, serverId: string, stdout = true): Promise<string> =>
    (await (await containerOf(userId, serverId)).logs({ stdout, stderr: true, follow: false })).toString(
      "utf8",
    );

  beforeAll(async () => {
    await promisify(execFile)("bash", [path.join(REPO, "scripts/build-mcp-test-images.sh")], { cwd: REPO });
    provider = await startTestOpenIdProvider();
    data = await TestDataDir.create();
    await data.baseCatalog("identity", SERVERS);
    // The admin hides `slow` of the stdio server from everyone; alice hides `add` there too, and allows only
    // echo and sl* on the HTTP server; bob keeps the whole stdio server.
    await data.policy({
      server_tools: { "tools-stdio": { deny: ["slow"] } },
      rate_limits: { users: { carol: { requests: CAROL_LIMIT, window_seconds: 3600 } } },
    });
    await data.enable("alice", [
      { id: "tools-stdio", tools: { deny: ["add"] } },
      { id: "tools-http", tools: { allow: ["echo", "sl*"] } },
    ]);
    await data.enable("bob", ["tools-stdio"]);
    await data.enable("carol", ["tools-http"]);
    bobToken = (await createToken(data.stateDir, "bob")).token;
    carolToken = (await createToken(data.stateDir, "carol")).token;
    const env = testEnv(data.root, installation, {
      MCP_PORTAL_GATEWAY: "on",
      MCP_PORTAL_PUBLISH_HOST: "127.0.0.1",
      MCP_PORTAL_PUBLIC_URL: "http://127.0.0.1",
      MCP_PORTAL_OIDC_ISSUER: provider.issuer,
      MCP_PORTAL_OIDC_SCOPES: TEST_SCOPE,
      MCP_PORTAL_OIDC_CLOCK_SKEW_SECONDS: "0",
      MCP_PORTAL_OIDC_JWKS_CACHE_SECONDS: String(JWKS_CACHE_SECONDS),
      MCP_PORTAL_GATEWAY_POLICY_RECHECK_MS: "200",
    });
    starting = startDaemon(env);
    controller = await starting;
    gateway = await startTestGateway(env, { logs: gatewayLogs, level: "debug" });
  }, 240_000);

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await gateway?.stop();
    controller ??= await starting?.catch(() => undefined);
    await controller?.stop();
    await cleanupInstallation(docker, installation);
    await provider?.close();
    await data?.dispose();
  });

  it("gives each server its client-facing URL in status; the 401 points at the metadata naming the provider", async () => {
    const url = await urlOf("alice", "tools-http");
    const status = await waitFor("alice's status with URLs", async () => {
      const s = await readStatus(data.stateDir, "alice");
      return s?.servers.every((server) => server.url !== undefined) && s;
    });
    expect(status.servers.find((s) => s.id === "tools-http")?.url).toBe(url);
    expect(status.servers.find((s) => s.id === "tools-stdio")?.url).toBe(await urlOf("alice", "tools-stdio"));
    // The effective tool policy, admin's deny first.
    expect(status.servers.find((s) => s.id === "tools-stdio")?.tools).toEqual({ deny: ["slow", "add"] });

    const anonymous = await rpc(url, undefined, INITIALIZE);
    expect(anonymous.status).toBe(401);
    const metadataUrl = `${new URL(url).origin}/.well-known/oauth-protected-resource/mcp`;
    expect(anonymous.headers.get("www-authenticate")).toContain(`resource_metadata="${metadataUrl}"`);
    expect(anonymous.headers.get("www-authenticate")).toContain(`scope="${TEST_SCOPE}"`);
    for (const where of [metadataUrl, `${new URL(url).origin}/.well-known/oauth-protected-resource`]) {
      const metadata = await fetch(where);
      expect(metadata.status).toBe(200);
      expect(await metadata.json()).toMatchObject({
        resource: url,
        authorization_servers: [provider.issuer],
        scopes_supported: [TEST_SCOPE],
      });
    }
  });

  it("lets the MCP SDK client sign in: discovery from the 401, authorization code + PKCE, a token for that server", async () => {
    const url = await urlOf("alice", "tools-http");
    const oauth = new HeadlessOAuthClient();
    const first = new Client({ name: "oauth-client", version: "1.0.0" });
    const firstTransport = new StreamableHTTPClientTransport(new URL(url), { authProvider: oauth });
    await expect(first.connect(firstTransport)).rejects.toThrow(UnauthorizedError);
    const asked = oauth.authorizationUrl;
    if (!asked) throw new Error("the client did not start an authorization");
    expect(asked.origin).toBe(provider.issuer);
    expect(asked.searchParams.get("resource")).toBe(url);
    expect(asked.searchParams.get("code_challenge_method")).toBe("S256");
    expect(asked.searchParams.get("scope")).toBe(TEST_SCOPE);
    await firstTransport.finishAuth(await provider.approve(asked, "alice"));
    const accessToken = oauth.tokens()?.access_token ?? "";
    const claims = decodeJwt(accessToken);
    expect(claims.aud).toBe(url);
    expect(claims.preferred_username).toBe("alice");

    const client = new Client({ name: "oauth-client", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: oauth }));
    clients.push(client);
    // alice's policy on the HTTP server: echo and sl* only.
    expect(await toolNames(client)).toEqual(["echo", "slow"]);
    expect(text(await client.callTool({ name: "echo", arguments: { text: CANARY } }))).toBe(CANARY);
    await expect(client.callTool({ name: "add", arguments: { a: 1, b: 2 } })).rejects.toThrow(
      /Unknown tool: add \(not available to this user: tool policy\)/,
    );
  });

  it("refuses a token for another audience (401), alice's token on bob's port (403), an expired token (401)", async () => {
    const aliceUrl = await urlOf("alice", "tools-http");
    const bobUrl = await urlOf("bob", "tools-stdio");

    const elsewhere = await provider.token("alice", "https://elsewhere.example/mcp");
    const refused = await rpc(aliceUrl, elsewhere, INITIALIZE);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toContain('error="invalid_token"');
    await refused.body?.cancel();
    // A token for bob's port is not one for alice's either.
    expect(await initializeStatus(aliceUrl, await provider.token("alice", bobUrl))).toBe(401);

    const aliceForBob = await provider.token("alice", bobUrl);
    expect(await initializeStatus(bobUrl, aliceForBob)).toBe(403);
    expect(await initializeStatus(bobUrl, await provider.token("bob", bobUrl))).toBe(200);

    // `exp` is in whole seconds from an `iat` rounded down: a 1 s token can be expired a few ms after it is made.
    // Four seconds leave at least three for the first call; then wait until just past `exp`.
    const shortLived = await provider.token("alice", aliceUrl, { ttlSeconds: 4 });
    expect(await initializeStatus(aliceUrl, shortLived)).toBe(200);
    const expiresAt = (decodeJwt(shortLived).exp ?? 0) * 1000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now()) + 1_100));
    const expired = await rpc(aliceUrl, shortLived, INITIALIZE);
    expect(expired.status).toBe(401);
    expect(expired.headers.get("www-authenticate")).toContain("expired");
    await expired.body?.cancel();
  });

  it("follows a key rotation: new tokens work, tokens of the removed key stop after the cache window", async () => {
    const url = await urlOf("alice", "tools-http");
    const before = await provider.token("alice", url);
    expect(await initializeStatus(url, before)).toBe(200);
    await provider.rotateKey();
    const rotatedAt = Date.now();
    const after = await provider.token("alice", url);
    expect(decodeJwt(after).aud).toBe(url);
    // An unknown key id makes the gateway fetch the keys again (at most once per cooldown).
    await waitFor(
      "a token of the new key accepted",
      async () => (await initializeStatus(url, after)) === 200,
      10_000,
    );
    await waitFor(
      "the removed key's token refused",
      async () => (await initializeStatus(url, before)) === 401,
      10_000,
    );
    expect(Date.now() - rotatedAt).toBeLessThan((JWKS_CACHE_SECONDS + 5) * 1000);
    expect(await initializeStatus(url, after)).toBe(200);
  });

  it("holds two users to their tool policies on the same stdio server, and refuses hidden tools before the server", async () => {
    const aliceUrl = await urlOf("alice", "tools-stdio");
    const alice = await connect(aliceUrl, await provider.token("alice", aliceUrl));
    // policy.json hides slow from everyone; alice hides add.
    expect(await toolNames(alice)).toEqual(["echo"]);
    expect(text(await alice.callTool({ name: "echo", arguments: { text: CANARY } }))).toBe(CANARY);
    await expect(alice.callTool({ name: "add", arguments: { a: 1, b: CANARY.length } })).rejects.toThrow(
      /Unknown tool: add/,
    );
    await expect(
      alice.callTool({ name: "slow", arguments: { steps: 1, delay_ms: 0, label: CANARY } }),
    ).rejects.toThrow(/Unknown tool: slow/);

    const bobUrl = await urlOf("bob", "tools-stdio");
    // bob signs in with a static token: they keep working next to OIDC.
    const bob = await connect(bobUrl, bobToken);
    expect(await toolNames(bob)).toEqual(["add", "echo"]);
    expect(text(await bob.callTool({ name: "add", arguments: { a: 2, b: 40 } }))).toBe("42");
    // The hidden call reached no server: the stdio server logs each slow call to stderr (the gateway's log).
    expect(gatewayLogs.join("")).not.toContain("tool slow started");
  });

  it("writes one audit line per tool call, with caller and outcome, and no argument value anywhere", async () => {
    const auditFile = path.join(data.stateDir, "gateway", "audit.log");
    type Line = { event_type: string; user_id: string; resource: string; details: Record<string, unknown> };
    const lines = await waitFor("the tool-call audit lines", async () => {
      const parsed = (await readFile(auditFile, "utf8").catch(() => ""))
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Line)
        .filter((l) => l.event_type === "TOOL_CALL");
      return parsed.length >= 6 && parsed;
    });
    const summary = lines.map((l) => `${l.resource}:${String(l.details.outcome)}`).sort();
    expect(summary).toEqual([
      "alice/tools-http/add:refused",
      "alice/tools-http/echo:success",
      "alice/tools-stdio/add:refused",
      "alice/tools-stdio/echo:success",
      "alice/tools-stdio/slow:refused",
      "bob/tools-stdio/add:success",
    ]);
    const aliceEcho = lines.find((l) => l.resource === "alice/tools-stdio/echo");
    expect(aliceEcho?.details.caller).toMatch(/alice/);
    expect(aliceEcho?.details.client_id).toBe("portal-test-client");
    expect(typeof aliceEcho?.details.duration_ms).toBe("number");
    expect(aliceEcho?.details.bytes_in).toBeGreaterThan(0);
    expect(aliceEcho?.details.bytes_out).toBeGreaterThan(0);
    expect(lines.find((l) => l.resource === "bob/tools-stdio/add")?.details.token_id).toMatch(/\S/);

    // The canary went out as tool arguments (and came back as results): it is in no file of the data tree (the
    // state dir included), not in the controller's or the gateway's log, and not in what the servers logged (a
    // stdio server's stdout is the MCP stream itself, results included, so only its stderr counts).
    const found: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(file);
        else if (entry.isFile() && (await stat(file)).size < 64 * 1024 * 1024) {
          if ((await readFile(file, "utf8")).includes(CANARY)) found.push(file);
        }
      }
    };
    await walk(data.root);
    if (gatewayLogs.join("").includes(CANARY)) found.push("gateway log");
    if ((controller?.logs ?? []).join("").includes(CANARY)) found.push("controller log");
    if ((await containerLogs("alice", "tools-http")).includes(CANARY)) found.push("alice/tools-http log");
    if ((await containerLogs("alice", "tools-stdio", false)).includes(CANARY))
      found.push("alice/tools-stdio stderr");
    expect(found).toEqual([]);
    expect(await gateway?.metrics.toolCallsTotal.get()).toMatchObject({
      values: expect.arrayContaining([
        expect.objectContaining({ labels: { result: "refused" }, value: 3 }),
      ]) as unknown,
    });
  });

  it("answers 429 with Retry-After beyond a user's rate limit, and nothing beyond it reaches the container", async () => {
    const url = await urlOf("carol", "tools-http");
    await waitFor("carol's rate limit in her access file", async () => {
      const text = await readFile(
        path.join(data.stateDir, "users", "carol", "gateway-access.json"),
        "utf8",
      ).catch(() => "");
      return text.includes('"rate_limit"');
    });
    const init = await rpc(url, carolToken, INITIALIZE);
    expect(init.status).toBe(200);
    const session = init.headers.get("mcp-session-id") ?? undefined;
    await init.text();
    const initialized = await rpc(
      url,
      carolToken,
      { jsonrpc: "2.0", method: "notifications/initialized" },
      session,
    );
    expect(initialized.status).toBe(202);
    await initialized.body?.cancel();

    const statuses: number[] = [];
    const retryAfter: string[] = [];
    for (let i = 0; i < RATE_LOOP; i += 1) {
      const response = await rpc(
        url,
        carolToken,
        {
          jsonrpc: "2.0",
          id: 10 + i,
          method: "tools/call",
          params: { name: "slow", arguments: { steps: 1, delay_ms: 0, label: `rl-${i}` } },
        },
        session,
      );
      statuses.push(response.status);
      if (response.status === 429) retryAfter.push(response.headers.get("retry-after") ?? "");
      await response.text();
    }
    // Two of the bucket's requests went to initialize and its notification.
    const passed = CAROL_LIMIT - 2;
    expect(statuses.slice(0, passed)).toEqual(Array<number>(passed).fill(200));
    expect(statuses.slice(passed)).toEqual(Array<number>(RATE_LOOP - passed).fill(429));
    for (const value of retryAfter) expect(Number(value)).toBeGreaterThanOrEqual(1);

    // The server logs each slow call it gets: exactly the ones that passed, and none after them.
    const started = (logs: string) => [...logs.matchAll(/tool slow started \((rl-\d+)\)/g)].map((m) => m[1]);
    await waitFor(
      "the passed calls in the container's log",
      async () => started(await containerLogs("carol", "tools-http")).length === passed,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(started(await containerLogs("carol", "tools-http"))).toEqual(
      Array.from({ length: passed }, (_, i) => `rl-${i}`),
    );
    const limited = await gateway?.metrics.rateLimitedTotal.get();
    expect(limited?.values.find((v) => v.labels.scope === "user")?.value).toBe(RATE_LOOP - passed);
  });
});
