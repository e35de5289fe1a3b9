// Docker names and cleanup shared by the vitest global setup (main process) and the tests (workers).
// Imports nothing from vitest, so the global setup can use it too.
import type Docker from "dockerode";

export const TEST_BUSYBOX_IMAGE = "mcp-portal-test/busybox:1";
export const TEST_NODE_IMAGE = "mcp-portal-test/node:24";
/** uid:gid of the unprivileged user in both test images (`mcp` in busybox, `node` in node). */
export const TEST_IMAGE_USER = "1000:1000";

/**
 * A catalog entry for a stdio server on the test Node image that only waits on its stdin: a place inside a user's
 * network to run probes from (`docker exec … node`). Memory and pids leave room for two Node processes at once.
 */
export function idleNodeServerEntry(
  id: string,
  options: { cpuShares: number; egress?: Record<string, unknown> },
): Record<string, unknown> {
  const [image, tag] = TEST_NODE_IMAGE.split(":") as [string, string];
  return {
    id,
    name: id,
    image,
    tag,
    command: ["node", "-e", "process.stdin.resume()"],
    transport: "stdio",
    resources: { memory_mb: 192, cpu_shares: options.cpuShares, pids_limit: 128 },
    ...(options.egress ? { egress: options.egress } : {}),
  };
}

export const LABEL_MANAGED_BY = "mcp.portal.managed_by";
export const LABEL_INSTALLATION = "mcp.portal.installation";
export const MANAGED_BY_VALUE = "mcp-portal";

/** Every test installation name of one `vitest run` starts with this. */
export function runInstallationPrefix(runId: string): string {
  return `test-${runId}-`;
}

const CALL_TIMEOUT_MS = 30_000;

function statusCode(err: unknown): number | undefined {
  if (typeof err === "object" && err !== null && "statusCode" in err) {
    return typeof err.statusCode === "number" ? err.statusCode : undefined;
  }
  return undefined;
}

/** Runs a removal; "already gone" (404) and "removal already in progress" (409) count as done. */
async function removeQuietly(remove: () => Promise<unknown>): Promise<void> {
  try {
    await remove();
  } catch (err) {
    const code = statusCode(err);
    if (code !== 404 && code !== 409) throw err;
  }
}

export interface CleanupResult {
  containers: number;
  networks: number;
  volumes: number;
}

/**
 * Force-removes containers, then networks, then volumes whose installation label satisfies `matches`.
 * Lists by label key (one call per kind), so objects of other installations are never touched.
 */
export async function cleanupWhere(
  docker: Docker,
  matches: (installation: string) => boolean,
): Promise<CleanupResult> {
  const filters = JSON.stringify({ label: [LABEL_INSTALLATION] });
  const ours = (labels: Record<string, string> | null | undefined): boolean => {
    const value = labels?.[LABEL_INSTALLATION];
    return value !== undefined && matches(value);
  };
  const signal = () => AbortSignal.timeout(CALL_TIMEOUT_MS);

  const containers = (await docker.listContainers({ all: true, filters, abortSignal: signal() })).filter(
    (c) => ours(c.Labels),
  );
  for (const c of containers) {
    await removeQuietly(() =>
      docker.getContainer(c.Id).remove({ force: true, v: true, abortSignal: signal() }),
    );
  }

  const networks = (await docker.listNetworks({ filters, abortSignal: signal() })).filter((n) =>
    ours(n.Labels),
  );
  for (const n of networks) {
    await removeQuietly(() => docker.getNetwork(n.Id).remove({ abortSignal: signal() }));
  }

  const volumeList = await docker.listVolumes({ filters, abortSignal: signal() });
  const volumes = (volumeList.Volumes ?? []).filter((v) => ours(v.Labels));
  for (const v of volumes) {
    await removeQuietly(() => docker.getVolume(v.Name).remove({ force: true, abortSignal: signal() }));
  }

  return { containers: containers.length, networks: networks.length, volumes: volumes.length };
}

/** Force-removes all containers, then networks, then volumes labelled `mcp.portal.installation=<name>`. */
export function cleanupInstallation(docker: Docker, name: string): Promise<CleanupResult> {
  return cleanupWhere(docker, (installation) => installation === name);
}
