// Test-side Docker helpers: whether the engine answers (decided once by test/global-setup.ts),
// describe-or-skip, and unique installation names so tests never touch objects they did not create.
import { randomBytes } from "node:crypto";
import { describe, inject } from "vitest";
import { runInstallationPrefix } from "./docker-objects.js";

export * from "./docker-objects.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The Docker Engine (DOCKER_HOST or the default socket) answered a ping in the global setup. */
    dockerAvailable: boolean;
    /** 8 hex chars, one per `vitest run`; every test installation name starts with `test-<runId>-`. */
    testRunId: string;
  }
}

const isCI = process.env.CI === "true";

export function dockerAvailable(): boolean {
  const available = inject("dockerAvailable");
  // The global setup already fails a CI run without an engine; this keeps a test file from skipping regardless.
  if (!available && isCI) throw new Error("Docker Engine not available on CI: integration tests must run");
  return available;
}

/** `describe` when the engine answers, `describe.skip` otherwise (never skips on CI). */
export const describeDocker = dockerAvailable() ? describe : describe.skip;

/** A fresh installation name, `test-<runId>-<4 hex>`, for a test that needs one of its own. */
export function newTestInstallation(): string {
  return `${runInstallationPrefix(inject("testRunId"))}${randomBytes(2).toString("hex")}`;
}

let processInstallation: string | undefined;

/** The installation name of this test file's process; the same on every call. */
export function testInstallation(): string {
  processInstallation ??= newTestInstallation();
  return processInstallation;
}
