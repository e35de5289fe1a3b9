// The engine's share of a no-op resync: the three list calls the observer makes, through the same adapter (dockerode
// and the runtime's decoding), with nothing of the controller around them.
import { performance } from "node:perf_hooks";
import type Docker from "dockerode";
import { DockerodeRuntime } from "../../src/docker/dockerode-runtime.js";
import { ownerFilters } from "../../src/labels.js";

export interface ListingFloor {
  /** Wall time of each round of the three lists (in parallel, as the observer lists). */
  ms: number[];
  /** This process's CPU time (user + system) of each round. */
  cpuMs: number[];
  containers: number;
}

export async function measureListingFloor(
  docker: Docker,
  installation: string,
  rounds: number,
): Promise<ListingFloor> {
  const runtime = new DockerodeRuntime(docker, { timeoutMs: 30_000 });
  const filters = ownerFilters(installation);
  const ms: number[] = [];
  const cpuMs: number[] = [];
  let containers = 0;
  for (let i = 0; i < rounds; i++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    const [listed] = await Promise.all([
      runtime.listContainers(filters),
      runtime.listNetworks(),
      runtime.listVolumes(filters),
    ]);
    ms.push(performance.now() - start);
    const d = process.cpuUsage(cpu);
    cpuMs.push((d.user + d.system) / 1000);
    containers = listed.length;
  }
  return { ms, cpuMs, containers };
}
