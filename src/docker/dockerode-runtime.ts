import type Docker from "dockerode";
import { z } from "zod";
import type { ContainerSpec } from "../desired/types.js";
import type {
  ActualContainer,
  ActualNetwork,
  ActualNode,
  ActualVolume,
  Addressing,
  ContainerRuntime,
  ContainerState,
  EventFilter,
  LogRead,
  LogReadOptions,
  NetworkSpec,
  ObjectRef,
  Placement,
  RuntimeCapabilities,
  RuntimeEvent,
  VolumeSpec,
} from "./runtime.js";
import { CONTAINER_STATES, RuntimeError } from "./runtime.js";
import { parseEventStream } from "./event-stream.js";
import { demuxFrames, sinceParam, timestampedLines } from "./log-lines.js";

const KNOWN_STATES = new Set<string>(CONTAINER_STATES);

export interface DockerodeRuntimeOptions {
  /** Upper bound for every call; pulls get ten times as long. */
  timeoutMs: number;
}

export class DockerodeRuntime implements ContainerRuntime {
  readonly capabilities: RuntimeCapabilities = { inPlaceUpdate: false, completeEvents: true };

  constructor(
    private readonly docker: Docker,
    private readonly options: DockerodeRuntimeOptions,
  ) {}

  private signal(factor = 1): AbortSignal {
    return AbortSignal.timeout(this.options.timeoutMs * factor);
  }

  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, factor = 1): Promise<T> {
    try {
      return await fn(this.signal(factor));
    } catch (error) {
      throw toRuntimeError(what, error);
    }
  }

  async ping(): Promise<void> {
    await this.call("ping", (abortSignal) =>
      (this.docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(this.docker, {
        abortSignal,
      }),
    );
  }

  async listContainers(labelFilters: readonly string[]): Promise<ActualContainer[]> {
    const list = await this.call("list containers", (abortSignal) =>
      this.docker.listContainers({ all: true, filters: { label: [...labelFilters] }, abortSignal }),
    );
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? "").replace(/^\//, ""),
      image: c.Image,
      state: KNOWN_STATES.has(c.State) ? (c.State as ContainerState) : "dead",
      labels: c.Labels ?? {},
      networkIds: Object.values(c.NetworkSettings?.Networks ?? {})
        .map((n) => n.NetworkID)
        .filter((id): id is string => typeof id === "string" && id.length > 0),
      created: c.Created,
    }));
  }

  async listNetworks(labelFilters?: readonly string[]): Promise<ActualNetwork[]> {
    const list = await this.call("list networks", (abortSignal) =>
      this.docker.listNetworks({
        ...(labelFilters ? { filters: { label: [...labelFilters] } } : {}),
        abortSignal,
      }),
    );
    return list.map((n) => ({
      id: n.Id,
      name: n.Name,
      labels: n.Labels ?? {},
      subnets: (n.IPAM?.Config ?? []).map((c) => c.Subnet).filter((s): s is string => typeof s === "string"),
    }));
  }

  async listVolumes(labelFilters: readonly string[]): Promise<ActualVolume[]> {
    const result = await this.call("list volumes", (abortSignal) =>
      this.docker.listVolumes({ filters: { label: [...labelFilters] }, abortSignal }),
    );
    return (result.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
  }

  async findContainerByName(name: string): Promise<ObjectRef | undefined> {
    try {
      const info = await this.call("inspect container", (abortSignal) =>
        this.docker.getContainer(name).inspect({ abortSignal }),
      );
      // The engine resolves names by prefix and id too; only an exact name match counts.
      if (info.Name.replace(/^\//, "") !== name) return undefined;
      return { id: info.Id, labels: info.Config.Labels ?? {} };
    } catch (error) {
      if (error instanceof RuntimeError && error.code === "NotFound") return undefined;
      throw error;
    }
  }

  async findNetworkByName(name: string): Promise<ObjectRef | undefined> {
    const list = await this.call("list networks", (abortSignal) =>
      this.docker.listNetworks({ filters: { name: [name] }, abortSignal }),
    );
    const match = list.find((n) => n.Name === name);
    return match ? { id: match.Id, labels: match.Labels ?? {} } : undefined;
  }

  async imageExists(ref: string): Promise<boolean> {
    try {
      await this.call("inspect image", (abortSignal) => {
        const image = this.docker.getImage(ref);
        return (image.inspect as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(image, {
          abortSignal,
        });
      });
      return true;
    } catch (error) {
      if (error instanceof RuntimeError && error.code === "NotFound") return false;
      throw error;
    }
  }

  async pullImage(ref: string): Promise<void> {
    await this.call(
      "pull image",
      async (abortSignal) => {
        const stream = await this.docker.pull(ref, { abortSignal });
        await new Promise<void>((resolve, reject) => {
          // The engine reports pull failures in-band, as {"error": ...} lines in a 200 response.
          this.docker.modem.followProgress(stream, (err: Error | null, output: unknown[]) => {
            if (err) return reject(err);
            const failed = output.find(
              (line): line is { error: string } =>
                typeof line === "object" &&
                line !== null &&
                typeof (line as { error?: unknown }).error === "string",
            );
            if (failed) return reject(new RuntimeError("Failed", `pull ${ref}: ${failed.error}`));
            resolve();
          });
        });
      },
      10,
    );
  }

  async createNetwork(spec: NetworkSpec): Promise<string> {
    const network = await this.call("create network", (abortSignal) =>
      this.docker.createNetwork({ ...networkCreateOptions(spec), abortSignal }),
    );
    return network.id;
  }

  async removeNetwork(id: string): Promise<void> {
    await this.call("remove network", (abortSignal) => this.docker.getNetwork(id).remove({ abortSignal }));
  }

  async createVolume(spec: VolumeSpec): Promise<ActualVolume> {
    // The engine answers with the volume as it is: for a name that exists already, the existing one's labels.
    // dockerode's createVolume drops that body, so the request goes through its modem directly.
    const body = await this.call("create volume", (abortSignal) =>
      dial<unknown>(this.docker, {
        path: "/volumes/create?",
        method: "POST",
        options: { Name: spec.name, Driver: "local", Labels: spec.labels },
        abortSignal,
        statusCodes: { 200: true, 201: true, 500: "server error" },
      }),
    );
    const parsed = VolumeBody.safeParse(body);
    if (!parsed.success) throw new RuntimeError("Failed", `create volume ${spec.name}: unexpected answer`);
    return { name: parsed.data.Name, labels: parsed.data.Labels ?? {} };
  }

  async createContainer(spec: ContainerSpec, name: string, placement?: Placement): Promise<string> {
    const addressing = placement?.addressing;
    const options = containerCreateOptions(spec, name, addressing);
    const container = await this.call("create container", (abortSignal) =>
      this.docker.createContainer({ ...options, abortSignal }),
    );
    // Engine 20.10 takes one network at create; the others are joined before the first start.
    for (const extra of spec.extraNetworks ?? []) {
      const address = addressing?.addresses[extra.name];
      const connect: Docker.NetworkConnectOptions & { abortSignal?: AbortSignal } = {
        Container: container.id,
        EndpointConfig: {
          ...(extra.aliases ? { Aliases: extra.aliases } : {}),
          ...(address ? { IPAMConfig: { IPv4Address: address } } : {}),
        },
      };
      await this.call("connect container", (abortSignal) => {
        // dockerode passes abortSignal through to the request although its types do not list it.
        const options = { ...connect, abortSignal } as Docker.NetworkConnectOptions;
        return this.docker.getNetwork(extra.name).connect(options) as Promise<unknown>;
      });
    }
    return container.id;
  }

  updateContainer(): Promise<void> {
    // capabilities.inPlaceUpdate is false: the planner replaces containers instead.
    return Promise.reject(
      new RuntimeError("Failed", "update container: not supported by the engine backend"),
    );
  }

  listNodes(): Promise<ActualNode[]> {
    return Promise.resolve([]);
  }

  async readLogs(id: string, options: LogReadOptions): Promise<LogRead> {
    const stream = await this.call("read container logs", (abortSignal) =>
      dial<NodeJS.ReadableStream & { destroy(): void }>(this.docker, {
        path: `/containers/${encodeURIComponent(id)}/logs?`,
        method: "GET",
        options: {
          stdout: true,
          stderr: false,
          timestamps: true,
          follow: false,
          ...(options.since !== undefined ? { since: sinceParam(options.since) } : {}),
        },
        isStream: true,
        abortSignal,
        statusCodes: { 200: true, 404: "no such container", 500: "server error" },
      }),
    );
    // Read at most maxBytes (plus one chunk), then drop the connection: the caller continues from the last line.
    const chunks: Buffer[] = [];
    let bytes = 0;
    let truncated = false;
    try {
      await this.call("read container logs", async (abortSignal) => {
        abortSignal.addEventListener("abort", () => stream.destroy(), { once: true });
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          chunks.push(chunk);
          bytes += chunk.length;
          if (bytes >= options.maxBytes) {
            truncated = true;
            break;
          }
        }
      });
    } finally {
      stream.destroy();
    }
    const data = Buffer.concat(chunks).subarray(0, Math.max(options.maxBytes, 0));
    truncated ||= data.length < bytes;
    const { payload } = demuxFrames(data);
    return { lines: timestampedLines(payload.toString("utf8")), truncated };
  }

  async startContainer(id: string): Promise<void> {
    await this.call("start container", (abortSignal) => this.docker.getContainer(id).start({ abortSignal }));
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    await this.call("stop container", (abortSignal) =>
      this.docker.getContainer(id).stop({ t: timeoutSeconds, abortSignal }),
    );
  }

  async removeContainer(id: string): Promise<void> {
    await this.call("remove container", (abortSignal) =>
      this.docker.getContainer(id).remove({ force: true, v: false, abortSignal }),
    );
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await this.call("rename container", (abortSignal) =>
      this.docker.getContainer(id).rename({ name, abortSignal }),
    );
  }

  async *events(
    filter: EventFilter,
    signal: AbortSignal,
    onSubscribed?: () => void,
  ): AsyncIterable<RuntimeEvent> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getEvents({
        filters: {
          type: [...filter.types],
          ...(filter.labels ? { label: [...filter.labels] } : {}),
          ...(filter.actions ? { event: [...filter.actions] } : {}),
        },
        abortSignal: signal,
      });
    } catch (error) {
      throw toRuntimeError("events", error);
    }
    // The engine answers the request once it has registered the subscription.
    onSubscribed?.();
    yield* parseEventStream(stream, signal);
  }
}

