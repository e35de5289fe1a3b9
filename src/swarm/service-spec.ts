import type { ContainerSpec } from "../desired/types.js";
import { canonicalHash } from "../util/canonical-json.js";

/*
 * A server's spec as a Swarm service (Engine 20.10, API 1.41), pure. One replica, our labels on the service and
 * on its task containers (the node gateway finds local servers by them), the user's overlay, resources as limits
 * and reservations, the hardening a service can express, and restarts owned by Swarm. What a service cannot
 * express is reported by `swarmSpecWarnings` and shown in status (README, "Several hosts").
 */

export interface ServiceSpecOptions {
  /** Swarm's restart policy: on-failure, after this delay. */
  restartDelayMs: number;
  /** Pin the task to this node (`node.id==<id>`); placement is outside the spec and its hash. */
  placementNodeId?: string | undefined;
  /** Labels of the user's volumes by name, set on the volume when a node creates it for the task. */
  volumeLabels: (volumeName: string) => Readonly<Record<string, string>> | undefined;
  /** Replicas (1; 0 only where a service is kept but stopped). */
  replicas?: number;
}

const NS_PER_MS = 1_000_000;
const NANO_CPUS_PER_SHARE = 1e9 / 1024;

/** The body of `POST /services/create` (and of an update, with the version in the query). */
export function serviceSpec(
  spec: ContainerSpec,
  name: string,
  options: ServiceSpecOptions,
): Record<string, unknown> {
  const mounts: Record<string, unknown>[] = spec.mounts.map((m) => {
    const labels = options.volumeLabels(m.volumeName);
    return {
      Type: "volume",
      Source: m.volumeName,
      Target: m.target,
      ReadOnly: m.readOnly,
      VolumeOptions: {
        NoCopy: false,
        ...(labels ? { Labels: { ...labels } } : {}),
        DriverConfig: { Name: "local" },
      },
    };
  });
  for (const [target, opts] of Object.entries(spec.tmpfs).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const size = tmpfsSizeBytes(opts);
    mounts.push({
      Type: "tmpfs",
      Target: target,
      TmpfsOptions: { ...(size ? { SizeBytes: size } : {}), Mode: 0o1777 },
    });
  }
  const ports = spec.publish
    ? [
        {
          Protocol: spec.publish.protocol,
          TargetPort: spec.publish.containerPort,
          PublishedPort: spec.publish.hostPort,
          // No routing mesh: the port is opened on the node that runs the task.
          PublishMode: "host",
        },
      ]
    : [];
  const body = {
    Name: name,
    Labels: { ...spec.labels },
    TaskTemplate: {
      ContainerSpec: {
        Image: spec.image,
        Labels: { ...spec.labels },
        ...(spec.cmd ? { Args: [...spec.cmd] } : {}),
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        User: spec.user,
        OpenStdin: spec.openStdin,
        TTY: false,
        ReadOnly: spec.readOnlyRootfs,
        CapabilityDrop: ["ALL"],
        CapabilityAdd: [...spec.capAdd],
        Mounts: mounts,
      },
      Resources: {
        Limits: { MemoryBytes: spec.memoryBytes, Pids: spec.pidsLimit },
        // A CPU reservation becomes the task container's cpu shares: the same weight as on the engine backend.
        Reservations: {
          MemoryBytes: spec.memoryBytes,
          NanoCPUs: Math.round(spec.cpuShares * NANO_CPUS_PER_SHARE),
        },
      },
      RestartPolicy: { Condition: "on-failure", Delay: options.restartDelayMs * NS_PER_MS, MaxAttempts: 0 },
      Placement: options.placementNodeId ? { Constraints: [`node.id==${options.placementNodeId}`] } : {},
      Networks: [{ Target: spec.network }],
      LogDriver: { Name: "json-file", Options: { "max-size": "10m", "max-file": "3" } },
    },
    Mode: { Replicated: { Replicas: options.replicas ?? 1 } },
    // A stdio server must never run twice: the old task stops before the new one starts.
    UpdateConfig: { Parallelism: 1, Order: "stop-first", FailureAction: "pause" },
    // No virtual IP: the gateway reaches each task by its own address (and the lab has no IPVS).
    EndpointSpec: { Mode: "dnsrr", Ports: ports },
  };
  body.Labels[SERVICE_FINGERPRINT_LABEL] = serviceFingerprint(body);
  return body;
}

