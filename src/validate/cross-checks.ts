import { DATA_PATHS } from "../catalog/data-tree.js";
import type { MergedCatalog } from "../catalog/merge.js";
import type { LoadedFile } from "../catalog/read-json-file.js";
import {
  type AllowedImages,
  imageNotAllowedMessage,
  isImageAllowed,
  resolveAllowedImages,
} from "../desired/image-policy.js";
import {
  securityFor,
  shadowsAdminServer,
  shadowsAdminServerMessage,
  userEnvAllowance,
  userVolumesAllowed,
  userVolumesRefusedMessage,
} from "../desired/server-security.js";
import { describeEffectiveEgress } from "../desired/egress-rules.js";
import { egressUnsupportedMessage, serverEgress } from "../desired/user-desired.js";
import { resolveUserVolumePath } from "../desired/volume-paths.js";
import type { VolumeMount } from "../schema/common.js";
import type { EnabledServer, EnabledServersFile } from "../schema/enabled-servers.js";
import type { PolicyFile } from "../schema/policy.js";
import { type Problem, jsonPath } from "./problem.js";

/*
 * The checks across files: an enabled server against the merged catalog and the user's secrets, a catalog
 * server's image against policy and its volumes against the user's area. `mcp-portal validate` makes them over
 * the whole tree and the API over a candidate write, so a user sees one wording for one problem.
 */

/** Stands in for `{USER_ID}` when checking catalog volumes that every user shares. */
export const PLACEHOLDER_USER_ID = "user";

export interface EntryContext {
  userId: string;
  catalog: MergedCatalog;
  /** False when a catalog input is invalid: an id missing from `catalog` proves nothing then. */
  catalogComplete: boolean;
  /** Undefined when secrets.env cannot be read (its own problem). */
  secretNames: ReadonlySet<string> | undefined;
  overlayNames: readonly string[];
}

/** One entry of users/<id>/enabled-servers.json at `$.servers[index]`. */
export function checkEnabledEntry(
  file: string,
  index: number,
  entry: EnabledServer,
  ctx: EntryContext,
): Problem[] {
  const problems: Problem[] = [];
  entry.config?.volumes?.forEach((volume, j) => {
    const problem = volumeProblem(file, ["servers", index, "config", "volumes", j], volume, ctx.userId);
    if (problem) problems.push(problem);
  });
  const server = ctx.catalog.servers.get(entry.id);
  if (server === undefined) {
    if (!ctx.catalogComplete) return problems;
    const overlays = ctx.overlayNames.length > 0 ? `, the overlays ${ctx.overlayNames.join(", ")}` : "";
    problems.push({
      file,
      path: jsonPath(["servers", index, "id"]),
      message: `unknown server "${entry.id}": not in the base catalogs${overlays} or ${DATA_PATHS.customServers(ctx.userId)}`,
    });
    return problems;
  }
  if (entry.config !== undefined && !server.definition.user_configurable) {
    problems.push({
      file,
      path: jsonPath(["servers", index, "config"]),
      message: `server "${entry.id}" is not user_configurable (${server.origin.file}); remove its config`,
    });
  }
  if (ctx.secretNames === undefined) return problems;
  for (const name of server.definition.required_secrets) {
    if (ctx.secretNames.has(name)) continue;
    problems.push({
      file,
      path: jsonPath(["servers", index]),
      message: `server "${entry.id}" requires secret ${name}, which ${DATA_PATHS.secrets(ctx.userId)} does not declare (mcp-portal secrets set ${ctx.userId} ${name})`,
    });
  }
  return problems;
}

/** Every entry of an enabled-servers.json. */
export function checkEnabledEntries(
  file: string,
  entries: readonly EnabledServer[],
  ctx: EntryContext,
): Problem[] {
  return entries.flatMap((entry, i) => checkEnabledEntry(file, i, entry, ctx));
}

export interface ServerFields {
  image?: string | undefined;
  volumes?: readonly VolumeMount[] | undefined;
}

/** Checks that do not need the merged catalog: the image against policy and every volume's host path. */
export function checkCatalogServers(
  file: string,
  servers: readonly ServerFields[],
  userId: string,
  allowedImages: AllowedImages | undefined,
): Problem[] {
  const problems: Problem[] = [];
  servers.forEach((server, i) => {
    if (
      server.image !== undefined &&
      allowedImages !== undefined &&
      !isImageAllowed(server.image, allowedImages.globs)
    ) {
      problems.push({
        file,
        path: jsonPath(["servers", i, "image"]),
        message: imageNotAllowedMessage(server.image, allowedImages.source),
      });
    }
    server.volumes?.forEach((volume, j) => {
      const problem = volumeProblem(file, ["servers", i, "volumes", j], volume, userId);
      if (problem) problems.push(problem);
    });
  });
  return problems;
}

/**
 * The image allow-list in force: policy.json's allowed_images when it gives them, else `defaultAllowedImages`
 * (MCP_PORTAL_ALLOWED_IMAGES), else every image. Undefined when policy.json is invalid (its own problem).
 */
export function allowedImagesOf(
  policy: LoadedFile<PolicyFile>,
  defaultAllowedImages?: readonly string[],
): AllowedImages | undefined {
  if (policy.status === "invalid") return undefined;
  const fromPolicy = policy.status === "ok" ? policy.value.allowed_images : undefined;
  return resolveAllowedImages(fromPolicy, defaultAllowedImages);
}

