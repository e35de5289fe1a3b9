import type { MergedServer } from "../catalog/merge.js";
import type { PolicyFile, ServerSecurityOverride } from "../schema/policy.js";
import { ownValue } from "../util/own-property.js";

/*
 * policy.json `server_security` loosens the container of one server id (root user, added capabilities, ...). The
 * admin grants that to the admins' definition of the server, so it must never reach anything a user controls: a
 * user's own server under that id, or code a user's environment variables could load into it.
 */

/** The admin's override for `serverId`, by own property only (never Object.prototype's `constructor`). */
export function securityFor(policy: PolicyFile, serverId: string): ServerSecurityOverride | undefined {
  return ownValue(policy.server_security, serverId);
}

/** True when the user's custom-servers.json defines a server under an id that server_security loosens. */
export function shadowsAdminServer(server: MergedServer, policy: PolicyFile): boolean {
  return server.origin.source === "user" && securityFor(policy, server.definition.id) !== undefined;
}

/** Why such a server is Blocked (ShadowsAdminServer): the same words in status, `validate` and the API. */
export function shadowsAdminServerMessage(serverId: string, file: string): string {
  return (
    `server "${serverId}" in ${file} takes the id of a server that policy.json server_security loosens; ` +
    `a user's own server never runs with admin-granted settings: give it another id`
  );
}

/**
 * The names of the user's environment a server receives: every name for a server without an override; for a
 * loosened one only those in its `user_env_allow` (none when the list is absent).
 */
export function userEnvAllowance(security: ServerSecurityOverride | undefined): ReadonlySet<string> | "all" {
  return security === undefined ? "all" : new Set(security.user_env_allow ?? []);
}

/** The user's own volumes (`config.volumes`) may be mounted: always for a server without an override. */
export function userVolumesAllowed(security: ServerSecurityOverride | undefined): boolean {
  return security === undefined || security.allow_user_volumes === true;
}

/** Why a loosened server with user volumes is Blocked: the same words in status and `validate`. */
export function userVolumesRefusedMessage(serverId: string): string {
  return (
    `server "${serverId}" is loosened by policy.json server_security and its user volumes (config.volumes) are ` +
    `not mounted into it unless server_security.${serverId}.allow_user_volumes is true`
  );
}