/**
 * A label on the service only (not its containers): the fingerprint of the spec we last sent. Our spec hash
 * label says what we asked for; this one shows an edit behind our back (`docker service update --env-add ...`
 * keeps our labels), which the runtime then reports as a changed spec, so the controller puts it back.
 */
export const SERVICE_FINGERPRINT_LABEL = "mcp.portal.service_fingerprint";

/**
 * Pure: a digest of the parts of a service spec we set and Swarm stores as given (the container's image,
 * command, environment, user, hardening, labels and mounts, the resources, restart policy and ports). Placement
 * is left out (moving a user is not an edit), and so are networks (Swarm stores them by id; the planner checks
 * the user's network itself). Absent and empty are the same (Swarm drops empty lists).
 */
export function serviceFingerprint(spec: unknown): string {
  const s = record(spec);
  const template = record(s.TaskTemplate);
  const container = record(template.ContainerSpec);
  const resources = record(template.Resources);
  const limits = record(resources.Limits);
  const reservations = record(resources.Reservations);
  const restart = record(template.RestartPolicy);
  const endpoint = record(s.EndpointSpec);
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  return canonicalHash({
    image: container.Image ?? "",
    args: list(container.Args),
    env: list(container.Env),
    user: container.User ?? "",
    openStdin: container.OpenStdin === true,
    readOnly: container.ReadOnly === true,
    capDrop: list(container.CapabilityDrop),
    capAdd: list(container.CapabilityAdd),
    labels: record(container.Labels),
    mounts: list(container.Mounts).map((m) => {
      const mount = record(m);
      return [mount.Type ?? "", mount.Source ?? "", mount.Target ?? "", mount.ReadOnly === true];
    }),
    memory: limits.MemoryBytes ?? 0,
    pids: limits.Pids ?? 0,
    nanoCpus: reservations.NanoCPUs ?? 0,
    restart: [restart.Condition ?? "", restart.Delay ?? 0],
    ports: list(endpoint.Ports).map((p) => {
      const port = record(p);
      return [port.Protocol ?? "", port.TargetPort ?? 0, port.PublishedPort ?? 0];
    }),
  });
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** What the spec asks for that a Swarm service on Engine 20.10 (API 1.41) cannot express: shown in status. */
export function swarmSpecWarnings(spec: ContainerSpec): string[] {
  const warnings: string[] = [];
  if (spec.noNewPrivileges)
    warnings.push("no-new-privileges is not set: a Swarm service (API 1.41) cannot express it");
  for (const [target, opts] of Object.entries(spec.tmpfs)) {
    const flags = opts.split(",").filter((o) => o === "noexec" || o === "nosuid" || o === "nodev");
    if (flags.length > 0)
      warnings.push(
        `tmpfs ${target} is mounted without ${flags.join(",")}: a Swarm tmpfs mount takes only size and mode`,
      );
  }
  warnings.push(
    "swap is not turned off: a Swarm service sets no memory-swap limit (the node's swap applies)",
  );
  if (spec.publish && spec.publish.hostIp !== "0.0.0.0" && spec.publish.hostIp !== "::")
    warnings.push(
      `port ${spec.publish.hostPort} is published on every address of the node: Swarm cannot bind it to ${spec.publish.hostIp}`,
    );
  return warnings;
}

/** `size=64m` of a tmpfs option string, in bytes (k, m, g suffixes); undefined when absent or unreadable. */
export function tmpfsSizeBytes(options: string): number | undefined {
  const size = options
    .split(",")
    .map((o) => o.trim())
    .find((o) => o.startsWith("size="));
  const match = size ? /^size=(\d+)([kmg]?)$/i.exec(size) : null;
  if (!match) return undefined;
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
    match[2]!.toLowerCase() as "" | "k" | "m" | "g"
  ];
  return Number(match[1]) * unit;
}
