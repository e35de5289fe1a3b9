// vitest globalSetup: decides once whether the Docker Engine answers and hands the answer to every test file;
// at teardown removes whatever this run's test installations left behind.
import { randomBytes } from "node:crypto";
import Docker from "dockerode";
import type { TestProject } from "vitest/node";
import { cleanupWhere, runInstallationPrefix } from "./helpers/docker-objects.js";

const PING_TIMEOUT_MS = 5_000;

async function engineAnswers(docker: Docker): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
  });
  try {
    await Promise.race([docker.ping(), timeout]);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    clearTimeout(timer);
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const docker = new Docker(); // honours DOCKER_HOST
  const runId = randomBytes(4).toString("hex");
  const failure = await engineAnswers(docker);
  const available = failure === undefined;

  if (!available) {
    const where = process.env.DOCKER_HOST ?? "/var/run/docker.sock";
    if (process.env.CI === "true") {
      throw new Error(
        `Docker Engine at ${where} does not answer (${failure}); CI must run the integration tests`,
      );
    }
    console.warn(
      `[global-setup] Docker Engine at ${where} does not answer (${failure}); Docker tests are skipped`,
    );
  }

  project.provide("dockerAvailable", available);
  project.provide("testRunId", runId);

  return async () => {
    if (!available) return;
    const prefix = runInstallationPrefix(runId);
    const left = await cleanupWhere(docker, (installation) => installation.startsWith(prefix));
    if (left.containers + left.networks + left.volumes > 0) {
      console.warn(
        `[global-setup] removed leftovers of ${prefix}*: ${left.containers} containers, ` +
          `${left.networks} networks, ${left.volumes} volumes`,
      );
    }
  };
}
