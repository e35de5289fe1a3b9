import type Docker from "dockerode";
import { z } from "zod";
import type { ContainerSpec } from "../desired/types.js";
import { LABELS } from "../labels.js";
import { SERVICE_FINGERPRINT_LABEL, serviceFingerprint, serviceSpec } from "../swarm/service-spec.js";
import { dial, networkCreateOptions, toRuntimeError } from "./dockerode-runtime.js";
import { parseRawEventStream } from "./event-stream.js";
import type {
  ActualContainer,
  ActualNetwork,
  ActualNode,
  ActualVolume,
  ContainerRuntime,
  ContainerState,
  EventFilter,
  LogRead,
  NetworkSpec,
  ObjectRef,
  Placement,
  RuntimeCapabilities,
  RuntimeEvent,
  VolumeSpec,
} from "./runtime.js";
import { RuntimeError } from "./runtime.js";

/*
 * The Swarm backend (MCP_PORTAL_BACKEND=swarm, DOCKER_HOST names a manager): a server's workload is a service
 * with one replica, whose tasks give its state; a user's network is an attachable overlay. The controller sees
 * services as it sees containers (same labels, same plan), with `capabilities.inPlaceUpdate`: a changed spec or
 * placement is a service update, never a delete and recreate. Restarts belong to Swarm; the task history says
 * when a service keeps failing. Listing the fleet is two calls (services, tasks) whatever the number of services.
 */

export interface SwarmRuntimeOptions {
  /** Upper bound for every call. */
  timeoutMs: number;
  restartDelayMs: number;
  /** This many failed tasks within the window, and none running: the service is crash-looping. */
  crashLoopFailures: number;
  crashLoopWindowMs: number;
  now?: () => number;
}

const ServiceBody = z.object({
  ID: z.string(),
  Version: z.object({ Index: z.number() }),
  CreatedAt: z.string(),
  Spec: z.object({
    Name: z.string(),
    Labels: z.record(z.string(), z.string()).nullish(),
    TaskTemplate: z.object({
      ContainerSpec: z
        .object({
          Image: z.string().optional(),
          Mounts: z
            .array(
              z.object({
                Type: z.string().optional(),
                Source: z.string().optional(),
                VolumeOptions: z.object({ Labels: z.record(z.string(), z.string()).nullish() }).nullish(),
              }),
            )
            .nullish(),
        })
        .optional(),
      Placement: z.object({ Constraints: z.array(z.string()).nullish() }).nullish(),
      Networks: z.array(z.object({ Target: z.string() })).nullish(),
    }),
    Mode: z.object({ Replicated: z.object({ Replicas: z.number().optional() }).optional() }).optional(),
  }),
});
/** A listed service: the fields we read, and its spec as Swarm stores it (for the edit fingerprint). */
type ServiceBody = z.infer<typeof ServiceBody> & { rawSpec: unknown };

const TaskBody = z.object({
  ID: z.string(),
  ServiceID: z.string(),
  NodeID: z.string().optional(),
  CreatedAt: z.string(),
  DesiredState: z.string(),
  Status: z.object({ Timestamp: z.string().optional(), State: z.string(), Err: z.string().optional() }),
});
type TaskBody = z.infer<typeof TaskBody>;

const NodeBody = z.object({
  ID: z.string(),
  Description: z.object({ Hostname: z.string().optional() }).optional(),
  Spec: z.object({ Role: z.string().optional(), Availability: z.string().optional() }),
  Status: z.object({ State: z.string().optional(), Addr: z.string().optional() }),
  ManagerStatus: z.object({ Addr: z.string().optional() }).nullish(),
});

const CreatedBody = z.object({ ID: z.string() });

const FAILED = new Set(["failed", "rejected"]);
const NODE_STATES = new Set(["ready", "down", "unknown", "disconnected"]);
const AVAILABILITIES = new Set(["active", "pause", "drain"]);

export class SwarmRuntime implements ContainerRuntime {
  readonly capabilities: RuntimeCapabilities = { inPlaceUpdate: true, completeEvents: false };
  /** Node id -> hostname, from the last node listing (tasks name nodes by id). */
  private readonly hostnames = new Map<string, string>();
  /** Service id -> labels, from listings and creates: service events carry no labels. */
  private readonly serviceLabels = new Map<string, Readonly<Record<string, string>>>();
  /** Volume name -> labels, for the mounts of services created later (a node creates the volume with them). */
  private readonly volumeLabels = new Map<string, Readonly<Record<string, string>>>();
  private readonly now: () => number;

