import { LABELS, ownerLabels } from "../labels.js";
import { canonicalHashPrefix, canonicalJson, sha256Hex } from "../util/canonical-json.js";
import type { EffectiveEgress } from "./egress-rules.js";
import type { ContainerSpec, RunOutcome } from "./types.js";
import {
  EGRESS_POLICY_VERSION,
  type EgressPolicyDocument,
  type EgressPolicyEntry,
} from "../contracts/egress-policy.js";

/*
 * What a user's restricted servers need (README, "Network egress"), pure: the user's second, internal network,
 * where restricted servers live with no route out, and the user's egress proxy, the one way out of it. The proxy
 * is on both networks; it resolves and connects for allow-listed destinations and answers DNS only for them.
 */

/** The proxy's key among a user's workloads: not a valid server id (ids have no dot), so it can never collide. */
export const EGRESS_PROXY_KEY = ".egress-proxy";
/** The `mcp.portal.role` label of an egress proxy container. */
export const EGRESS_PROXY_ROLE = "egress-proxy";
/** Network alias of the proxy on the egress network (servers' HTTP(S)_PROXY name it). */
export const EGRESS_PROXY_ALIAS = "egress-proxy";
/** The proxy's HTTP proxy port (CONNECT and plain HTTP) and its DNS port. */
export const EGRESS_PROXY_PORT = 3128;
export const EGRESS_DNS_PORT = 53;
/**
 * The proxy's address on the egress network: this many addresses before the end of the subnet (the last usable
 * one; servers take the addresses after the bridge's, see serverAddressOffset).
 */
export const EGRESS_PROXY_OFFSET_FROM_END = 2;
/** The proxy's resources: fixed, and not counted against the user's limits. */
export const EGRESS_PROXY_RESOURCES = { memoryMb: 64, cpuShares: 64, pidsLimit: 64 } as const;

export function egressNetworkName(installation: string, userId: string): string {
  return installation === "default"
    ? `mcp-egress-${userId}`
    : `mcp-egress-${userId}-${sha256Hex(installation).slice(0, 6)}`;
}

export function egressBridgeName(installation: string, userId: string): string {
  return `mcpeg-${sha256Hex(`${installation}\u0000${userId}\u0000egress`).slice(0, 9)}`;
}

export function egressProxyName(installation: string, userId: string): string {
  return `mcp-${userId}-egress-proxy-${sha256Hex(`${installation}\u0000${userId}\u0000${EGRESS_PROXY_KEY}`).slice(0, 6)}`;
}

/**
 * A restricted server's fixed address on the egress network, as an offset from the subnet's start: after the
 * network address and the bridge, one per port of the user's block. The proxy maps a connection's source
 * address back to the server by it, so no server can pass for another.
 */
export function serverAddressOffset(hostPort: number, blockStart: number): number {
  return hostPort - blockStart + 2;
}

/** The environment a restricted server gets: the proxy for `allow`, nothing for `none`. */
export function restrictedServerEnv(mode: "none" | "allow"): Record<string, string> {
  if (mode === "none") return {};
  const url = `http://${EGRESS_PROXY_ALIAS}:${EGRESS_PROXY_PORT}`;
  return {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    NO_PROXY: "localhost,127.0.0.1",
    no_proxy: "localhost,127.0.0.1",
  };
}

export interface EgressProxyInput {
  installation: string;
  userId: string;
  image: string;
  /** The user's own (routed) network: the proxy's way out. */
  userNetwork: string;
  egressNetwork: string;
  containerUser: string;
  /** `name:address` entries the proxy resolves without DNS (MCP_PORTAL_EGRESS_EXTRA_HOSTS). */
  extraHosts?: readonly string[];
  /** Restricted servers, sorted by server id. */
  servers: readonly EgressPolicyEntry[];
}

/** The user's egress proxy as a workload: the planner creates, replaces, restarts and removes it like a server. */
export function buildEgressProxyOutcome(input: EgressProxyInput): RunOutcome {
  const policy: EgressPolicyDocument = {
    version: EGRESS_POLICY_VERSION,
    user: input.userId,
    servers: [...input.servers].sort((a, b) => (a.server < b.server ? -1 : a.server > b.server ? 1 : 0)),
  };
  const env = { MCP_PORTAL_EGRESS_POLICY: canonicalJson(policy) };
  const spec: Omit<ContainerSpec, "labels"> = {
    name: egressProxyName(input.installation, input.userId),
    image: input.image,
    env,
    user: input.containerUser,
    network: input.userNetwork,
    extraNetworks: [
      {
        name: input.egressNetwork,
        addressOffsetFromEnd: EGRESS_PROXY_OFFSET_FROM_END,
        aliases: [EGRESS_PROXY_ALIAS],
      },
    ],
    // Port 53 without root or a capability: the namespaced sysctl moves the privileged-port floor.
    sysctls: { "net.ipv4.ip_unprivileged_port_start": String(EGRESS_DNS_PORT) },
    ...(input.extraHosts && input.extraHosts.length > 0 ? { extraHosts: [...input.extraHosts] } : {}),
    hostPort: 0,
    exposedPorts: [],
    memoryBytes: EGRESS_PROXY_RESOURCES.memoryMb * 1024 * 1024,
    cpuShares: EGRESS_PROXY_RESOURCES.cpuShares,
    pidsLimit: EGRESS_PROXY_RESOURCES.pidsLimit,
    mounts: [],
    capAdd: [],
    noNewPrivileges: true,
    readOnlyRootfs: true,
    tmpfs: { "/tmp": "rw,noexec,nosuid,size=16m" },
    openStdin: false,
    healthCheck: { interval_seconds: 10, timeout_seconds: 5, retries: 3, start_period_seconds: 0 },
  };
  const specFields: Record<string, string> = {};
  for (const [key, value] of Object.entries(spec)) specFields[key] = canonicalHashPrefix(value, 16);
  const specHash = canonicalHashPrefix({ v: 1, ...spec }, 32);
  return {
    serverId: EGRESS_PROXY_KEY,
    kind: "run",
    spec: {
      ...spec,
      labels: {
        ...ownerLabels(input.installation, input.userId),
        [LABELS.role]: EGRESS_PROXY_ROLE,
        [LABELS.specHash]: specHash,
        [LABELS.specFields]: canonicalJson(specFields),
      },
    },
    specHash,
    specFields,
    memoryMb: EGRESS_PROXY_RESOURCES.memoryMb,
    cpuShares: EGRESS_PROXY_RESOURCES.cpuShares,
    // The proxy is the way out of the user's restricted servers: it never idles (no client traffic reaches it).
    idleTimeoutSeconds: 0,
  };
}

/** The restricted part of a server's effective egress, or undefined when it is unrestricted. */
export function restrictedMode(egress: EffectiveEgress): "none" | "allow" | undefined {
  return egress.mode === "unrestricted" ? undefined : egress.mode;
}

/** The proxy image when MCP_PORTAL_EGRESS_PROXY_IMAGE is not set (scripts/build-egress-proxy-image.sh builds it). */
export const DEFAULT_EGRESS_PROXY_IMAGE = "mcp-portal-egress-proxy:1";
