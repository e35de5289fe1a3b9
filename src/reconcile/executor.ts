import { EGRESS_PROXY_KEY } from "../desired/egress-desired.js";
import { gatewayOf, parseIpv4Cidr } from "../desired/subnets.js";
import { EGRESS_NETWORK_TYPE } from "./allocator.js";
import { addressingFor } from "./addressing.js";
import type { AuditedRuntime, MutationScope } from "../docker/audited-runtime.js";
import { type Placement, isRuntimeError } from "../docker/runtime.js";
import type { PortRange } from "../desired/port-blocks.js";
import { LABELS, isOwnedBy, ownerLabels, portBlockLabel } from "../labels.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { NetworkAllocator } from "./allocator.js";
import { ImagePullBackOffError, type ImagePuller } from "./image-puller.js";
import { type ContainerRef, type PlanStep, stepResource } from "./plan.js";
import type { StartBackoff } from "./start-backoff.js";

export interface ExecutorDeps {
  /** Every mutation goes through it: logged, audited, counted (and, below it, measured). */
  runtime: AuditedRuntime;
  allocator: NetworkAllocator;
  images: ImagePuller;
  starts: StartBackoff;
  metrics: Metrics;
  installation: string;
  stopTimeoutSeconds: number;
  /**
   * Reads a stopped egress proxy's last denial lines before its removal takes its log (absent where no proxies
   * run, e.g. on Swarm). Its failure does not hold the removal: the lines are lost and a warning says so.
   */
  egressDenials?: { drain(containerId: string, containerName: string, userId: string): Promise<unknown> };
}

/** What happened to one server; absent servers were not touched. */
export interface ServerExecution {
  phase: "Running" | "Pending" | "Failed" | "Blocked";
  reason?: string;
  message?: string;
  containerId?: string;
  containerName?: string;
}

export interface ExecutionResult {
  servers: Map<string, ServerExecution>;
  mutations: number;
  network?: { id: string; name: string; subnet: string };
  /** The user's egress network, when this run created it. */
  egressNetwork?: { id: string; name: string; subnet: string };
  /** A user-level failure (network missing or in conflict): nothing else could proceed. */
  userError?: { reason: string; message: string };
  requeueAfterMs?: number;
  /** Errors that should make the work queue back off (engine trouble), after everything else was tried. */
  retryable: unknown[];
}

export interface ExecutionContext {
  userId: string;
  log: Logger;
  signal: AbortSignal;
  /** Recorded on a new network (`port_block` label): the user's port block. */
  portBlock: PortRange | undefined;
}

class ConflictError extends Error {
  readonly code = "NameConflict";
}

/** A failure that stops every later step of the user (its network could not be made). */
class UserLevelError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Carries out a plan, one engine call per step. A failed step stops the rest of its server's steps (a replace
 * half done is finished by the next reconcile, which sees it); other servers go on. The engine's answers that a
 * plan cannot foresee are handled here: a name held by someone else, a subnet taken meanwhile, an image that
 * cannot be pulled, a volume name that belongs to another owner.
 */
export class Executor {
  constructor(private readonly deps: ExecutorDeps) {}

  async execute(steps: readonly PlanStep[], ctx: ExecutionContext): Promise<ExecutionResult> {
    const result: ExecutionResult = { servers: new Map(), mutations: 0, retryable: [] };
    const scope: MutationScope = { userId: ctx.userId, log: ctx.log, counter: { mutations: 0 } };
    const created = new Map<string, string>();
    const failedServers = new Set<string>();
    const foreignVolumes = new Set<string>();
    for (const step of steps) {
      if (ctx.signal.aborted) break;
      const serverId = "serverId" in step ? step.serverId : undefined;
      if (serverId !== undefined && failedServers.has(serverId)) continue;
      if (result.userError && step.kind !== "removeContainer" && step.kind !== "stopContainer") continue;
      const runtime = this.deps.runtime.bind(scope, {
        resource: stepResource(step),
        details: { cause: step.cause, ...(serverId !== undefined ? { server_id: serverId } : {}) },
      });
      try {
        await this.run(step, runtime, ctx, result, created, foreignVolumes);
        if ("drift" in step && step.drift) this.deps.metrics.driftCorrectionsTotal.inc({ kind: step.drift });
      } catch (error) {
        if (serverId !== undefined) failedServers.add(serverId);
        this.recordFailure(step, error, result, ctx.log);
      }
    }
    result.mutations = scope.counter.mutations;
    return result;
  }

