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
  portBlock: "mcp.portal.port_block",
  volumeArea: "mcp.portal.volume_area",
  volumePath: "mcp.portal.volume_path",
  transport: "mcp.portal.transport",
  /** The port an HTTP server listens on inside its container (the gateway proxies to it). */
  containerPort: "mcp.portal.container_port",
  /** JSON {interval_seconds, timeout_seconds, retries, start_period_seconds} for the gateway's MCP probe. */
  healthCheck: "mcp.portal.health_check",
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