/**
 * A warning when no allow-list applies at all: any image from any registry may run, which an installation
 * should choose knowingly.
 */
export function allowedImagesWarning(allowed: AllowedImages): Problem | undefined {
  if (allowed.source !== "none") return undefined;
  return {
    file: DATA_PATHS.policy,
    path: "$.allowed_images",
    message:
      "not set, and MCP_PORTAL_ALLOWED_IMAGES is not set either: any image from any registry may run (set one of them)",
  };
}

/**
 * Servers of a user's custom-servers.json whose id policy.json server_security loosens: each is Blocked
 * (ShadowsAdminServer) whether enabled or not, so the file is wrong as written.
 */
export function checkShadowingServers(
  file: string,
  servers: readonly { id: string }[],
  policy: PolicyFile,
): Problem[] {
  const problems: Problem[] = [];
  servers.forEach((server, i) => {
    if (securityFor(policy, server.id) === undefined) return;
    problems.push({
      file,
      path: jsonPath(["servers", i, "id"]),
      message: shadowsAdminServerMessage(server.id, file),
    });
  });
  return problems;
}

export interface EnvironmentFindings {
  /** Per-server `config.environment` names a loosened server will not receive: the entry cannot work. */
  problems: Problem[];
  /** Top-level `environment` names a loosened server will not receive (the user's other servers still do). */
  warnings: Problem[];
}

/**
 * The user environment names that stay away from servers policy.json server_security loosens (only names in
 * the server's `user_env_allow` reach it). A per-server name exists only for that server, so it is a problem;
 * a top-level one still serves the user's other servers, so it is a warning.
 */
export function checkLoosenedServerEnvironment(
  file: string,
  enabled: EnabledServersFile,
  catalog: MergedCatalog,
  policy: PolicyFile,
): EnvironmentFindings {
  const findings: EnvironmentFindings = { problems: [], warnings: [] };
  enabled.servers.forEach((entry, i) => {
    const server = catalog.servers.get(entry.id);
    const security = securityFor(policy, entry.id);
    // A shadowing custom server is reported (and blocked) as such; an unknown one, or one given config it may not
    // have, has its own problem and does not run.
    if (server === undefined || security === undefined || shadowsAdminServer(server, policy)) return;
    if (entry.config !== undefined && !server.definition.user_configurable) return;
    if ((entry.config?.volumes ?? []).length > 0 && !userVolumesAllowed(security)) {
      findings.problems.push({
        file,
        path: jsonPath(["servers", i, "config", "volumes"]),
        message: `${userVolumesRefusedMessage(entry.id)}: the server is blocked`,
      });
    }
    const allowance = userEnvAllowance(security);
    if (allowance === "all") return;
    const because = `policy.json server_security loosens server "${entry.id}" and its user_env_allow does not list it`;
    for (const name of Object.keys(entry.config?.environment ?? {})) {
      if (allowance.has(name)) continue;
      findings.problems.push({
        file,
        path: jsonPath(["servers", i, "config", "environment", name]),
        message: `not passed to the container: ${because}`,
      });
    }
    for (const name of Object.keys(enabled.environment)) {
      if (allowance.has(name)) continue;
      findings.warnings.push({
        file,
        path: jsonPath(["environment", name]),
        message: `not passed to server "${entry.id}": ${because}`,
      });
    }
  });
  return findings;
}

function volumeProblem(
  file: string,
  at: readonly (string | number)[],
  volume: VolumeMount,
  userId: string,
): Problem | undefined {
  const resolved = resolveUserVolumePath(volume.host_path, userId);
  if (resolved.ok) return undefined;
  return {
    file,
    path: jsonPath([...at, "host_path"]),
    message: `${JSON.stringify(volume.host_path.slice(0, 128))} is not inside the user's area: ${resolved.reason}`,
  };
}

/** An enabled server whose effective egress (catalog narrowed by policy.json) is restricted: `none` or `allow`. */
export interface RestrictedEntry {
  index: number;
  id: string;
  egress: string;
}

/**
 * The user's enabled servers with restricted egress: each makes the user hold a second subnet (the egress
 * network), and none can run where egress is not enforced (MCP_PORTAL_BACKEND=swarm).
 */
export function restrictedEgressEntries(
  enabled: EnabledServersFile,
  catalog: MergedCatalog,
  policy: PolicyFile,
): RestrictedEntry[] {
  const restricted: RestrictedEntry[] = [];
  enabled.servers.forEach((entry, index) => {
    const server = catalog.servers.get(entry.id);
    if (server === undefined) return;
    const egress = serverEgress(policy, server.definition);
    if (egress.mode !== "unrestricted")
      restricted.push({ index, id: entry.id, egress: describeEffectiveEgress(egress) });
  });
  return restricted;
}

/** On a backend that cannot enforce egress, each restricted server is Blocked (EgressUnsupported): say so. */
export function egressUnsupportedWarnings(file: string, restricted: readonly RestrictedEntry[]): Problem[] {
  return restricted.map((entry) => ({
    file,
    path: jsonPath(["servers", entry.index, "id"]),
    message: `${egressUnsupportedMessage(entry.id, entry.egress)}; status says Blocked (EgressUnsupported)`,
  }));
}