  private async run(
    step: PlanStep,
    runtime: AuditedRuntime,
    ctx: ExecutionContext,
    result: ExecutionResult,
    created: Map<string, string>,
    foreignVolumes: Set<string>,
  ): Promise<void> {
    const resolve = (ref: ContainerRef): string => {
      if (ref.id !== undefined) return ref.id;
      const id = created.get(ref.createdFor);
      if (id === undefined) throw new Error(`no container was created for ${ref.createdFor}`);
      return id;
    };
    switch (step.kind) {
      case "createNetwork":
        if (step.role === "egress")
          result.egressNetwork = await this.createNetwork(ctx, step.name, step.bridgeName, runtime, true);
        else result.network = await this.createNetwork(ctx, step.name, step.bridgeName, runtime);
        return;
      case "removeNetwork":
        try {
          await runtime.removeNetwork(step.network.id);
        } catch (error) {
          if (!isRuntimeError(error, "NotFound")) throw error;
        }
        if (step.prune) this.deps.allocator.release(ctx.userId);
        else if (step.network.labels[LABELS.networkType] === EGRESS_NETWORK_TYPE)
          this.deps.allocator.releaseEgress(ctx.userId);
        return;
      case "createVolume": {
        const volume = await runtime.createVolume({ name: step.volume.name, labels: step.volume.labels });
        if (!sameOwner(volume.labels, step.volume.labels)) {
          // The engine handed back a volume of that name that someone else owns: never mount it.
          foreignVolumes.add(step.volume.name);
          ctx.log.error({ volume: step.volume.name }, "a volume of this name exists with another owner");
        }
        return;
      }
      case "pullImage":
        await this.deps.images.ensure(step.image, runtime);
        return;
      case "createContainer": {
        const conflict = step.outcome.spec.mounts.find((m) => foreignVolumes.has(m.volumeName));
        if (conflict) {
          throw new VolumeConflictError(
            `volume ${conflict.volumeName} exists but belongs to another owner; it is not mounted`,
          );
        }
        const subnets = { ...step.subnets };
        for (const made of [result.network, result.egressNetwork])
          if (made && subnets[made.name] === undefined) subnets[made.name] = made.subnet;
        const addressing = addressingFor(step.outcome.spec, subnets);
        if (!addressing.ok) throw new Error(addressing.reason);
        const placement: Placement | undefined =
          step.placement !== undefined || addressing.value !== undefined
            ? {
                ...(step.placement !== undefined ? { nodeId: step.placement } : {}),
                ...(addressing.value !== undefined ? { addressing: addressing.value } : {}),
              }
            : undefined;
        created.set(step.serverId, await this.create(step.outcome.spec, step.name, runtime, placement));
        return;
      }
      case "updateContainer": {
        const conflict = step.outcome.spec.mounts.find((m) => foreignVolumes.has(m.volumeName));
        if (conflict) {
          throw new VolumeConflictError(
            `volume ${conflict.volumeName} exists but belongs to another owner; it is not mounted`,
          );
        }
        const placement = step.placement !== undefined ? { nodeId: step.placement } : undefined;
        await runtime.updateContainer(
          step.container.id,
          step.container.version,
          step.outcome.spec,
          placement,
        );
        result.servers.set(step.serverId, {
          phase: "Running",
          containerId: step.container.id,
          containerName: step.container.name,
        });
        return;
      }
      case "startContainer": {
        const id = resolve(step.container);
        try {
          await runtime.startContainer(id);
        } catch (error) {
          if (!isRuntimeError(error, "NotModified")) throw error;
        }
        this.deps.starts.recordStart(id);
        result.servers.set(step.serverId, {
          phase: "Running",
          containerId: id,
          containerName: step.container.name,
        });
        return;
      }
      case "stopContainer": {
        const id = resolve(step.container);
        try {
          await runtime.stopContainer(id, this.deps.stopTimeoutSeconds);
        } catch (error) {
          if (!isRuntimeError(error, "NotModified") && !isRuntimeError(error, "NotFound")) throw error;
        }
        // We stopped it for idleness, it did not die: its wake is no quick death for the crash-loop backoff.
        if (step.idle) this.deps.starts.forget(id);
        return;
      }
      case "removeContainer": {
        const id = resolve(step.container);
        this.deps.starts.forget(id);
        if (step.serverId === EGRESS_PROXY_KEY && this.deps.egressDenials) {
          try {
            await this.deps.egressDenials.drain(id, step.container.name, ctx.userId);
          } catch (error) {
            ctx.log.warn(
              { err: error, container: step.container.name },
              "egress denials: the proxy's last lines could not be read before its removal; they are lost",
            );
          }
        }
        try {
          await runtime.removeContainer(id);
        } catch (error) {
          if (!isRuntimeError(error, "NotFound")) throw error;
        }
        return;
      }
      case "renameContainer": {
        const id = resolve(step.container);
        try {
          await runtime.renameContainer(id, step.to);
        } catch (error) {
          if (isRuntimeError(error, "Conflict"))
            throw new ConflictError(`cannot take the name ${step.to}: another container holds it`);
          throw error;
        }
        result.servers.set(step.serverId, { phase: "Running", containerId: id, containerName: step.to });
        return;
      }
    }
  }

