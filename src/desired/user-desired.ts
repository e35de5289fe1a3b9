import type { Limits } from "../config.js";
import { LABELS, ownerLabels } from "../labels.js";
import type { MergedCatalog } from "../catalog/merge.js";
import type { ServerDefinition } from "../schema/catalog.js";
import type { EnabledServersFile } from "../schema/enabled-servers.js";
import type { PolicyFile, ServerSecurityOverride } from "../schema/policy.js";
import { canonicalHashPrefix, canonicalJson } from "../util/canonical-json.js";
import { ownValue } from "../util/own-property.js";
import { buildEnvironment, selectEnvironment } from "./environment.js";
import { effectiveIdleTimeoutSeconds } from "./idle-timeout.js";
import {
  DEFAULT_EGRESS_PROXY_IMAGE,
  buildEgressProxyOutcome,
  egressBridgeName,
  egressNetworkName,
  restrictedServerEnv,
  serverAddressOffset,
} from "./egress-desired.js";
import { type EffectiveEgress, describeEffectiveEgress, effectiveEgress } from "./egress-rules.js";
import type { EgressPolicyEntry } from "../contracts/egress-policy.js";
import { imageNotAllowedMessage, isImageAllowed, resolveAllowedImages } from "./image-policy.js";
import { bridgeName, containerName, networkName, volumeKey, volumeName } from "./names.js";
import { type PortRange, assignHostPorts } from "./port-blocks.js";
import {
  securityFor,
  shadowsAdminServer,
  shadowsAdminServerMessage,
  userEnvAllowance,
  userVolumesAllowed,
  userVolumesRefusedMessage,
} from "./server-security.js";
import type {
  BlockedOutcome,
  ContainerSpec,
  DesiredMount,
  DesiredUser,
  DesiredVolume,
  RunOutcome,
  ServerOutcome,
} from "./types.js";
import { type UserArea, resolveUserVolumePath } from "./volume-paths.js";

/** Bumped only when the meaning of the hashed spec changes (every container is then replaced once). */
export const SPEC_SCHEMA_VERSION = 1;

export const SERVER_DEFAULTS = { memoryMb: 128, cpuShares: 64, pidsLimit: 128 } as const;
/** MCP-level probe settings when the catalog gives none (the gateway probes through its own path). */
export const HEALTH_DEFAULTS = {
  interval_seconds: 10,
  timeout_seconds: 5,
  retries: 3,
  start_period_seconds: 0,
} as const;
const DEFAULT_MOUNTS: readonly { area: UserArea; target: string }[] = [
  { area: "data", target: "/data" },
  { area: "cache", target: "/cache" },
];

export type SecretResolution =
  | { ok: true; value: string; digest: string }
  | { ok: false; reason: "MissingSecret" | "SecretDecryptFailed"; message: string };

export interface DesiredUserInput {
  installation: string;
  userId: string;
  catalog: MergedCatalog;
  enabled: EnabledServersFile;
  policy: PolicyFile;
  /**
   * MCP_PORTAL_ALLOWED_IMAGES: the image allow-list when policy.json gives no `allowed_images`. Undefined:
   * every image (the documented default without either).
   */
  defaultAllowedImages?: readonly string[] | undefined;
  defaultLimits: Limits;
  portBlock: PortRange;
  /** Host ports the user's existing containers hold (from their labels), by server id. */
  currentPorts: ReadonlyMap<string, number>;
  /**
   * The user's volumes on the engine by what they hold (`volumeKey(area, path)` from their labels) -> name. An
   * existing volume keeps its name (so data and containers stay as they are, whatever the naming scheme was when
   * it was made); only a new one gets volumeName's.
   */
  existingVolumes?: ReadonlyMap<string, string>;
  resolveSecret: (name: string) => SecretResolution;
  publishHost: string;
  /**
   * False when the gateway serves users' ports: a published port is reachable from other users' networks
   * through the host address, so containers then publish nothing themselves.
   */
  publishPorts: boolean;
  containerUser: string;
  portalVersion: string;
  /**
   * Servers stopped for idleness (README, "Idle servers"): each holds its host port, so it counts against
   * `max_ports`, but not against the limits of running servers (containers, memory, CPU shares).
   */
  idleServers?: ReadonlySet<string>;
  /** MCP_PORTAL_EGRESS_PROXY_IMAGE: the image of users' egress proxies (default DEFAULT_EGRESS_PROXY_IMAGE). */
  egressProxyImage?: string;
  /** MCP_PORTAL_EGRESS_EXTRA_HOSTS as `name:address` entries for the proxies' /etc/hosts. */
  egressExtraHosts?: readonly string[];
  /**
   * False where restricted egress cannot be enforced (MCP_PORTAL_BACKEND=swarm): such servers are Blocked
   * (EgressUnsupported) rather than run unrestricted. Default true (the engine backend).
   */
  egressEnforced?: boolean;
}

