import { replacementName } from "../desired/names.js";
import { gatewayOf, parseIpv4Cidr } from "../desired/subnets.js";
import type { ContainerSpec, RunOutcome } from "../desired/types.js";
import { type ContainerRuntime, isRuntimeError } from "../docker/runtime.js";
import { LABELS, isOwnedBy, ownerLabels } from "../labels.js";
import type { AuditEventType, AuditWriter } from "../observability/audit.js";
import type { Logger } from "../observability/logger.js";
import type { DriftKind, Metrics } from "../observability/metrics.js";
import type { NetworkAllocator } from "./allocator.js";
import type { Clock } from "./clock.js";
import { ImagePullBackOffError, type ImagePuller } from "./image-puller.js";
import type { PlanStep } from "./plan.js";
import type { StartBackoff } from "./start-backoff.js";

export interface ApplyDeps {
  runtime: ContainerRuntime;
  allocator: NetworkAllocator;
  images: ImagePuller;
  starts: StartBackoff;
  audit: AuditWriter;
  metrics: Metrics;
  clock: Clock;
  installation: string;
  stopTimeoutSeconds: number;
}

/** What happened to one server during apply; absent servers were not touched. */
export interface ServerApplyResult {
  phase: "Running" | "Pending" | "Failed" | "Blocked";
  reason?: string;
  message?: string;
  containerId?: string;
  containerName?: string;
}

export interface ApplyResult {
  servers: Map<string, ServerApplyResult>;
  mutations: number;
  network?: { id: string; name: string; subnet: string };
  /** A user-level failure (network missing or in conflict): nothing else could proceed. */
  userError?: { reason: string; message: string };
  requeueAfterMs?: number;
  /** Errors that should make the work queue back off (engine trouble), after everything else was tried. */
  retryable: unknown[];
}

class ConflictError extends Error {
  readonly code = "NameConflict";
}

/**
 * Carries out a plan step by step. Each mutation is logged, audited and (through the instrumented runtime)
 * counted; one server's failure never stops the others.
 */
export class PlanApplier {
  constructor(private readonly deps: ApplyDeps) {}

  async apply(
    userId: string,
    steps: readonly PlanStep[],
    portBlockStart: number | undefined,
    log: Logger,
    signal: AbortSignal,
  ): Promise<ApplyResult> {
    const result: ApplyResult = { servers: new Map(), mutations: 0, retryable: [] };
    const mutate = this.mutator(userId, log, result);
    for (const step of steps) {
      if (signal.aborted) break;
      if (result.userError && step.kind !== "removeContainer") continue;
      try {
        await this.applyStep(userId, step, portBlockStart, mutate, result);
      } catch (error) {
        this.recordFailure(step, error, result, log);
      }
    }
    return result;
  }

  private async applyStep(
    userId: string,
    step: PlanStep,
    portBlockStart: number | undefined,
    mutate: Mutator,
    result: ApplyResult,
  ): Promise<void> {
    const { runtime } = this.deps;
    switch (step.kind) {
      case "createNetwork": {
        result.network = await this.createNetwork(userId, step.name, step.bridgeName, portBlockStart, mutate);
        this.drift("missing_network");
        return;
      }
      case "createVolume":
        await mutate("VOLUME_OPERATION", "create_volume", step.volume.name, { cause: step.cause }, () =>
          runtime.createVolume({ name: step.volume.name, labels: step.volume.labels }),
        );
        return;
      case "removeNetwork":
        await mutate(
          "NETWORK_OPERATION",
          "remove_network",
          step.network.name,
          { cause: step.cause },
          async () => {
            try {
              await runtime.removeNetwork(step.network.id);
            } catch (error) {
              if (!isRuntimeError(error, "NotFound")) throw error;
            }
          },
        );
        this.deps.allocator.release(userId);
        return;
      case "removeContainer":
        await this.stopAndRemove(step.container.id, step.container.name, step.serverId, step.cause, mutate);
        if (!step.prune) this.drift("orphan_container");
        return;
      case "startContainer":
        await this.start(
          userId,
          step.serverId,
          step.container.id,
          step.container.name,
          step.cause,
          mutate,
          result,
        );
        this.drift("stopped_container");
        return;
      case "renameContainer":
        await this.rename(
          step.container.id,
          step.container.name,
          step.name,
          step.serverId,
          step.cause,
          mutate,
        );
        result.servers.set(step.serverId, {
          phase: "Running",
          containerId: step.container.id,
          containerName: step.name,
        });
        return;
      case "createContainer": {
        await this.ensureImage(step.outcome, mutate);
        const id = await this.create(
          step.outcome.spec,
          step.outcome.spec.name,
          step.serverId,
          step.cause,
          mutate,
        );
        await this.start(userId, step.serverId, id, step.outcome.spec.name, "new container", mutate, result);
        return;
      }
      case "replaceContainer": {
        await this.ensureImage(step.outcome, mutate);
        const spec = step.outcome.spec;
        const temp = replacementName(spec.name, step.outcome.specHash);
        const id = await this.create(spec, temp, step.serverId, step.cause, mutate);
        await this.stopAndRemove(
          step.old.id,
          step.old.name,
          step.serverId,
          `replaced: ${step.cause}`,
          mutate,
        );
        await this.rename(id, temp, spec.name, step.serverId, "take over the final name", mutate);
        await this.start(userId, step.serverId, id, spec.name, step.cause, mutate, result);
        this.drift("spec_changed");
        return;
      }
    }
  }

