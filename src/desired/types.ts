import type { Limits } from "../config.js";
import type { EffectiveEgress } from "./egress-rules.js";
import type { UserArea } from "./volume-paths.js";

export interface DesiredMount {
  volumeName: string;
  target: string;
  readOnly: boolean;
}

export interface DesiredVolume {
  name: string;
  area: UserArea;
  subpath: string;
  labels: Record<string, string>;
}

export interface PublishedPort {
  containerPort: number;
  protocol: "tcp" | "udp";
  hostIp: string;
  hostPort: number;
}

/** Everything needed to create one server's container; `env` holds secret values and is never logged. */
export interface ContainerSpec {
  name: string;
  image: string;
  cmd?: string[];
  env: Record<string, string>;
  labels: Record<string, string>;
  user: string;
  network: string;
  hostPort: number;
  publish?: PublishedPort;
  exposedPorts: { port: number; protocol: "tcp" | "udp" }[];
  memoryBytes: number;
  cpuShares: number;
  pidsLimit: number;
  mounts: DesiredMount[];
  capAdd: string[];
  noNewPrivileges: boolean;
  readOnlyRootfs: boolean;
  tmpfs: Record<string, string>;
  openStdin: boolean;
  /**
   * Restricted egress (`network` is then the user's egress network): the container's fixed address there, as an
   * offset from the subnet's start. The executor turns it into an address once the network's subnet is known.
   */
  addressOffset?: number;
  /** DNS answered by the user's egress proxy (its address, resolved by the executor), never the host's. */
  dnsFromEgressProxy?: boolean;
  /** Networks joined after `network` (the egress proxy's), each with an optional fixed address and aliases. */
  extraNetworks?: { name: string; addressOffsetFromEnd?: number; aliases?: string[] }[];
  /** `name:address` lines for /etc/hosts (the egress proxy's, from MCP_PORTAL_EGRESS_EXTRA_HOSTS). */
  extraHosts?: string[];
  /** Namespaced sysctls (the egress proxy's). */
  sysctls?: Record<string, string>;
  healthCheck: {
    interval_seconds: number;
    timeout_seconds: number;
    retries: number;
    start_period_seconds: number;
  };
}

export const BLOCK_REASONS = [
  "UnknownServer",
  "InvalidSpec",
  "ImageNotAllowed",
  "MissingSecret",
  "SecretDecryptFailed",
  "LimitExceeded",
  "NameConflict",
  "ImagePullBackOff",
  "CrashLoopBackOff",
  "InvalidDesiredState",
  /** A user's custom server takes the id of a server that policy.json server_security loosens. */
  "ShadowsAdminServer",
  /** Every port of the user's block is taken (policy.json may allow more ports than the block holds). */
  "PortBlockFull",
  /** A restricted egress (`none`/`allow`) the backend cannot enforce (Swarm): refused, never run unrestricted. */
  "EgressUnsupported",
] as const;
export type BlockReason = (typeof BLOCK_REASONS)[number];

export interface RunOutcome {
  serverId: string;
  kind: "run";
  spec: ContainerSpec;
  specHash: string;
  /** Field-by-field digest of the spec, so a replace can say what changed. */
  specFields: Record<string, string>;
  memoryMb: number;
  cpuShares: number;
  /**
   * Seconds without client requests after which the container is stopped (0: always on); see
   * desired/idle-timeout.ts. Not part of the spec, its hash or its labels: changing it replaces nothing.
   */
  idleTimeoutSeconds: number;
  /**
   * Names of the user's environment (top-level or per-server) this server does not receive because
   * policy.json server_security loosens it and its `user_env_allow` does not list them; sorted, absent when none.
   */
  droppedUserEnv?: string[];
  /** The server's effective egress (status); absent on the egress proxy. */
  egress?: EffectiveEgress;
}

export interface BlockedOutcome {
  serverId: string;
  kind: "blocked";
  reason: BlockReason;
  message: string;
  /**
   * True when the block comes from input that could not be read or trusted: an existing container is then
   * left as it is (the last good state keeps running). False when a valid desired state says "not this".
   */
  keepExisting: boolean;
}

export type ServerOutcome = RunOutcome | BlockedOutcome;

export interface ResourceUsage {
  containers: number;
  memory_mb: number;
  cpu_shares: number;
  ports: number;
}

export interface DesiredUser {
  userId: string;
  network: { name: string; bridgeName: string };
  volumes: DesiredVolume[];
  servers: ServerOutcome[];
  limits: Limits;
  usage: ResourceUsage;
  /**
   * Present when a server of the user has restricted egress: the user's internal egress network and its proxy
   * (which counts toward no limit).
   */
  egress?: { network: { name: string; bridgeName: string }; proxy: RunOutcome };
}