/** Why a restricted server is Blocked on a backend that cannot enforce egress: the same words in status and validate. */
export function egressUnsupportedMessage(serverId: string, egress: string): string {
  return (
    `server "${serverId}" has restricted egress (${egress}), which MCP_PORTAL_BACKEND=swarm cannot enforce: ` +
    `it is refused rather than run unrestricted (README, "Network egress")`
  );
}

/** A server's effective egress: its catalog's declaration narrowed by policy.json's entry for it, or the default. */
export function serverEgress(policy: PolicyFile, definition: ServerDefinition): EffectiveEgress {
  return effectiveEgress(
    definition.egress,
    ownValue(policy.egress.servers, definition.id) ?? policy.egress.default,
  );
}

export function effectiveLimits(
  policy: PolicyFile,
  userId: string,
  defaults: Limits,
  blockSize: number,
): Limits {
  // Without a policy value max_ports is the user's own block: a block made under an earlier
  // MCP_PORTAL_PORTS_PER_USER keeps serving as many ports as it has.
  const limits = {
    ...defaults,
    max_ports: blockSize,
    ...policy.default_limits,
    ...ownValue(policy.users, userId)?.limits,
  };
  return { ...limits, max_ports: Math.min(limits.max_ports, blockSize) };
}

/** policy.json's max_ports for the user when it asks for more ports than the user's block holds. */
function maxPortsBeyondBlock(policy: PolicyFile, userId: string, blockSize: number): number | undefined {
  const asked = ownValue(policy.users, userId)?.limits.max_ports ?? policy.default_limits.max_ports;
  return asked !== undefined && asked > blockSize ? asked : undefined;
}

/**
 * The whole desired state of one user, as a pure function of its inputs. Servers are considered in the order
 * of enabled-servers.json, so the servers a limit blocks are always the same ones for the same file.
 */
