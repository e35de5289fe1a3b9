import type { Config } from "../config.js";
import { excludedBlocks, formatPortSpan, portPoolCapacity } from "../desired/port-blocks.js";
import { parseIpv4Cidr, subnetPoolCapacity } from "../desired/subnets.js";
import { DATA_PATHS } from "../catalog/data-tree.js";
import type { PolicyFile } from "../schema/policy.js";
import { type Problem, jsonPath } from "./problem.js";

/*
 * Warnings before a pool runs out: `validate` compares the users of the tree with what the pools hold,
 * `plan` the users that need a new block or subnet with what is still free on the engine. Never a failure:
 * the users the pools cannot take are Stalled (PortPoolExhausted, SubnetPoolExhausted), the others run.
 */

export type PoolSettings = Pick<Config, "portRange" | "portsPerUser" | "excludedPorts" | "subnetPool">;

/** How many users the pools give a block and a subnet when nothing holds any yet. */
export function emptyPoolCapacity(settings: PoolSettings): { blocks: number; subnets: number } {
  const pool = parseIpv4Cidr(settings.subnetPool.base);
  return {
    blocks: portPoolCapacity(settings.portRange, settings.portsPerUser, settings.excludedPorts),
    subnets: pool ? subnetPoolCapacity(pool, settings.subnetPool.prefixLength) : 0,
  };
}

/** Users that need something from a pool, and how much of it is free. */
export interface PoolDemand {
  needed: number;
  free: number;
  /** Subnets: how many of `needed` are egress networks (a user with a restricted server holds two subnets). */
  egress?: number;
}

/**
 * One line per pool that cannot serve every user that needs it. `tree`: the users of the tree against empty
 * pools (`validate`); `engine`: the users without a block or network against what the engine leaves free (`plan`).
 */
export function poolShortfalls(
  settings: PoolSettings,
  demand: { blocks: PoolDemand; subnets: PoolDemand },
  scope: "tree" | "engine",
): string[] {
  const warnings: string[] = [];
  const { blocks, subnets } = demand;
  if (blocks.needed > blocks.free) {
    warnings.push(
      `${shortfall(blocks, scope, "port block")} (${describePortPool(settings)}): ` +
        `${blocks.needed - blocks.free} would stay Stalled (PortPoolExhausted); widen ` +
        `MCP_PORTAL_PORT_RANGE_START/_END or lower MCP_PORTAL_PORTS_PER_USER (README, "Capacity")`,
    );
  }
  if (subnets.needed > subnets.free) {
    warnings.push(
      `${shortfall(subnets, scope, "subnet")} (${describeSubnetPool(settings)}): ` +
        `${subnets.needed - subnets.free} would stay Stalled (SubnetPoolExhausted); widen ` +
        `MCP_PORTAL_USER_NETWORK_SUBNET_BASE or raise MCP_PORTAL_USER_NETWORK_SUBNET_SIZE (README, "Capacity")`,
    );
  }
  return warnings;
}

function shortfall(demand: PoolDemand, scope: "tree" | "engine", what: string): string {
  const egress = demand.egress ?? 0;
  if (egress === 0) {
    return scope === "tree"
      ? `the tree has ${demand.needed} users, but the ${what} pool holds ${demand.free}`
      : `${demand.needed} users need a new ${what}, but only ${demand.free} are free`;
  }
  const users = demand.needed - egress;
  return scope === "tree"
    ? `the tree needs ${demand.needed} ${what}s (${users} users, ${egress} of them with restricted egress ` +
        `and a second ${what} for it), but the ${what} pool holds ${demand.free}`
    : `${demand.needed} new ${what}s are needed (${egress} of them egress networks), but only ${demand.free} are free`;
}

function describePortPool(settings: PoolSettings): string {
  const { portRange, portsPerUser, excludedPorts } = settings;
  const skipped = excludedBlocks(portRange, portsPerUser, excludedPorts).size;
  return (
    `blocks of ${portsPerUser} ports in ${formatPortSpan(portRange)}` +
    (skipped > 0 ? `, ${skipped} skipped for MCP_PORTAL_PORT_EXCLUDE` : "")
  );
}

function describeSubnetPool(settings: PoolSettings): string {
  return `/${settings.subnetPool.prefixLength} subnets of ${settings.subnetPool.base}`;
}

/**
 * policy.json limits asking for more ports than a new user's block holds: those servers would be Blocked
 * (PortBlockFull), since a block never grows once the user's network exists.
 */
export function maxPortsWarnings(policy: PolicyFile, portsPerUser: number): Problem[] {
  const warnings: Problem[] = [];
  const check = (maxPorts: number | undefined, at: readonly PropertyKey[]): void => {
    if (maxPorts === undefined || maxPorts <= portsPerUser) return;
    warnings.push({
      file: DATA_PATHS.policy,
      path: jsonPath([...at, "max_ports"]),
      message:
        `${maxPorts} is more than a new user's port block holds (MCP_PORTAL_PORTS_PER_USER ${portsPerUser}): ` +
        `servers beyond the block are Blocked (PortBlockFull); a block does not grow once the user's network exists`,
    });
  };
  check(policy.default_limits.max_ports, ["default_limits"]);
  for (const [userId, entry] of Object.entries(policy.users))
    check(entry.limits.max_ports, ["users", userId, "limits"]);
  return warnings;
}
