/** Label keys (contract: README, "Docker objects and labels"). Every object we own carries them; every query filters by them. */
export const LABELS = {
  managedBy: "mcp.portal.managed_by",
  installation: "mcp.portal.installation",
  userId: "mcp.portal.user_id",
  serverId: "mcp.portal.server_id",
  specHash: "mcp.portal.spec_hash",
  /** Short digests per spec field, so a replace can name what changed. */
  specFields: "mcp.portal.spec_fields",
  hostPort: "mcp.portal.host_port",
  createdAt: "mcp.portal.created_at",
  networkType: "mcp.portal.network_type",
  /** On a user's network: its port block, `<start>:<size>` (portBlockLabel; a bare `<start>` is a legacy block). */
  portBlock: "mcp.portal.port_block",
  volumeArea: "mcp.portal.volume_area",
  volumePath: "mcp.portal.volume_path",
  transport: "mcp.portal.transport",
  /** The port an HTTP server listens on inside its container (the gateway proxies to it). */
  containerPort: "mcp.portal.container_port",
  /** JSON {interval_seconds, timeout_seconds, retries, start_period_seconds} for the gateway's MCP probe. */
  healthCheck: "mcp.portal.health_check",
  /** Our infrastructure containers (no server_id): `egress-proxy`. */
  role: "mcp.portal.role",
} as const;

export const MANAGED_BY = "mcp-portal";

export function ownerLabels(installation: string, userId: string): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.installation]: installation,
    [LABELS.userId]: userId,
  };
}

/** `key=value` filters selecting everything this installation owns (optionally one user's). */
export function ownerFilters(installation: string, userId?: string): string[] {
  const filters = [`${LABELS.managedBy}=${MANAGED_BY}`, `${LABELS.installation}=${installation}`];
  if (userId !== undefined) filters.push(`${LABELS.userId}=${userId}`);
  return filters;
}

export function isOwnedBy(labels: Readonly<Record<string, string>>, installation: string): boolean {
  return labels[LABELS.managedBy] === MANAGED_BY && labels[LABELS.installation] === installation;
}

/**
 * Size of a block whose `port_block` label is a bare start (written before sizes were recorded): 0.1's
 * MCP_PORTAL_PORTS_PER_USER default. Such a block never reaches into the next block (see parsePortBlockLabel).
 */
export const LEGACY_PORT_BLOCK_SIZE = 100;

/** A user's port block as its network's `port_block` label records it. */
export interface PortBlockLabel {
  start: number;
  size: number;
  /** A bare start: `size` is LEGACY_PORT_BLOCK_SIZE, an upper bound (the block ends where the next one starts). */
  legacy: boolean;
}

/** The `port_block` label value: `<start>:<size>`, e.g. `10016:16`. */
export function portBlockLabel(block: { start: number; end: number }): string {
  return `${block.start}:${block.end - block.start + 1}`;
}

/** Reads a `port_block` label: `<start>:<size>`, or a bare `<start>` (legacy); undefined when it is neither. */
export function parsePortBlockLabel(value: string | undefined): PortBlockLabel | undefined {
  const match = value === undefined ? null : /^(\d{1,9})(?::(\d{1,9}))?$/.exec(value);
  if (!match) return undefined;
  const start = Number(match[1]);
  const size = match[2] === undefined ? LEGACY_PORT_BLOCK_SIZE : Number(match[2]);
  if (start < 1 || size < 1) return undefined;
  return { start, size, legacy: match[2] === undefined };
}
