// The web console in a real browser (Debian's chromium through playwright-core) against a running controller and a
// real engine: sign-in, live status without reloads, users kept apart, the catalog editor, secrets that reach the
// container but never the page, read-only mode, accessibility (axe-core) and no request leaving loopback.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import Docker from "dockerode";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildConsole } from "../../scripts/build-console.js";
import { createToken } from "../../src/auth/token-store.js";
import { loadConfig } from "../../src/config.js";
import { type Daemon, createDaemon } from "../../src/daemon.js";
import { LABELS } from "../../src/labels.js";
import { createLogger } from "../../src/observability/logger.js";
import { generateKey } from "../../src/secrets/key-ring.js";
import { type Browser, describeBrowser, launchBrowser } from "../helpers/browser.js";
import { testEnv, waitFor } from "../helpers/daemon.js";
import { TestDataDir, stdioServer } from "../helpers/data-dir.js";
import { cleanupInstallation, describeDocker, newTestInstallation } from "../helpers/docker.js";

const docker = new Docker();
const ADMIN = `console-admin-${randomBytes(12).toString("hex")}`;
const AXE_SOURCE = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const REPO = path.resolve(import.meta.dirname, "../..");
/** `npm run screenshots` writes them to docs/screenshots; otherwise they go to a temporary directory. */
const SCREENSHOT_DIR = process.env.CONSOLE_SCREENSHOT_DIR
  ? path.resolve(REPO, process.env.CONSOLE_SCREENSHOT_DIR)
  : path.join(tmpdir(), "mcp-portal-console-screenshots");

function silentLogger() {
  return createLogger({ level: "info", destination: new Writable({ write: (_c, _e, done) => done() }) });
}

/** Needs both the engine and the browser (each decides skip-or-fail for itself: on CI neither may be missing). */
const describeConsole =
  describeDocker === describe && describeBrowser === describe ? describe : describe.skip;