  private async createNetwork(
    userId: string,
    name: string,
    bridgeName: string,
    portBlockStart: number | undefined,
    mutate: Mutator,
  ): Promise<{ id: string; name: string; subnet: string }> {
    const { runtime, allocator, installation } = this.deps;
    const labels: Record<string, string> = {
      ...ownerLabels(installation, userId),
      [LABELS.networkType]: "user_isolation",
    };
    if (portBlockStart !== undefined) labels[LABELS.portBlock] = String(portBlockStart);
    for (let attempt = 0; attempt < 3; attempt++) {
      const subnet = allocator.subnetFor(userId);
      const cidr = subnet ? parseIpv4Cidr(subnet) : undefined;
      if (!subnet || !cidr)
        throw new UserLevelError("SubnetPoolExhausted", "no free subnet left in the user network pool");
      try {
        const id = await mutate(
          "NETWORK_OPERATION",
          "create_network",
          name,
          { subnet, cause: "network missing" },
          () =>
            runtime.createNetwork({
              name,
              bridgeName,
              subnet,
              gateway: gatewayOf(cidr),
              labels,
            }),
        );
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
        allocator.forgetSubnet(userId, subnet);
        if (attempt === 2) throw error;
      }
    }
    throw new UserLevelError("NetworkCreateFailed", `could not create network ${name}`);
  }

  private async ensureImage(outcome: RunOutcome, mutate: Mutator): Promise<void> {
    const image = outcome.spec.image;
    const { pulled } = await this.deps.images.ensure(image);
    if (pulled)
      await mutate(
        "CONTAINER_OPERATION",
        "pull_image",
        image,
        { server_id: outcome.serverId },
        async () => {},
      );
  }

  private async create(
    spec: ContainerSpec,
    name: string,
    serverId: string,
    cause: string,
    mutate: Mutator,
  ): Promise<string> {
    const { runtime, installation } = this.deps;
    const details = {
      server_id: serverId,
      image: spec.image,
      host_port: spec.hostPort,
      spec_hash: spec.labels[LABELS.specHash],
      cause,
    };
    const attempt = () =>
      mutate("CONTAINER_OPERATION", "create_container", name, details, () =>
        runtime.createContainer(spec, name),
      );
    try {
      return await attempt();
    } catch (error) {
      if (!isRuntimeError(error, "Conflict")) throw error;
      const existing = await runtime.findContainerByName(name);
      if (!existing) throw error;
      if (!isOwnedBy(existing.labels, installation)) {
        throw new ConflictError(
          `a container named ${name} exists but is not managed by this installation; it is left alone`,
        );
      }
      // Our own leftover (an interrupted replace): it was never started under this name, so it can go.
      await this.stopAndRemove(existing.id, name, serverId, "leftover from an interrupted step", mutate);
      return attempt();
    }
  }