  constructor(
    private readonly docker: Docker,
    private readonly options: SwarmRuntimeOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  private async call<T>(what: string, options: Record<string, unknown>): Promise<T> {
    try {
      return await dial<T>(this.docker, {
        ...options,
        abortSignal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      throw toRuntimeError(what, error);
    }
  }

  async ping(): Promise<void> {
    await this.call("ping", {
      path: "/_ping",
      method: "GET",
      statusCodes: { 200: true, 500: "server error" },
    });
  }

  private async services(labelFilters: readonly string[]): Promise<ServiceBody[]> {
    const raw = await this.call<unknown[]>("list services", {
      path: "/services?",
      method: "GET",
      options: { filters: JSON.stringify({ label: [...labelFilters] }) },
      statusCodes: { 200: true, 500: "server error", 503: "node is not a swarm manager" },
    });
    const out: ServiceBody[] = [];
    for (const item of raw ?? []) {
      const parsed = ServiceBody.safeParse(item);
      if (parsed.success) out.push({ ...parsed.data, rawSpec: (item as { Spec?: unknown }).Spec });
    }
    return out;
  }

  private async tasks(serviceIds?: readonly string[]): Promise<TaskBody[]> {
    const raw = await this.call<unknown[]>("list tasks", {
      path: "/tasks?",
      method: "GET",
      options: serviceIds ? { filters: JSON.stringify({ service: [...serviceIds] }) } : {},
      statusCodes: { 200: true, 500: "server error", 503: "node is not a swarm manager" },
    });
    const out: TaskBody[] = [];
    for (const item of raw ?? []) {
      const parsed = TaskBody.safeParse(item);
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }

  /**
   * Services carrying the labels, each as a workload whose state comes from its tasks: two calls (services, then
   * their tasks), a third only when a task names a node not seen yet.
   */
  async listContainers(labelFilters: readonly string[]): Promise<ActualContainer[]> {
    const services = await this.services(labelFilters);
    if (services.length === 0) return [];
    // Few services (one user's): ask for their tasks; many: every task in one call, filtered here.
    const tasks = await this.tasks(services.length <= 20 ? services.map((s) => s.ID) : undefined);
    const byService = new Map<string, TaskBody[]>();
    for (const t of tasks) {
      const list = byService.get(t.ServiceID);
      if (list) list.push(t);
      else byService.set(t.ServiceID, [t]);
    }
    if (tasks.some((t) => t.NodeID && !this.hostnames.has(t.NodeID))) await this.listNodes();
    return services.map((s) => this.workload(s, byService.get(s.ID) ?? []));
  }

  private workload(service: ServiceBody, tasks: TaskBody[]): ActualContainer {
    const ownLabels = service.Spec.Labels ?? {};
    this.serviceLabels.set(service.ID, ownLabels);
    // Edited behind our back (the spec no longer has the fingerprint we wrote): report a changed spec, so the
    // planner updates it back.
    const recorded = ownLabels[SERVICE_FINGERPRINT_LABEL];
    const labels =
      recorded !== undefined && recorded !== serviceFingerprint(service.rawSpec)
        ? { ...ownLabels, [LABELS.specHash]: `edited:${ownLabels[LABELS.specHash] ?? ""}` }
        : ownLabels;
    for (const m of service.Spec.TaskTemplate.ContainerSpec?.Mounts ?? []) {
      if (m.Type === "volume" && m.Source && m.VolumeOptions?.Labels)
        this.volumeLabels.set(m.Source, m.VolumeOptions.Labels);
    }
    const newestFirst = [...tasks].sort((a, b) => Date.parse(b.CreatedAt) - Date.parse(a.CreatedAt));
    const current = newestFirst.find((t) => t.DesiredState === "running");
    const replicas = service.Spec.Mode?.Replicated?.Replicas ?? 1;
    let state: ContainerState;
    if (replicas === 0) state = "exited";
    else if (current?.Status.State === "running") state = "running";
    // Starting, or between restarts (Swarm makes the next task at once and starts it after the delay), or no
    // task yet: Swarm is on it; the controller must not start anything itself.
    else state = "restarting";
    const since = this.now() - this.options.crashLoopWindowMs;
    const failed = newestFirst.filter(
      (t) => FAILED.has(t.Status.State) && Date.parse(t.Status.Timestamp ?? t.CreatedAt) >= since,
    );
    const placement = placementOf(service.Spec.TaskTemplate.Placement?.Constraints ?? []);
    const nodeId = current?.NodeID ?? newestFirst[0]?.NodeID;
    return {
      id: service.ID,
      name: service.Spec.Name,
      image: service.Spec.TaskTemplate.ContainerSpec?.Image ?? "",
      state,
      labels,
      networkIds: (service.Spec.TaskTemplate.Networks ?? []).map((n) => n.Target),
      created: Math.floor(Date.parse(service.CreatedAt) / 1000),
      version: service.Version.Index,
      ...(placement !== undefined ? { placement } : {}),
      ...(nodeId ? { node: this.hostnames.get(nodeId) ?? nodeId } : {}),
      ...(failed.length >= this.options.crashLoopFailures && state !== "running"
        ? { crashLoop: { failures: failed.length, lastError: failed[0]?.Status.Err ?? "" } }
        : {}),
    };
  }

  async listNetworks(labelFilters?: readonly string[]): Promise<ActualNetwork[]> {
    const list = await this.call<Docker.NetworkInspectInfo[]>("list networks", {
      path: "/networks?",
      method: "GET",
      options: labelFilters ? { filters: JSON.stringify({ label: [...labelFilters] }) } : {},
      statusCodes: { 200: true, 500: "server error" },
    });
    return (list ?? []).map((n) => ({
      id: n.Id,
      name: n.Name,
      labels: n.Labels ?? {},
      subnets: (n.IPAM?.Config ?? []).map((c) => c.Subnet).filter((s): s is string => typeof s === "string"),
    }));
  }

  /**
   * Volumes live on the node that runs the task, out of the manager's sight: the ones the services' mounts name
   * (with the labels a node creates them with) stand for them. One call.
   */
  async listVolumes(labelFilters: readonly string[]): Promise<ActualVolume[]> {
    const services = await this.services(labelFilters.filter((f) => !f.startsWith("mcp.portal.volume")));
    const wanted = labelFilters.map((f) => f.split("="));
    const out = new Map<string, ActualVolume>();
    for (const s of services) {
      for (const m of s.Spec.TaskTemplate.ContainerSpec?.Mounts ?? []) {
        const labels = m.VolumeOptions?.Labels;
        if (m.Type !== "volume" || !m.Source || !labels) continue;
        if (!wanted.every(([k, v]) => (v === undefined ? k! in labels : labels[k!] === v))) continue;
        this.volumeLabels.set(m.Source, labels);
        out.set(m.Source, { name: m.Source, labels });
      }
    }
    return [...out.values()];
  }

  async findContainerByName(name: string): Promise<ObjectRef | undefined> {
    try {
      const raw = await this.call<unknown>("inspect service", {
        path: `/services/${encodeURIComponent(name)}?`,
        method: "GET",
        statusCodes: { 200: true, 404: "no such service", 500: "server error" },
      });
      const parsed = ServiceBody.safeParse(raw);
      // Swarm resolves ids and id prefixes too; only an exact name counts.
      if (!parsed.success || parsed.data.Spec.Name !== name) return undefined;
      return { id: parsed.data.ID, labels: parsed.data.Spec.Labels ?? {} };
    } catch (error) {
      if (error instanceof RuntimeError && error.code === "NotFound") return undefined;
      throw error;
    }
  }

  async findNetworkByName(name: string): Promise<ObjectRef | undefined> {
    const list = await this.call<Docker.NetworkInspectInfo[]>("list networks", {
      path: "/networks?",
      method: "GET",
      options: { filters: JSON.stringify({ name: [name] }) },
      statusCodes: { 200: true, 500: "server error" },
    });
    const match = (list ?? []).find((n) => n.Name === name);
    return match ? { id: match.Id, labels: match.Labels ?? {} } : undefined;
  }

  /**
   * Each node fetches the image when it starts a task (no registry is asked from here): a missing image shows as
   * the task's error in status, not as ImagePullBackOff.
   */
  imageExists(): Promise<boolean> {
    return Promise.resolve(true);
  }

  pullImage(): Promise<void> {
    return Promise.resolve();
  }

  async createNetwork(spec: NetworkSpec): Promise<string> {
    const body = await this.call<unknown>("create network", {
      path: "/networks/create",
      method: "POST",
      options: overlayNetworkBody(spec),
      statusCodes: {
        201: true,
        403: "operation not supported",
        404: "plugin not found",
        409: "name conflict",
        500: "server error",
      },
    });
    return z.object({ Id: z.string() }).parse(body).Id;
  }

  async removeNetwork(id: string): Promise<void> {
    await this.call("remove network", {
      path: `/networks/${encodeURIComponent(id)}`,
      method: "DELETE",
      statusCodes: { 204: true, 200: true, 403: "in use", 404: "no such network", 500: "server error" },
    });
  }

  /**
   * The volume is made by the node that runs the task, with the labels the service's mount carries: nothing to
   * ask the manager. Its owner cannot be checked from here (README, "Several hosts").
   */
  createVolume(spec: VolumeSpec): Promise<ActualVolume> {
    this.volumeLabels.set(spec.name, { ...spec.labels });
    return Promise.resolve({ name: spec.name, labels: { ...spec.labels } });
  }

  async createContainer(spec: ContainerSpec, name: string, placement?: Placement): Promise<string> {
    const body = await this.call<unknown>("create service", {
      // No query string: the body (with the servers' environment) must never end up in a URL.
      path: "/services/create",
      method: "POST",
      options: { _body: this.body(spec, name, placement) },
      statusCodes: {
        201: true,
        400: "bad parameter",
        403: "forbidden",
        409: "name conflict",
        500: "server error",
        503: "node is not a swarm manager",
      },
    });
    const id = CreatedBody.parse(body).ID;
    this.serviceLabels.set(id, spec.labels);
    return id;
  }

  async updateContainer(
    id: string,
    version: number,
    spec: ContainerSpec,
    placement?: Placement,
  ): Promise<void> {
    await this.call("update service", {
      path: `/services/${encodeURIComponent(id)}/update?`,
      method: "POST",
      options: { _query: { version }, _body: this.body(spec, spec.name, placement) },
      statusCodes: {
        200: true,
        400: "bad parameter",
        404: "no such service",
        500: "server error",
        503: "node is not a swarm manager",
      },
    });
    this.serviceLabels.set(id, spec.labels);
  }

  private body(spec: ContainerSpec, name: string, placement: Placement | undefined): Record<string, unknown> {
    // Restricted egress is refused on Swarm before planning (README, "Network egress"); never run it unrestricted.
    if (placement?.addressing !== undefined || spec.addressOffset !== undefined || spec.extraNetworks?.length)
      throw new RuntimeError(
        "Failed",
        `${name}: restricted egress is not supported on the Swarm backend`,
        501,
      );
    return serviceSpec(spec, name, {
      restartDelayMs: this.options.restartDelayMs,
      placementNodeId: placement?.nodeId,
      volumeLabels: (volume) => this.volumeLabels.get(volume),
    });
  }

  /** Swarm runs no egress proxy (restricted egress is refused there): nothing reads logs. */
  readLogs(): Promise<LogRead> {
    return Promise.reject(new RuntimeError("Failed", "read logs: not supported by the Swarm backend", 501));
  }

  /** Swarm runs the task: nothing to start unless the service was scaled to zero (then: one replica again). */
  async startContainer(id: string): Promise<void> {
    const raw = await this.call<unknown>("inspect service", {
      path: `/services/${encodeURIComponent(id)}?`,
      method: "GET",
      statusCodes: { 200: true, 404: "no such service", 500: "server error" },
    });
    const service = z
      .object({ Version: z.object({ Index: z.number() }), Spec: z.record(z.string(), z.unknown()) })
      .parse(raw);
    const mode = service.Spec.Mode as { Replicated?: { Replicas?: number } } | undefined;
    if ((mode?.Replicated?.Replicas ?? 1) > 0)
      throw new RuntimeError("NotModified", "start service: already running", 304);
    await this.call("update service", {
      path: `/services/${encodeURIComponent(id)}/update?`,
      method: "POST",
      options: {
        _query: { version: service.Version.Index },
        _body: { ...service.Spec, Mode: { Replicated: { Replicas: 1 } } },
      },
      statusCodes: { 200: true, 400: "bad parameter", 404: "no such service", 500: "server error" },
    });
  }

  /** Swarm stops the task (SIGTERM, then its grace period) when the service is removed: nothing to do first. */
  stopContainer(): Promise<void> {
    return Promise.reject(new RuntimeError("NotModified", "stop service: the removal stops its task", 304));
  }

  async removeContainer(id: string): Promise<void> {
    await this.call("remove service", {
      path: `/services/${encodeURIComponent(id)}`,
      method: "DELETE",
      statusCodes: {
        200: true,
        404: "no such service",
        500: "server error",
        503: "node is not a swarm manager",
      },
    });
  }

  renameContainer(): Promise<void> {
    // capabilities.inPlaceUpdate: the planner updates services in place and never renames them.
    return Promise.reject(new RuntimeError("Failed", "rename service: not supported on Swarm"));
  }

  async listNodes(): Promise<ActualNode[]> {
    const raw = await this.call<unknown[]>("list nodes", {
      path: "/nodes?",
      method: "GET",
      statusCodes: { 200: true, 500: "server error", 503: "node is not a swarm manager" },
    });
    const out: ActualNode[] = [];
    for (const item of raw ?? []) {
      const parsed = NodeBody.safeParse(item);
      if (!parsed.success) continue;
      const n = parsed.data;
      const hostname = n.Description?.Hostname ?? n.ID;
      this.hostnames.set(n.ID, hostname);
      const state = n.Status.State ?? "unknown";
      const availability = n.Spec.Availability ?? "active";
      out.push({
        id: n.ID,
        hostname,
        addr: nodeAddress(n.Status.Addr, n.ManagerStatus?.Addr),
        state: NODE_STATES.has(state) ? (state as ActualNode["state"]) : "unknown",
        availability: AVAILABILITIES.has(availability)
          ? (availability as ActualNode["availability"])
          : "active",
        role: n.Spec.Role === "manager" ? "manager" : "worker",
      });
    }
    return out;
  }

  /**
   * Swarm's service, node and network events, as the controller follows them: a service event is a "container"
   * event carrying the service's labels (known from listings: the event has none), a node event a "node" event.
   * Task state changes have no events: the swarm watcher lists tasks periodically for those.
   */
  async *events(
    filter: EventFilter,
    signal: AbortSignal,
    onSubscribed?: () => void,
  ): AsyncIterable<RuntimeEvent> {
    const types = new Set<"service" | "node" | "network">();
    if (filter.types.includes("container")) types.add("service");
    if (filter.types.includes("node")) types.add("node");
    if (filter.types.includes("network")) types.add("network");
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getEvents({ filters: { type: [...types] }, abortSignal: signal });
    } catch (error) {
      throw toRuntimeError("events", error);
    }
    onSubscribed?.();
    const wanted = (filter.labels ?? []).map((f) => f.split("="));
    for await (const raw of parseRawEventStream(stream, signal)) {
      if (raw.type === "service") {
        const labels = this.serviceLabels.get(raw.id) ?? {};
        if (raw.action === "remove") this.serviceLabels.delete(raw.id);
        if (!wanted.every(([k, v]) => labels[k!] === v)) continue;
        const action = raw.action === "remove" ? "destroy" : raw.action;
        if (filter.actions && !filter.actions.includes(action)) continue;
        yield { type: "container", action, id: raw.id, labels };
      } else if (raw.type === "node" || raw.type === "network") {
        if (filter.actions && !filter.actions.includes(raw.action)) continue;
        yield { type: raw.type, action: raw.action, id: raw.id, labels: {} };
      }
    }
  }
}

/** The create body of a user's network on Swarm: an attachable overlay with our labels and subnet. */
export function overlayNetworkBody(spec: NetworkSpec): Record<string, unknown> {
  const options = networkCreateOptions(spec);
  return {
    Name: options.Name,
    CheckDuplicate: true,
    // Attachable: the node gateway (a plain container) joins the user's overlay with `network connect`.
    Driver: "overlay",
    Attachable: true,
    Internal: false,
    Labels: options.Labels,
    IPAM: options.IPAM,
  };
}

/**
 * A node's address: its status address, except that a manager may report 0.0.0.0 there; then the address of
 * its manager endpoint (`host:2377`) without the port.
 */
export function nodeAddress(status: string | undefined, manager: string | undefined): string {
  if (status && status !== "0.0.0.0") return status;
  const match = manager ? /^\[?([^\]]+?)\]?:\d+$/.exec(manager) : null;
  return match ? match[1]! : "";
}

/** The node id of a `node.id==<id>` constraint, the one placement the controller sets. */
export function placementOf(constraints: readonly string[]): string | undefined {
  for (const c of constraints) {
    const match = /^node\.id\s*==\s*(\S+)$/.exec(c.trim());
    if (match) return match[1];
  }
  return undefined;
}