describeConsole("web console in a browser against a running controller", () => {
  const installation = newTestInstallation();
  const secretValue = `s3cr3t-${randomBytes(8).toString("hex")}`;
  let data: TestDataDir;
  let consoleDir: string;
  let daemon: Daemon;
  let readOnly: Daemon;
  let base: string;
  let readOnlyBase: string;
  let browser: Browser;
  let aliceToken: string;
  const requests: string[] = [];
  const cspViolations: string[] = [];

  beforeAll(async () => {
    data = await TestDataDir.create();
    consoleDir = await mkdtemp(path.join(tmpdir(), "mcp-portal-console-ui-"));
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await data.baseCatalog("main", [
      stdioServer("echo", { display_name: "Echo", description: "Answers every line", category: "demo" }),
      stdioServer("conf", {
        display_name: "Configurable",
        category: "tools",
        user_configurable: true,
        environment: { LOG_LEVEL: "info" },
      }),
      stdioServer("keyed", {
        display_name: "Needs a key",
        category: "tools",
        required_secrets: ["API_KEY"],
        command: ["sh", "-c", 'echo "starting with key=$API_KEY"; while read -r line; do echo "$line"; done'],
      }),
    ]);
    await data.enable("alice", []);
    await data.enable("bob", [{ id: "conf", config: { environment: { LOG_LEVEL: "bob-private-value" } } }], {
      suspend: true,
    });
    aliceToken = (await createToken(data.stateDir, "alice")).token;
    await createToken(data.stateDir, "bob");
    const built = await buildConsole(consoleDir);
    expect(built.totalGzipBytes).toBeLessThan(150 * 1024);
    const env = testEnv(data.root, installation, {
      MCP_PORTAL_ADMIN_TOKEN: ADMIN,
      MCP_PORTAL_SECRET_KEYS: generateKey("k1"),
    });
    daemon = await createDaemon({
      config: loadConfig(env),
      env,
      logger: silentLogger(),
      listen: true,
      consoleDir,
      startBackoff: { baseMs: 500, maxMs: 5_000, healthyAfterMs: 3_000 },
    });
    await daemon.start();
    base = `http://127.0.0.1:${(daemon.http!.server.address() as AddressInfo).port}`;
    // A second, read-only API on the same tree: only its listener runs (no reconciles, no containers).
    const readOnlyEnv = {
      ...env,
      MCP_PORTAL_READ_ONLY_API: "true",
      MCP_PORTAL_STATE_DIR: path.join(data.root, ".ro"),
    };
    readOnly = await createDaemon({
      config: loadConfig(readOnlyEnv),
      env: readOnlyEnv,
      logger: silentLogger(),
      listen: true,
      consoleDir,
    });
    await readOnly.http!.listen({ host: "127.0.0.1", port: 0 });
    readOnlyBase = `http://127.0.0.1:${(readOnly.http!.server.address() as AddressInfo).port}`;
    browser = await launchBrowser();
    browser.context.on("request", (request) => requests.push(request.url()));
    browser.context.on("console", (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await readOnly?.http?.close();
    await readOnly?.audit.close();
    await daemon?.stop();
    await cleanupInstallation(docker, installation);
    await data?.dispose();
    if (consoleDir) await rm(consoleDir, { recursive: true, force: true });
  });

  async function signIn(token: string, at = base): Promise<Page> {
    const page = await browser.context.newPage();
    await page.goto(`${at}/`);
    await page.getByLabel("Token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    return page;
  }

  /** axe-core's serious and critical findings on the page as it is now. */
  async function axeViolations(page: Page): Promise<string[]> {
    await page.evaluate(AXE_SOURCE);
    const result = await page.evaluate<{
      violations: { id: string; impact: string; nodes: { target: string[] }[] }[];
    }>("axe.run(document, { resultTypes: ['violations'] })");
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  }

  async function checkScreen(page: Page, name: string): Promise<void> {
    expect(await axeViolations(page), `axe on ${name}`).toEqual([]);
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
  }

  const aliceContainer = async (serverId: string) =>
    (
      await docker.listContainers({
        all: true,
        filters: {
          label: [
            `${LABELS.installation}=${installation}`,
            `${LABELS.userId}=alice`,
            `${LABELS.serverId}=${serverId}`,
          ],
        },
      })
    )[0];

  it("refuses a wrong token with a message, and signs in with the keyboard alone", async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/`);
    await checkScreen(page, "sign-in");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement.id")).toBe("token");
    await page.keyboard.type("mcp_0123456789abcdef_not-a-real-token-at-all");
    await page.keyboard.press("Enter");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toContain("The token was refused");
    expect(page.url()).toBe(`${base}/`);
    await page.getByLabel("Token").fill(aliceToken);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Dashboard: alice" }).waitFor();
    // The token never reaches the URL; it stays in this tab's sessionStorage only.
    expect(page.url()).not.toContain(aliceToken);
    expect(await page.evaluate("Object.keys(localStorage).length")).toBe(0);
    // Visible focus: the first link of the navigation, reached by Tab, has an outline.
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    const outline = await page.evaluate<string>(
      "(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth; })()",
    );
    expect(outline).toMatch(/^solid [2-9]/);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").waitFor();
    expect(await page.evaluate("sessionStorage.length")).toBe(0);
    await page.close();
  });

  it("enables a server: the page shows it Running without a reload; disabling removes it from the engine and the page", async () => {
    const page = await signIn(aliceToken);
    await page.evaluate("window.__sameDocument = true");
    await page.getByRole("button", { name: "Enable echo" }).click();
    const card = page.locator('[aria-label="Enabled servers"] [data-server="echo"]');
    await card.locator(".badge", { hasText: "Running" }).waitFor({ timeout: 30_000 });
    expect((await aliceContainer("echo"))?.State).toBe("running");
    await card
      .getByText(/http:\/\/127\.0\.0\.1:\d+\/mcp/)
      .first()
      .waitFor();
    await card.getByText("Client configuration").click();
    await checkScreen(page, "dashboard");

    await page.getByRole("link", { name: "Monitor" }).click();
    await page.getByRole("heading", { name: "Server Monitor: alice" }).waitFor();
    await page.locator('tr[data-server="echo"] .badge', { hasText: "Running" }).waitFor();
    await checkScreen(page, "monitor");

    await page.getByRole("link", { name: "Dashboard" }).click();
    await page.getByRole("button", { name: "Disable echo" }).click();
    await card.waitFor({ state: "detached", timeout: 30_000 });
    await waitFor("echo's container gone", async () => (await aliceContainer("echo")) === undefined, 30_000);
    expect(await page.evaluate("window.__sameDocument")).toBe(true);
    await page.close();
  });

  it("shows validation problems next to the field, exactly as the API returns them", async () => {
    const page = await signIn(aliceToken);
    await page.getByRole("button", { name: /^Enable conf/ }).click();
    await page.getByRole("button", { name: "Add environment variable" }).click();
    await page.getByLabel("Name of environment variable 2").fill("1BAD");
    await page.getByLabel("Value of 1BAD").fill("x");
    await page.getByRole("button", { name: "Save and enable" }).click();
    const problem = page.locator('[aria-label="Catalog servers"] .field-row .problems');
    await problem.first().waitFor();
    const direct = await fetch(`${base}/api/v1/users/alice/servers/conf/enable`, {
      method: "POST",
      headers: { authorization: `Bearer ${aliceToken}`, "content-type": "application/json" },
      body: JSON.stringify({ environment: { "1BAD": "x" } }),
    });
    const expected = ((await direct.json()) as { problems: string[] }).problems;
    expect(expected[0]).toMatch(/^request body: \$\.environment\["1BAD"\]: /);
    expect(await problem.first().textContent()).toBe(expected[0]);
    expect(await page.getByLabel("Value of 1BAD").getAttribute("aria-invalid")).toBe("true");
    await checkScreen(page, "dashboard-config-form");
    const file = JSON.parse(
      await readFile(path.join(data.root, "users/alice/enabled-servers.json"), "utf8"),
    ) as {
      servers: unknown[];
    };
    expect(file.servers).toEqual([]);
    await page.close();
  });

  it("keeps alice from bob: the UI shows only her, and the API refuses what it could call for bob", async () => {
    const page = await signIn(aliceToken);
    const mine: string[] = [];
    page.on("request", (request) => mine.push(request.url()));
    for (const hash of ["#/dashboard/bob", "#/monitor/bob", "#/catalogs", "#/users"]) {
      await page.goto(`${base}/${hash}`);
      await page.getByRole("button", { name: "Sign out" }).waitFor();
      await page.getByRole("heading", { level: 1 }).first().waitFor();
      const heading = await page.getByRole("heading", { level: 1 }).first().textContent();
      expect(heading, hash).toMatch(/: alice$/);
      expect(await page.content()).not.toContain("bob-private-value");
    }
    expect(await page.getByRole("link", { name: "Catalogs" }).count()).toBe(0);
    expect(mine.filter((url) => url.includes("/users/bob") || url.includes("/admin/"))).toEqual([]);
    const bobFile = await readFile(path.join(data.root, "users/bob/enabled-servers.json"), "utf8");
    const statuses = await page.evaluate<number[]>(`(async () => {
      const headers = { authorization: "Bearer " + sessionStorage.getItem("mcp-portal.token") };
      const calls = [
        ["GET", "/api/v1/users/bob/catalog/servers"], ["GET", "/api/v1/users/bob/enabled"],
        ["GET", "/api/v1/users/bob/status"], ["GET", "/api/v1/users/bob/containers"],
        ["GET", "/api/v1/users/bob/servers/conf/logs"], ["GET", "/api/v1/users/bob/secrets"],
        ["POST", "/api/v1/users/bob/servers/conf/disable"], ["GET", "/api/v1/admin/users"],
        ["GET", "/api/v1/events?user_id=bob"],
      ];
      const out = [];
      for (const [method, url] of calls) out.push((await fetch(url, { method, headers })).status);
      return out;
    })()`);
    expect(statuses).toEqual(Array(9).fill(403));
    expect(await readFile(path.join(data.root, "users/bob/enabled-servers.json"), "utf8")).toBe(bobFile);
    await page.close();
  });

  it("sets a secret in the browser that reaches the container, its value appears nowhere in the page or the log view, and a restart is counted live", async () => {
    const page = await signIn(aliceToken);
    // Without the secret the API refuses the enable; the refusal shows on the server's card.
    await page.getByRole("button", { name: "Enable keyed" }).click();
    const refusal = page.locator('[data-catalog-server="keyed"] [role="alert"]');
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain("API_KEY");
    await page.getByLabel("Name", { exact: true }).fill("API_KEY");
    await page.getByLabel("Value", { exact: true }).fill(secretValue);
    await page.getByRole("button", { name: "Save secret" }).click();
    await page.locator('[aria-label="Secret names"] code', { hasText: "API_KEY" }).waitFor();
    expect(await page.getByLabel("Value", { exact: true }).inputValue()).toBe("");
    await page.getByRole("button", { name: "Enable keyed" }).click();
    const card = page.locator('[aria-label="Enabled servers"] [data-server="keyed"]');
    await card.locator(".badge", { hasText: "Running" }).waitFor({ timeout: 30_000 });
    const container = await aliceContainer("keyed");
    const inspect = await docker.getContainer(container!.Id).inspect();
    expect(inspect.Config.Env).toContain(`API_KEY=${secretValue}`);

    await page.getByRole("link", { name: "Monitor" }).click();
    await page.getByRole("button", { name: "Show log of keyed" }).click();
    const log = page.getByLabel("Log lines of keyed");
    await log.getByText("starting with key=[redacted API_KEY]").waitFor({ timeout: 15_000 });
    await checkScreen(page, "monitor-log");
    const everything = await page.evaluate<string>(
      "document.documentElement.outerHTML + [...document.querySelectorAll('input, textarea')].map((e) => e.value).join(' ') + JSON.stringify(sessionStorage)",
    );
    expect(everything).toContain("[redacted API_KEY]");
    expect(everything).not.toContain(secretValue);

    // The container dies; the controller starts it again and the monitor counts the restart, without a reload.
    await page.evaluate("window.__sameDocument = true");
    const row = page.locator('tr[data-server="keyed"]');
    expect(await row.locator("td").nth(4).textContent()).toBe("0");
    await docker.getContainer(container!.Id).kill();
    await waitFor(
      "the restart counted on the page",
      async () => (await row.locator("td").nth(4).textContent()) === "1",
      30_000,
    );
    await row.locator(".badge", { hasText: "Running" }).waitFor();
    expect(await page.evaluate("window.__sameDocument")).toBe(true);
    await page.close();
  });

  it("lets the admin fix a base catalog: invalid uploads show problems inline and write nothing; a valid one is previewed, then saved", async () => {
    const page = await signIn(ADMIN);
    await page.getByRole("link", { name: "Catalogs" }).click();
    await page.getByRole("button", { name: "Edit main" }).click();
    const editor = page.getByLabel("Catalog JSON");
    await waitFor("the catalog text", async () => (await editor.inputValue()).includes('"keyed"'));
    const file = path.join(data.root, "catalogs/base/main.json");
    const before = await readFile(file, "utf8");
    const catalog = JSON.parse(before) as { servers: Record<string, unknown>[] };

    await editor.fill(
      JSON.stringify({ ...catalog, servers: [{ ...catalog.servers[0], image: "" }] }, null, 2),
    );
    await page.getByRole("button", { name: "Save catalog" }).click();
    const problems = page.locator("#catalog-problems");
    await problems.waitFor();
    expect(await problems.textContent()).toContain("catalogs/base/main.json: $.servers[0].image:");
    expect(await readFile(file, "utf8")).toBe(before);

    // Valid as a file, but it would withdraw a server alice runs: the cross-file check refuses it (422).
    await editor.fill(
      JSON.stringify({ ...catalog, servers: catalog.servers.filter((s) => s.id !== "keyed") }, null, 2),
    );
    await page.getByRole("button", { name: "Save catalog" }).click();
    await page.locator("#catalog-problems").getByText("users/alice/enabled-servers.json").waitFor();
    expect(await readFile(file, "utf8")).toBe(before);
    await checkScreen(page, "catalogs-problems");

    await editor.fill("{ not json");
    await page.getByRole("button", { name: "Save catalog" }).click();
    await page
      .locator("#catalog-problems")
      .getByText(/catalogs\/base\/main\.json: line 1, column \d+: invalid JSON/)
      .waitFor();

    // A valid change: a new server, and keyed (which alice runs) gets an environment variable. The preview names
    // alice and the replace it causes; then the catalog is saved.
    const extra = { id: "extra", name: "extra", image: "mcp-portal-test/busybox", tag: "1", category: "new" };
    const servers = catalog.servers.map((s) =>
      s.id === "keyed" ? { ...s, environment: { MODE: "preview" } } : s,
    );
    await editor.fill(JSON.stringify({ ...catalog, servers: [...servers, extra] }, null, 2));
    await page.getByRole("button", { name: "Preview changes" }).click();
    const previewed = page.locator('[data-preview-user="alice"]');
    await previewed.waitFor({ timeout: 30_000 });
    expect(await previewed.textContent()).toMatch(/keyed.*changed: /s);
    expect(await page.locator("[data-preview-user]").count()).toBe(1);
    expect(await readFile(file, "utf8")).toBe(before);
    await checkScreen(page, "catalogs-preview");
    await page.getByRole("button", { name: "Save catalog" }).click();
    await page.getByText(/^Saved catalogs\/base\/main\.json/).waitFor();
    const stored = JSON.parse(await readFile(file, "utf8")) as { servers: unknown[] };
    expect(stored.servers).toContainEqual(extra);

    const yaml = await readFile(path.join(REPO, "test/fixtures/docker-mcp/catalog.yaml"), "utf8");
    await page.getByLabel("Catalog to import").fill(yaml);
    await page.getByRole("button", { name: "Dry run" }).click();
    await page.getByText(/^Dry run: \d+ imported, \d+ skipped/).waitFor();
    await checkScreen(page, "catalogs");
    await page.close();
  });

  it("shows the admin every user in the monitor and the users overview", async () => {
    const page = await signIn(ADMIN);
    await page.getByRole("link", { name: "Monitor" }).click();
    await page.locator('section[data-user="alice"]').waitFor();
    await page.locator('section[data-user="bob"]').waitFor();
    await checkScreen(page, "monitor-all-users");
    await page.getByRole("link", { name: "Users" }).click();
    await page.locator('tr[data-user="alice"]').getByText("Ready").waitFor({ timeout: 30_000 });
    await page.locator('tr[data-user="bob"]').getByText("Suspended").waitFor();
    await checkScreen(page, "users");
    await page.close();
  });

  it("disables every write control in read-only mode and says why", async () => {
    const page = await signIn(ADMIN, readOnlyBase);
    await page.goto(`${readOnlyBase}/#/dashboard/alice`);
    await page.getByRole("heading", { name: "Dashboard: alice" }).waitFor();
    const banner = page.locator("#read-only-note");
    expect(await banner.textContent()).toContain("read-only (--read-only-api)");
    await page.getByRole("button", { name: "Save secret" }).waitFor();
    await page.locator('[aria-label="Catalog servers"] button').first().waitFor();
    const writes = page.locator('button[aria-describedby="read-only-note"]');
    expect(await writes.count()).toBeGreaterThan(3);
    for (const button of await writes.all()) expect(await button.isDisabled()).toBe(true);
    const enable = page.locator('[aria-label="Catalog servers"] button').first();
    expect(await enable.getAttribute("title")).toContain("read-only");
    await checkScreen(page, "read-only");
    await page.close();
  });

  it("is usable at 360 px wide: no page-wide horizontal scrolling on any screen", async () => {
    const page = await signIn(ADMIN);
    await page.setViewportSize({ width: 360, height: 740 });
    for (const [hash, content] of [
      ["#/dashboard/alice", '[aria-label="Catalog servers"] li'],
      ["#/monitor/alice", 'section[data-user="alice"] h3'],
      ["#/catalogs", "tr[data-catalog]"],
      ["#/users", "tr[data-user]"],
    ] as const) {
      await page.goto(`${base}/${hash}`);
      await page.locator(content).first().waitFor();
      const width = await page.evaluate<number>("document.documentElement.scrollWidth");
      expect(width, hash).toBeLessThanOrEqual(360);
    }
    await page.goto(`${base}/#/dashboard/alice`);
    await page.getByRole("heading", { name: "Dashboard: alice" }).waitFor();
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, "dashboard-360px.png"), fullPage: false });
    await page.close();
  });

  it("made no request beyond loopback and broke no Content-Security-Policy rule", () => {
    expect(requests.length).toBeGreaterThan(20);
    const away = requests.filter((url) => {
      const { protocol, hostname } = new URL(url);
      return !(protocol === "data:" || protocol === "about:" || hostname === "127.0.0.1");
    });
    expect(away).toEqual([]);
    expect(cspViolations).toEqual([]);
  });
});
