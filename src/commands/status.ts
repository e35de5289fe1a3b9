import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { listUserDirs } from "../catalog/data-tree.js";
import type { Config } from "../config.js";
import { runtimeFor } from "../docker/backend.js";
import type { ActualContainer } from "../docker/runtime.js";
import { LABELS, ownerFilters } from "../labels.js";
import { type ServerStatus, UserStatus, statusFilePath } from "../contracts/status-file.js";
import { isValidUserId } from "../util/ids.js";
import {
  commandFailure,
  commandOptions,
  errorMessage,
  parseInstallationViewOptions,
  writeJson,
} from "./common.js";
import type { CommandIo } from "./io.js";

const USAGE = `Usage: mcp-portal status [--data-dir DIR] [--state-dir DIR] [--installation NAME] [--user ID] [--output text|json]

Users and their servers: phase and reason from the controller's status files, host port, the container's
state and age from the engine (one label-filtered listing). Users without a status file yet show as Unknown.
Reads only; never writes.

Options:
  --data-dir DIR         desired-state tree, for the list of users (MCP_PORTAL_DATA_DIR, default .)
  --state-dir DIR        where the status files are (MCP_PORTAL_STATE_DIR, default <data-dir>/.mcp-portal)
  --installation NAME    label value of the installation (MCP_PORTAL_INSTALLATION)
  --backend KIND         engine or swarm (MCP_PORTAL_BACKEND, default engine)
  --user ID              only this user
  --output FORMAT        text (default): aligned table; json: {"users":[{"user_id","phase","servers":[...]}]}

Exit codes: 0 shown, 1 the engine cannot be reached (or a listing failed), 2 usage error.
`;

export interface ServerStatusView {
  id: string;
  /** From the status file; Unknown when the controller has not written one for this server. */
  phase: ServerStatus["phase"] | "Unknown";
  reason?: string;
  message?: string;
  host_port?: number;
  /** The URL MCP clients use (status file, when the gateway serves the ports). */
  url?: ServerStatus["url"];
  /** The tool policy and rate limit the gateway enforces (status file). */
  tools?: ServerStatus["tools"];
  rate_limit?: ServerStatus["rate_limit"];
  container_name?: string;
  container_id?: string;
  /** The container's state on the engine now, or "missing". */
  state: string;
  created_at?: string;
  age_seconds?: number;
  /** Swarm: the node its task runs on now (from the listing, else the status file). */
  node?: string;
  /** Hardening the backend cannot express (Swarm). */
  warnings?: string[];
}

export interface UserStatusView {
  user_id: string;
  phase: UserStatus["phase"] | "Unknown";
  /** The Ready condition's reason, or why the phase is Unknown. */
  reason?: string;
  /** When the status file was last reconciled. */
  last_reconcile?: string;
  servers: ServerStatusView[];
}

/** `mcp-portal status`; `args` are the arguments after "status". */
export async function statusCommand(args: string[], io: CommandIo): Promise<number> {
  const options = await commandOptions(io, USAGE, () => parseInstallationViewOptions(args, io.env));
  if (typeof options === "number") return options;
  const { config } = options;
  const runtime = runtimeFor(config, io.env);
  let containers: ActualContainer[];
  try {
    containers = await runtime.listContainers(ownerFilters(config.installation, options.user));
  } catch (error) {
    const message = `cannot list containers on the Docker Engine: ${errorMessage(error)}`;
    return commandFailure(io, options.output, "status", message);
  }
  const users = await collectStatus(config, options.user, containers, Date.now());
  if (options.output === "json") writeJson(io, { users });
  else io.stdout.write(formatStatus(users));
  return 0;
}

/** Joins the status files with one container listing. Pure apart from reading files; `now` in ms. */
export async function collectStatus(
  config: Config,
  onlyUser: string | undefined,
  containers: readonly ActualContainer[],
  now: number,
): Promise<UserStatusView[]> {
  const byUser = new Map<string, ActualContainer[]>();
  for (const c of containers) {
    const u = c.labels[LABELS.userId];
    if (!u || !isValidUserId(u) || c.labels[LABELS.serverId] === undefined) continue;
    byUser.set(u, [...(byUser.get(u) ?? []), c]);
  }
  let ids: string[];
  if (onlyUser !== undefined) {
    ids = [onlyUser];
  } else {
    const dirs = await listUserDirs(config.dataDir);
    ids = [...new Set([...dirs.names, ...(await statusFileUsers(config.stateDir)), ...byUser.keys()])].sort();
  }
  const views: UserStatusView[] = [];
  for (const userId of ids) {
    const status = await readStatusFile(config.stateDir, userId);
    views.push(userView(userId, status, byUser.get(userId) ?? [], now));
  }
  return views;
}

