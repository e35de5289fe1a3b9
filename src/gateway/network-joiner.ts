import type Docker from "dockerode";
import type { ContainerRuntime } from "../docker/runtime.js";
import { toRuntimeError } from "../docker/dockerode-runtime.js";
import { LABELS, ownerFilters } from "../labels.js";
import type { Logger } from "../observability/logger.js";

/*
 * A node gateway reaches the HTTP servers on its node by their overlay addresses, so its own container must be
 * on each user's overlay: the users' networks are attachable, and `network connect` (unlike adding a network to a
 * service) restarts nothing. It joins the overlays of the servers running on its node and leaves the ones no
 * server on its node uses any more, so it never stays on the network of a user who moved away.
 */
export class NetworkJoiner {
  private joined = new Set<string>();

  constructor(
    private readonly docker: Docker,
    private readonly runtime: ContainerRuntime,
    private readonly options: { installation: string; self: string; logger: Logger },
  ) {}

  /** One listing of local containers, then the connects and disconnects it calls for. */
  async sync(): Promise<void> {
    const { installation, self, logger } = this.options;
    const containers = await this.runtime.listContainers(ownerFilters(installation));
    const wanted = new Set<string>();
    for (const c of containers) {
      if (c.labels[LABELS.serverId] === undefined) continue;
      for (const id of c.networkIds) wanted.add(id);
    }
    for (const id of wanted) {
      if (this.joined.has(id)) continue;
      try {
        await this.docker.getNetwork(id).connect({ Container: self });
        logger.info({ network_id: id }, "node gateway joined a user network");
      } catch (error) {
        const e = toRuntimeError("connect network", error);
        // 403 "already exists in network": joined before (a restart of this gateway).
        if (e.statusCode !== 403) {
          logger.warn({ network_id: id, err: e.message }, "cannot join a user network");
          continue;
        }
      }
      this.joined.add(id);
    }
    for (const id of [...this.joined]) {
      if (wanted.has(id)) continue;
      try {
        await this.docker.getNetwork(id).disconnect({ Container: self, Force: true });
      } catch (error) {
        const e = toRuntimeError("disconnect network", error);
        // Gone already: the network was removed, or Docker dropped the endpoint with the last local task.
        if (e.code !== "NotFound" && e.statusCode !== 403 && !/is not connected/.test(e.message)) {
          logger.warn({ network_id: id, err: e.message }, "cannot leave a user network");
          continue;
        }
      }
      this.joined.delete(id);
      logger.info({ network_id: id }, "node gateway left a user network");
    }
  }
}