/** A user's isolated bridge: its own subnet and interface name, containers on it may talk to each other. */
export function networkCreateOptions(spec: NetworkSpec): Docker.NetworkCreateOptions {
  return {
    Name: spec.name,
    Driver: "bridge",
    CheckDuplicate: true,
    Internal: spec.internal ?? false,
    Attachable: false,
    Labels: spec.labels,
    IPAM: { Driver: "default", Config: [{ Subnet: spec.subnet, Gateway: spec.gateway }] },
    Options: {
      "com.docker.network.bridge.name": spec.bridgeName,
      "com.docker.network.bridge.enable_icc": "true",
      "com.docker.network.bridge.enable_ip_masquerade": spec.internal ? "false" : "true",
    },
  };
}

/** Maps our spec onto the engine's create body, with the hardened defaults of the README's "Docker objects and labels". */
export function containerCreateOptions(
  spec: ContainerSpec,
  name: string,
  addressing?: Addressing,
): Docker.ContainerCreateOptions {
  const exposed: Record<string, object> = {};
  for (const p of spec.exposedPorts) exposed[`${p.port}/${p.protocol}`] = {};
  const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  if (spec.publish) {
    portBindings[`${spec.publish.containerPort}/${spec.publish.protocol}`] = [
      { HostIp: spec.publish.hostIp, HostPort: String(spec.publish.hostPort) },
    ];
  }
  return {
    name,
    Image: spec.image,
    ...(spec.cmd ? { Cmd: spec.cmd } : {}),
    Env: Object.entries({ ...spec.env, ...addressing?.env }).map(([k, v]) => `${k}=${v}`),
    Labels: spec.labels,
    User: spec.user,
    ExposedPorts: exposed,
    OpenStdin: spec.openStdin,
    StdinOnce: false,
    AttachStdin: false,
    Tty: false,
    ...(addressing?.addresses[spec.network]
      ? {
          NetworkingConfig: {
            EndpointsConfig: {
              [spec.network]: { IPAMConfig: { IPv4Address: addressing.addresses[spec.network] } },
            },
          },
        }
      : {}),
    HostConfig: {
      NetworkMode: spec.network,
      ...(addressing?.dns ? { Dns: addressing.dns } : {}),
      ...(spec.sysctls ? { Sysctls: spec.sysctls } : {}),
      ...(spec.extraHosts ? { ExtraHosts: spec.extraHosts } : {}),
      PortBindings: portBindings,
      Memory: spec.memoryBytes,
      MemorySwap: spec.memoryBytes,
      CpuShares: spec.cpuShares,
      PidsLimit: spec.pidsLimit,
      CapDrop: ["ALL"],
      CapAdd: spec.capAdd,
      SecurityOpt: spec.noNewPrivileges ? ["no-new-privileges:true"] : [],
      ReadonlyRootfs: spec.readOnlyRootfs,
      Tmpfs: spec.tmpfs,
      Mounts: spec.mounts.map((m) => ({
        Type: "volume" as const,
        Source: m.volumeName,
        Target: m.target,
        ReadOnly: m.readOnly,
      })),
      // The controller owns restarts (with backoff); the engine never restarts on its own.
      RestartPolicy: { Name: "no" },
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } },
    },
  };
}