  private async start(
    userId: string,
    serverId: string,
    id: string,
    name: string,
    cause: string,
    mutate: Mutator,
    result: ApplyResult,
  ): Promise<void> {
    // Keyed by container: a container that keeps exiting backs off; a new one (after `docker rm -f`, or a
    // replace) starts at once.
    const key = id;
    const wait = this.deps.starts.waitMs(key);
    if (wait > 0) {
      result.servers.set(serverId, {
        phase: "Failed",
        reason: "CrashLoopBackOff",
        message: `container keeps exiting soon after start; next start in ${Math.ceil(wait / 1000)} s`,
        containerId: id,
        containerName: name,
      });
      result.requeueAfterMs = Math.min(result.requeueAfterMs ?? Infinity, wait);
      return;
    }
    await mutate("CONTAINER_OPERATION", "start_container", name, { server_id: serverId, cause }, async () => {
      try {
        await this.deps.runtime.startContainer(id);
      } catch (error) {
        if (!isRuntimeError(error, "NotModified")) throw error;
      }
    });
    this.deps.starts.recordStart(key);
    result.servers.set(serverId, { phase: "Running", containerId: id, containerName: name });
  }

  private async stopAndRemove(
    id: string,
    name: string,
    serverId: string,
    cause: string,
    mutate: Mutator,
  ): Promise<void> {
    const { runtime, stopTimeoutSeconds } = this.deps;
    this.deps.starts.forget(id);
    await mutate("CONTAINER_OPERATION", "stop_container", name, { server_id: serverId, cause }, async () => {
      try {
        await runtime.stopContainer(id, stopTimeoutSeconds);
      } catch (error) {
        if (!isRuntimeError(error, "NotModified") && !isRuntimeError(error, "NotFound")) throw error;
      }
    });
    await mutate(
      "CONTAINER_OPERATION",
      "remove_container",
      name,
      { server_id: serverId, cause },
      async () => {
        try {
          await runtime.removeContainer(id);
        } catch (error) {
          if (!isRuntimeError(error, "NotFound")) throw error;
        }
      },
    );
  }

  private async rename(
    id: string,
    from: string,
    to: string,
    serverId: string,
    cause: string,
    mutate: Mutator,
  ): Promise<void> {
    try {
      await mutate("CONTAINER_OPERATION", "rename_container", from, { server_id: serverId, to, cause }, () =>
        this.deps.runtime.renameContainer(id, to),
      );
    } catch (error) {
      if (isRuntimeError(error, "Conflict")) {
        throw new ConflictError(`cannot take the name ${to}: another container holds it`);
      }
      throw error;
    }
  }

  private drift(kind: DriftKind): void {
    this.deps.metrics.driftCorrectionsTotal.inc({ kind });
  }

  private recordFailure(step: PlanStep, error: unknown, result: ApplyResult, log: Logger): void {
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
    if (error instanceof ConflictError) {
      if (serverId) result.servers.set(serverId, { phase: "Blocked", reason: "NameConflict", message });
      result.requeueAfterMs = Math.min(result.requeueAfterMs ?? Infinity, 60_000);
      return;
    }
    log.warn({ step: step.kind, server_id: serverId, err: message }, "plan step failed");
    if (serverId) {
      const reason =
        step.kind === "createContainer" || step.kind === "replaceContainer" ? "CreateFailed" : "StartFailed";
      result.servers.set(serverId, { phase: "Failed", reason, message });
    } else {
      result.userError = { reason: "NetworkCreateFailed", message };
    }
    result.retryable.push(error);
  }

  private mutator(userId: string, log: Logger, result: ApplyResult): Mutator {
    const { audit, clock } = this.deps;
    return async <T>(
      eventType: AuditEventType,
      action: string,
      resource: string,
      details: Record<string, unknown>,
      fn: () => Promise<T>,
    ): Promise<T> => {
      const started = clock.now();
      try {
        const value = await fn();
        result.mutations++;
        log.info(
          { action, resource, ...details, duration_ms: clock.now() - started },
          `${action} ${resource}`,
        );
        void audit.write({
          event_type: eventType,
          user_id: userId,
          action,
          resource,
          result: "success",
          details,
        });
        return value;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log.warn({ action, resource, ...details, err: message }, `${action} ${resource} failed`);
        void audit.write({
          event_type: eventType,
          user_id: userId,
          action,
          resource,
          result: "failure",
          details: { ...details, error: message },
        });
        throw error;
      }
    };
  }
}

type Mutator = <T>(
  eventType: AuditEventType,
  action: string,
  resource: string,
  details: Record<string, unknown>,
  fn: () => Promise<T>,
) => Promise<T>;

class UserLevelError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}