export function computeDesiredUser(input: DesiredUserInput): DesiredUser {
  const { installation, userId } = input;
  const blockSize = input.portBlock.end - input.portBlock.start + 1;
  const limits = effectiveLimits(input.policy, userId, input.defaultLimits, blockSize);
  const network = { name: networkName(installation, userId), bridgeName: bridgeName(installation, userId) };
  const allowedImages = resolveAllowedImages(input.policy.allowed_images, input.defaultAllowedImages);
  const outcomes = new Map<string, ServerOutcome>();
  const volumes = new Map<string, DesiredVolume>();
  const admitted: {
    definition: ServerDefinition;
    mounts: DesiredMount[];
    secrets: Map<string, SecretResolution & { ok: true }>;
  }[] = [];
  const usage = { containers: 0, memory_mb: 0, cpu_shares: 0, ports: 0 };

  const volumeFor = (area: UserArea, subpath: string): DesiredVolume => {
    const name =
      input.existingVolumes?.get(volumeKey(area, subpath)) ?? volumeName(installation, userId, area, subpath);
    let volume = volumes.get(name);
    if (!volume) {
      volume = {
        name,
        area,
        subpath,
        labels: {
          ...ownerLabels(installation, userId),
          [LABELS.volumeArea]: area,
          [LABELS.volumePath]: subpath,
        },
      };
    }
    return volume;
  };

  // Ports held by containers that a keepExisting block leaves running are not free for anyone else.
  const keptPorts = new Set<number>();
  // A kept container with restricted egress still needs its egress network and proxy.
  let keptRestricted = false;
  for (const entry of input.enabled.servers) {
    const merged = input.catalog.servers.get(entry.id);
    const block = (reason: BlockedOutcome["reason"], message: string, keepExisting: boolean): void => {
      outcomes.set(entry.id, { serverId: entry.id, kind: "blocked", reason, message, keepExisting });
      const port = input.currentPorts.get(entry.id);
      if (!keepExisting || port === undefined) return;
      // The kept container still runs and still counts against the user's limits.
      keptPorts.add(port);
      if (merged && serverEgress(input.policy, merged.definition).mode !== "unrestricted")
        keptRestricted = true;
      usage.containers += 1;
      usage.memory_mb += merged?.definition.resources.memory_mb ?? SERVER_DEFAULTS.memoryMb;
      usage.cpu_shares += merged?.definition.resources.cpu_shares ?? SERVER_DEFAULTS.cpuShares;
      usage.ports += 1;
    };
    if (!merged) {
      block("UnknownServer", `server "${entry.id}" is not in this user's catalog`, false);
      continue;
    }
    const definition = merged.definition;
    // Policy first: nothing a user file does may keep a banned image running, nor borrow an admin's loosening.
    if (shadowsAdminServer(merged, input.policy)) {
      block("ShadowsAdminServer", shadowsAdminServerMessage(entry.id, merged.origin.file), false);
      continue;
    }
    if (!isImageAllowed(definition.image, allowedImages.globs)) {
      block("ImageNotAllowed", imageNotAllowedMessage(definition.image, allowedImages.source), false);
      continue;
    }
    if (entry.config && !definition.user_configurable) {
      block(
        "InvalidSpec",
        `server "${entry.id}" is not user_configurable, but enabled-servers.json gives it config`,
        true,
      );
      continue;
    }
    if (input.egressEnforced === false) {
      const egress = serverEgress(input.policy, definition);
      if (egress.mode !== "unrestricted") {
        block(
          "EgressUnsupported",
          egressUnsupportedMessage(entry.id, describeEffectiveEgress(egress)),
          false,
        );
        continue;
      }
    }
    const userVolumes = entry.config?.volumes ?? [];
    if (userVolumes.length > 0 && !userVolumesAllowed(securityFor(input.policy, entry.id))) {
      block("InvalidSpec", userVolumesRefusedMessage(entry.id), false);
      continue;
    }
    const mountsResult = resolveMounts(definition, userVolumes, userId, volumeFor);
    if (!mountsResult.ok) {
      block("InvalidSpec", mountsResult.reason, true);
      continue;
    }
    const secrets = new Map<string, SecretResolution & { ok: true }>();
    const failures: (SecretResolution & { ok: false })[] = [];
    for (const name of definition.required_secrets) {
      const resolved = input.resolveSecret(name);
      if (resolved.ok) secrets.set(name, resolved);
      else failures.push(resolved);
    }
    if (failures.length > 0) {
      // Any secret we could not read means we cannot know the user's intent: keep what runs. Only when every
      // failure is a secret a valid file lacks does the server stop.
      const unreadable = failures.find((f) => f.reason === "SecretDecryptFailed");
      const first = unreadable ?? failures[0]!;
      block(first.reason, failures.map((f) => f.message).join("; "), unreadable !== undefined);
      continue;
    }
    const memoryMb = definition.resources.memory_mb ?? SERVER_DEFAULTS.memoryMb;
    const cpuShares = definition.resources.cpu_shares ?? SERVER_DEFAULTS.cpuShares;
    const idle = input.idleServers?.has(entry.id) === true;
    const exceeded = idle
      ? portLimitExceeded(usage, limits)
      : firstExceededLimit(usage, limits, memoryMb, cpuShares);
    if (exceeded) {
      // max_ports at the block's size (policy gives none, or more): the block is full, not an admin's limit.
      if (exceeded.limit === "max_ports" && limits.max_ports === blockSize) {
        const asked = maxPortsBeyondBlock(input.policy, userId, blockSize);
        block("PortBlockFull", portBlockFullMessage(input.portBlock, asked), false);
      } else block("LimitExceeded", exceeded.message, false);
      continue;
    }
    if (!idle) {
      usage.containers += 1;
      usage.memory_mb += memoryMb;
      usage.cpu_shares += cpuShares;
    }
    usage.ports += 1;
    for (const mount of mountsResult.mounts) {
      const volume = mountsResult.volumes.get(mount.volumeName);
      if (volume) volumes.set(volume.name, volume);
    }
    admitted.push({ definition, mounts: mountsResult.mounts, secrets });
  }

  const egressNetwork = {
    name: egressNetworkName(installation, userId),
    bridgeName: egressBridgeName(installation, userId),
  };
  const egressEntries: EgressPolicyEntry[] = [];
  const ports = assignHostPorts(
    input.portBlock,
    admitted.map((a) => a.definition.id),
    input.currentPorts,
    keptPorts,
  );
  for (const { definition, mounts, secrets } of admitted) {
    const hostPort = ports.get(definition.id);
    if (hostPort === undefined) {
      outcomes.set(definition.id, {
        serverId: definition.id,
        kind: "blocked",
        reason: "PortBlockFull",
        message: portBlockFullMessage(input.portBlock, maxPortsBeyondBlock(input.policy, userId, blockSize)),
        keepExisting: false,
      });
      continue;
    }
    const entry = input.enabled.servers.find((s) => s.id === definition.id);
    const egress = serverEgress(input.policy, definition);
    const addressOffset =
      egress.mode === "unrestricted" ? undefined : serverAddressOffset(hostPort, input.portBlock.start);
    if (egress.mode !== "unrestricted" && addressOffset !== undefined) {
      egressEntries.push({
        server: definition.id,
        offset: addressOffset,
        mode: egress.mode,
        allow: egress.mode === "allow" ? egress.allow : [],
      });
    }
    outcomes.set(
      definition.id,
      buildRunOutcome(input, definition, {
        hostPort,
        mounts,
        secrets,
        network: addressOffset === undefined ? network.name : egressNetwork.name,
        overrides: entry?.config?.environment ?? {},
        security: securityFor(input.policy, definition.id),
        egress,
        addressOffset,
      }),
    );
  }
  const egressPart =
    egressEntries.length > 0 || keptRestricted
      ? {
          network: egressNetwork,
          proxy: buildEgressProxyOutcome({
            installation,
            userId,
            image: input.egressProxyImage ?? DEFAULT_EGRESS_PROXY_IMAGE,
            userNetwork: network.name,
            egressNetwork: egressNetwork.name,
            containerUser: input.containerUser,
            servers: egressEntries,
            ...(input.egressExtraHosts ? { extraHosts: input.egressExtraHosts } : {}),
          }),
        }
      : undefined;

  return {
    userId,
    network,
    volumes: [...volumes.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
    servers: input.enabled.servers
      .map((s) => outcomes.get(s.id))
      .filter((o): o is ServerOutcome => o !== undefined),
    limits,
    usage,
    ...(egressPart ? { egress: egressPart } : {}),
  };
}

/** Why a server gets no host port: the user's block is full (and, when so, policy.json asks for more). */
function portBlockFullMessage(block: PortRange, maxPortsAsked: number | undefined): string {
  const size = block.end - block.start + 1;
  const asked =
    maxPortsAsked === undefined
      ? ""
      : `; policy.json gives max_ports ${maxPortsAsked}, more than the block holds`;
  return (
    `every port of the user's block ${block.start}-${block.end} (${size} ports) is taken${asked}: a block keeps ` +
    `the size it was made with (README, "Capacity": how to move a user to a larger block)`
  );
}

function firstExceededLimit(
  usage: { containers: number; memory_mb: number; cpu_shares: number; ports: number },
  limits: Limits,
  memoryMb: number,
  cpuShares: number,
): LimitExceeded | undefined {
  return runningLimitExceeded(usage, limits, memoryMb, cpuShares) ?? portLimitExceeded(usage, limits);
}

type LimitExceeded = { limit: keyof Limits; message: string };

function portLimitExceeded(usage: { ports: number }, limits: Limits): LimitExceeded | undefined {
  return usage.ports + 1 > limits.max_ports
    ? { limit: "max_ports", message: `max_ports ${limits.max_ports} reached` }
    : undefined;
}

/**
 * The first limit of running servers (containers, memory, CPU shares) one more running server would exceed; what
 * refuses waking an idle server whose port is already counted.
 */
export function runningLimitExceeded(
  usage: { containers: number; memory_mb: number; cpu_shares: number },
  limits: Limits,
  memoryMb: number,
  cpuShares: number,
): LimitExceeded | undefined {
  if (usage.containers + 1 > limits.max_containers)
    return {
      limit: "max_containers",
      message: `max_containers ${limits.max_containers} reached (${usage.containers} servers admitted before this one)`,
    };
  if (usage.memory_mb + memoryMb > limits.max_memory_mb)
    return {
      limit: "max_memory_mb",
      message: `max_memory_mb ${limits.max_memory_mb} would be exceeded: ${usage.memory_mb} MB admitted + ${memoryMb} MB requested`,
    };
  if (usage.cpu_shares + cpuShares > limits.max_cpu_shares)
    return {
      limit: "max_cpu_shares",
      message: `max_cpu_shares ${limits.max_cpu_shares} would be exceeded: ${usage.cpu_shares} admitted + ${cpuShares} requested`,
    };
  return undefined;
}

type MountsResult =
  { ok: true; mounts: DesiredMount[]; volumes: Map<string, DesiredVolume> } | { ok: false; reason: string };

function resolveMounts(
  definition: ServerDefinition,
  userVolumes: readonly { host_path: string; container_path: string; mode: "ro" | "rw" }[],
  userId: string,
  volumeFor: (area: UserArea, subpath: string) => DesiredVolume,
): MountsResult {
  const byTarget = new Map<string, DesiredMount>();
  const volumes = new Map<string, DesiredVolume>();
  const add = (area: UserArea, subpath: string, target: string, readOnly: boolean) => {
    const volume = volumeFor(area, subpath);
    volumes.set(volume.name, volume);
    byTarget.set(target, { volumeName: volume.name, target, readOnly });
  };
  for (const mount of DEFAULT_MOUNTS) add(mount.area, "", mount.target, false);
  const requested = [
    ...definition.volumes.map((v) => ({ ...v, from: "catalog" })),
    ...userVolumes.map((v) => ({ ...v, from: "enabled-servers.json config" })),
  ];
  for (const volume of requested) {
    const resolved = resolveUserVolumePath(volume.host_path, userId);
    if (!resolved.ok)
      return { ok: false, reason: `volume ${volume.host_path} (${volume.from}): ${resolved.reason}` };
    add(resolved.value.area, resolved.value.subpath, volume.container_path, volume.mode === "ro");
  }
  const mounts = [...byTarget.values()].sort((a, b) => (a.target < b.target ? -1 : 1));
  const used = new Map([...volumes].filter(([name]) => mounts.some((m) => m.volumeName === name)));
  return { ok: true, mounts, volumes: used };
}

interface RunContext {
  hostPort: number;
  mounts: DesiredMount[];
  secrets: Map<string, { value: string; digest: string }>;
  network: string;
  overrides: Readonly<Record<string, string>>;
  security: ServerSecurityOverride | undefined;
  egress: EffectiveEgress;
  /** Set for restricted egress: the server's address offset on the egress network (`network`). */
  addressOffset: number | undefined;
}

function buildRunOutcome(input: DesiredUserInput, definition: ServerDefinition, ctx: RunContext): RunOutcome {
  const declared = definition.ports[0];
  const portal: Record<string, string> = {
    MCP_USER_ID: input.userId,
    MCP_SERVER_ID: definition.id,
    MCP_PORTAL_VERSION: input.portalVersion,
    MCP_NETWORK_NAME: ctx.network,
    MCP_TRANSPORT: definition.transport,
    MCP_SERVER_PORT: String(declared?.container_port ?? ctx.hostPort),
  };
  const secretValues: Record<string, string> = {};
  const secretDigests: Record<string, string> = {};
  for (const [name, resolved] of ctx.secrets) {
    secretValues[name] = resolved.value;
    secretDigests[name] = resolved.digest;
  }
  // A loosened server (root, added capabilities) takes from the user's environment only what the admin lists:
  // LD_PRELOAD pointing into the user's writable /data would otherwise run the user's code with those rights.
  const allowance = userEnvAllowance(ctx.security);
  const userShared = selectEnvironment(input.enabled.environment, allowance);
  const userOverrides = selectEnvironment(ctx.overrides, allowance);
  const droppedUserEnv = [...new Set([...userShared.dropped, ...userOverrides.dropped])].sort();
  const { env, hashable } = buildEnvironment(
    [
      { values: definition.environment },
      { values: userShared.values },
      { values: portal },
      { values: secretValues, secret: true },
      { values: userOverrides.values },
      // Last, so that no user setting points a restricted server elsewhere (it could reach nothing anyway).
      { values: ctx.egress.mode === "unrestricted" ? {} : restrictedServerEnv(ctx.egress.mode) },
    ],
    secretDigests,
    new Set(["MCP_PORTAL_VERSION"]),
  );
  const isHttp = definition.transport !== "stdio";
  const cmd =
    definition.command || definition.args
      ? [...(definition.command ?? []), ...(definition.args ?? [])]
      : undefined;
  const security = ctx.security ?? {};
  const spec: Omit<ContainerSpec, "labels" | "env"> = {
    name: containerName(input.installation, input.userId, definition.id),
    image: `${definition.image}:${definition.tag}`,
    ...(cmd ? { cmd } : {}),
    user: security.user ?? input.containerUser,
    network: ctx.network,
    hostPort: ctx.hostPort,
    ...(isHttp && declared && input.publishPorts
      ? {
          publish: {
            containerPort: declared.container_port,
            protocol: declared.protocol,
            hostIp: security.publish_host ?? input.publishHost,
            hostPort: ctx.hostPort,
          },
        }
      : {}),
    exposedPorts: definition.ports.map((p) => ({ port: p.container_port, protocol: p.protocol })),
    memoryBytes: (definition.resources.memory_mb ?? SERVER_DEFAULTS.memoryMb) * 1024 * 1024,
    cpuShares: definition.resources.cpu_shares ?? SERVER_DEFAULTS.cpuShares,
    pidsLimit: definition.resources.pids_limit ?? SERVER_DEFAULTS.pidsLimit,
    mounts: ctx.mounts,
    capAdd: [...(security.cap_add ?? [])].sort(),
    noNewPrivileges: security.no_new_privileges ?? true,
    readOnlyRootfs: security.read_only_rootfs ?? false,
    tmpfs: { "/tmp": "rw,noexec,nosuid,size=64m" },
    openStdin: !isHttp,
    // Only restricted servers carry these keys: an unrestricted server's spec, and so its hash, is as before.
    ...(ctx.addressOffset !== undefined
      ? { addressOffset: ctx.addressOffset, dnsFromEgressProxy: true }
      : {}),
    healthCheck: {
      interval_seconds: definition.health_check?.interval_seconds ?? HEALTH_DEFAULTS.interval_seconds,
      timeout_seconds: definition.health_check?.timeout_seconds ?? HEALTH_DEFAULTS.timeout_seconds,
      retries: definition.health_check?.retries ?? HEALTH_DEFAULTS.retries,
      start_period_seconds:
        definition.health_check?.start_period_seconds ?? HEALTH_DEFAULTS.start_period_seconds,
    },
  };
  const specFields: Record<string, string> = {};
  const hashed = { ...spec, env: hashable };
  for (const [key, value] of Object.entries(hashed)) specFields[key] = canonicalHashPrefix(value, 16);
  for (const [key, value] of Object.entries(hashable))
    specFields[`env.${key}`] = canonicalHashPrefix(value, 16);
  const specHash = canonicalHashPrefix({ v: SPEC_SCHEMA_VERSION, ...hashed }, 32);
  const labels = {
    ...ownerLabels(input.installation, input.userId),
    [LABELS.serverId]: definition.id,
    [LABELS.specHash]: specHash,
    [LABELS.hostPort]: String(ctx.hostPort),
    [LABELS.transport]: definition.transport,
    [LABELS.specFields]: canonicalJson(specFields),
    [LABELS.healthCheck]: canonicalJson(spec.healthCheck),
    ...(isHttp && declared ? { [LABELS.containerPort]: String(declared.container_port) } : {}),
  };
  return {
    serverId: definition.id,
    kind: "run",
    spec: { ...spec, env, labels },
    specHash,
    specFields,
    memoryMb: definition.resources.memory_mb ?? SERVER_DEFAULTS.memoryMb,
    cpuShares: spec.cpuShares,
    idleTimeoutSeconds: effectiveIdleTimeoutSeconds(definition, input.policy, input.userId),
    ...(droppedUserEnv.length > 0 ? { droppedUserEnv } : {}),
    egress: ctx.egress,
  };
}