export function userView(
  userId: string,
  status: UserStatus | undefined,
  containers: readonly ActualContainer[],
  now: number,
): UserStatusView {
  const remaining = [...containers];
  const take = (s: ServerStatus): ActualContainer | undefined => {
    const index = s.container_id !== undefined ? remaining.findIndex((c) => c.id === s.container_id) : -1;
    const found = index >= 0 ? index : remaining.findIndex((c) => c.labels[LABELS.serverId] === s.id);
    return found >= 0 ? remaining.splice(found, 1)[0] : undefined;
  };
  const servers: ServerStatusView[] = [];
  for (const s of status?.servers ?? []) {
    const container = take(s);
    const node = container?.node ?? s.node;
    servers.push({
      id: s.id,
      phase: s.phase,
      ...(s.reason ? { reason: s.reason } : {}),
      ...(s.message ? { message: s.message } : {}),
      ...hostPort(s.host_port, container),
      ...(s.url !== undefined ? { url: s.url } : {}),
      ...(s.tools !== undefined ? { tools: s.tools } : {}),
      ...(s.rate_limit !== undefined ? { rate_limit: s.rate_limit } : {}),
      ...containerFields(container, now),
      ...(node !== undefined ? { node } : {}),
      ...(s.warnings?.length ? { warnings: s.warnings } : {}),
    });
  }
  // Containers the status does not name: no status yet, or leftovers a reconcile has not removed.
  for (const container of remaining.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    servers.push({
      id: container.labels[LABELS.serverId] ?? "?",
      phase: "Unknown",
      reason: status ? "NotInStatus" : "NoStatusYet",
      ...hostPort(undefined, container),
      ...containerFields(container, now),
      ...(container.node !== undefined ? { node: container.node } : {}),
    });
  }
  const ready = status?.conditions.find((c) => c.type === "Ready");
  const last = status?.last_reconciles[status.last_reconciles.length - 1];
  return {
    user_id: userId,
    phase: status?.phase ?? "Unknown",
    ...(status ? (ready ? { reason: ready.reason } : {}) : { reason: "NoStatusYet" }),
    ...(last ? { last_reconcile: last.time } : {}),
    servers,
  };
}

function hostPort(
  fromStatus: number | undefined,
  container: ActualContainer | undefined,
): { host_port?: number } {
  if (fromStatus !== undefined) return { host_port: fromStatus };
  const label = Number(container?.labels[LABELS.hostPort]);
  return Number.isInteger(label) && label > 0 ? { host_port: label } : {};
}

function containerFields(
  container: ActualContainer | undefined,
  now: number,
): Partial<ServerStatusView> & { state: string } {
  if (!container) return { state: "missing" };
  return {
    state: container.state,
    container_name: container.name,
    container_id: container.id,
    created_at: new Date(container.created * 1000).toISOString(),
    age_seconds: Math.max(0, Math.floor(now / 1000 - container.created)),
  };
}

async function statusFileUsers(stateDir: string): Promise<string[]> {
  try {
    const entries = await readdir(path.join(stateDir, "users"), { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && isValidUserId(e.name)).map((e) => e.name);
  } catch {
    return [];
  }
}

async function readStatusFile(stateDir: string, userId: string): Promise<UserStatus | undefined> {
  try {
    const parsed = UserStatus.safeParse(JSON.parse(await readFile(statusFilePath(stateDir, userId), "utf8")));
    return parsed.success && parsed.data.user_id === userId ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** `12s`, `5m`, `3h`, `2d`: the largest whole unit, as kubectl shows ages. */
export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 2 * 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 2 * 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** Aligned columns: USER SERVER PHASE STATE PORT AGE REASON; a user without servers gets one row. */
export function formatStatus(users: readonly UserStatusView[]): string {
  const header = ["USER", "SERVER", "PHASE", "STATE", "PORT", "AGE", "REASON"];
  const rows: string[][] = [];
  for (const user of users) {
    if (user.servers.length === 0 || (user.phase !== "Ready" && user.phase !== "Unknown")) {
      // The user as a whole: when it has no servers, or when its phase says more than its servers' rows.
      rows.push([
        user.user_id,
        user.servers.length === 0 ? "-" : "(user)",
        user.phase,
        "-",
        "-",
        "-",
        user.reason ?? "",
      ]);
    }
    for (const s of user.servers) {
      rows.push([
        user.user_id,
        s.id,
        s.phase,
        s.state,
        s.host_port !== undefined ? String(s.host_port) : "-",
        s.age_seconds !== undefined ? formatAge(s.age_seconds) : "-",
        s.reason ?? "",
      ]);
    }
  }
  if (rows.length === 0) return "No users.\n";
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}
