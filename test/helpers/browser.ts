// Debian's chromium, driven headless through playwright-core (no browser download): for the console's browser tests.
import { access, constants, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { describe } from "vitest";

export const CHROMIUM_PATH = process.env.MCP_PORTAL_CHROMIUM ?? "/usr/bin/chromium";

/** No network of its own: no updates, sync, QUIC, first-run pages or background fetches. */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function chromiumInstalled(): Promise<boolean> {
  try {
    await access(CHROMIUM_PATH, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const installed = await chromiumInstalled();
if (!installed && process.env.CI === "true") {
  // On CI a missing browser is a failure, never a skip (scripts/ensure-docker.sh installs it).
  throw new Error(
    `chromium is not installed at ${CHROMIUM_PATH}: the console's browser tests must run on CI`,
  );
}

/** `describe` when chromium is installed, `describe.skip` otherwise (never skips on CI). */
export const describeBrowser = installed ? describe : describe.skip;

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A fresh headless chromium with a profile of its own, removed on close. */
export async function launchBrowser(viewport = { width: 1280, height: 900 }): Promise<Browser> {
  const profile = await mkdtemp(path.join(tmpdir(), "mcp-portal-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport,
    timeout: 60_000,
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}