  private async createNetwork(
    ctx: ExecutionContext,
    name: string,
    bridgeName: string,
    runtime: AuditedRuntime,
    egress = false,
  ): Promise<{ id: string; name: string; subnet: string }> {
    const { allocator, installation } = this.deps;
    const labels: Record<string, string> = {
      ...ownerLabels(installation, ctx.userId),
      [LABELS.networkType]: egress ? EGRESS_NETWORK_TYPE : "user_isolation",
    };
    if (ctx.portBlock !== undefined && !egress) labels[LABELS.portBlock] = portBlockLabel(ctx.portBlock);
    for (let attempt = 0; attempt < 3; attempt++) {
      const subnet = egress ? allocator.egressSubnetFor(ctx.userId) : allocator.subnetFor(ctx.userId);
      const cidr = subnet ? parseIpv4Cidr(subnet) : undefined;
      if (!subnet || !cidr)
        throw new UserLevelError("SubnetPoolExhausted", allocator.subnetPoolExhaustedMessage());
      try {
        const id = await runtime.createNetwork({
          name,
          bridgeName,
          subnet,
          gateway: gatewayOf(cidr),
          labels,
          ...(egress ? { internal: true } : {}),
        });
        return { id, name, subnet };
      } catch (error) {
        if (isRuntimeError(error, "Conflict")) {
          const existing = await runtime.findNetworkByName(name);
          if (existing && !isOwnedBy(existing.labels, installation)) {
            throw new UserLevelError(
              "NameConflict",
              `a network named ${name} exists but is not managed by this installation`,
            );
          }
          if (existing) return { id: existing.id, name, subnet };
        }
        // The subnet may overlap a network created since our last listing: refresh and try the next one.
        const all = await runtime.listNetworks();
        allocator.setForeignSubnets(
          all.filter((n) => !isOwnedBy(n.labels, installation)).flatMap((n) => n.subnets),
        );
        if (egress) allocator.forgetEgressSubnet(ctx.userId, subnet);
        else allocator.forgetSubnet(ctx.userId, subnet);
        if (attempt === 2) throw error;
      }
    }
    throw new UserLevelError("NetworkCreateFailed", `could not create network ${name}`);
  }

  private async create(
    spec: Parameters<AuditedRuntime["createContainer"]>[0],
    name: string,
    runtime: AuditedRuntime,
    placement: Placement | undefined,
  ): Promise<string> {
    try {
      return await runtime.createContainer(spec, name, placement);
    } catch (error) {
      if (!isRuntimeError(error, "Conflict")) throw error;
      const existing = await runtime.findContainerByName(name);
      if (!existing) throw error;
      if (!isOwnedBy(existing.labels, this.deps.installation)) {
        throw new ConflictError(
          `a container named ${name} exists but is not managed by this installation; it is left alone`,
        );
      }
      // Our own leftover (an interrupted replace): it was never started under this name, so it can go.
      this.deps.starts.forget(existing.id);
      try {
        await runtime.stopContainer(existing.id, this.deps.stopTimeoutSeconds);
      } catch (stopError) {
        if (!isRuntimeError(stopError, "NotModified") && !isRuntimeError(stopError, "NotFound"))
          throw stopError;
      }
      await runtime.removeContainer(existing.id);
      return runtime.createContainer(spec, name, placement);
    }
  }

  private recordFailure(step: PlanStep, error: unknown, result: ExecutionResult, log: Logger): void {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof UserLevelError) {
      // Every later step of this user waits for it: say so, or the reconcile ends with no word on why.
      log.warn({ step: step.kind, reason: error.reason, err: message }, "user-level step failed");
      result.userError = { reason: error.reason, message };
      return;
    }
    const serverId = "serverId" in step ? step.serverId : undefined;
    if (error instanceof ImagePullBackOffError) {
      if (serverId) result.servers.set(serverId, { phase: "Pending", reason: "ImagePullBackOff", message });
      result.requeueAfterMs = Math.min(result.requeueAfterMs ?? Infinity, error.retryInMs);
      return;
    }
    if (error instanceof ConflictError || error instanceof VolumeConflictError) {
      const reason = error instanceof ConflictError ? "NameConflict" : "VolumeConflict";
      if (serverId) result.servers.set(serverId, { phase: "Blocked", reason, message });
      result.requeueAfterMs = Math.min(result.requeueAfterMs ?? Infinity, 60_000);
      return;
    }
    log.warn({ step: step.kind, server_id: serverId, err: message }, "plan step failed");
    if (serverId) {
      const reason =
        step.kind === "createContainer" || step.kind === "pullImage"
          ? "CreateFailed"
          : step.kind === "updateContainer"
            ? "UpdateFailed"
            : "StartFailed";
      result.servers.set(serverId, { phase: "Failed", reason, message });
    } else if (step.kind === "createNetwork") {
      result.userError = { reason: "NetworkCreateFailed", message };
    }
    result.retryable.push(error);
  }
}

class VolumeConflictError extends Error {
  readonly code = "VolumeConflict";
}

/** The volume the engine returned is the one we asked for: same installation, user, area and path labels. */
function sameOwner(
  actual: Readonly<Record<string, string>>,
  wanted: Readonly<Record<string, string>>,
): boolean {
  for (const key of [
    LABELS.managedBy,
    LABELS.installation,
    LABELS.userId,
    LABELS.volumeArea,
    LABELS.volumePath,
  ]) {
    if (actual[key] !== wanted[key]) return false;
  }
  return true;
}