const VolumeBody = z.object({ Name: z.string(), Labels: z.record(z.string(), z.string()).nullish() });

/** One request through dockerode's modem, for the few calls whose answer dockerode does not hand back. */
export function dial<T>(docker: Docker, options: Record<string, unknown>): Promise<T> {
  const modem = docker.modem as unknown as {
    dial(o: Record<string, unknown>, cb: (err: unknown, data: T) => void): void;
  };
  return new Promise<T>((resolve, reject) => {
    // docker-modem's errors carry statusCode and json, which toRuntimeError classifies: pass them on as they are.
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    modem.dial(options, (err, data) => (err ? reject(err) : resolve(data)));
  });
}

export function toRuntimeError(what: string, error: unknown): RuntimeError {
  if (error instanceof RuntimeError) return error;
  const e = error as {
    statusCode?: unknown;
    name?: unknown;
    code?: unknown;
    json?: { message?: unknown };
    message?: unknown;
  };
  const statusCode = typeof e.statusCode === "number" ? e.statusCode : undefined;
  const detail =
    typeof e.json?.message === "string"
      ? e.json.message
      : typeof e.message === "string"
        ? e.message
        : String(error);
  if (e.name === "TimeoutError" || e.name === "AbortError")
    return new RuntimeError("Timeout", `${what}: timed out`);
  if (statusCode === 404) return new RuntimeError("NotFound", `${what}: ${detail}`, 404);
  if (statusCode === 409) return new RuntimeError("Conflict", `${what}: ${detail}`, 409);
  if (statusCode === 304) return new RuntimeError("NotModified", `${what}: ${detail}`, 304);
  if (
    statusCode === undefined &&
    typeof e.code === "string" &&
    ["ECONNREFUSED", "ENOENT", "ECONNRESET", "EPIPE", "EACCES"].includes(e.code)
  ) {
    return new RuntimeError("Unavailable", `${what}: Docker Engine unreachable (${e.code})`);
  }
  return new RuntimeError("Failed", `${what}: ${detail}`, statusCode);
}
