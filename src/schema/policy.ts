import { z } from "zod";
import { EnvName, ServerId, UserId } from "../util/ids.js";
import { IdleTimeoutSeconds } from "./catalog.js";
import { SchemaRef, jsonMap } from "./common.js";
import { Egress } from "./egress.js";
import { RateLimit, ToolGlobList } from "./tools.js";

export const UserLimits = z.strictObject({
  max_containers: z.number().int().min(0).max(10_000).optional(),
  max_memory_mb: z.number().int().min(0).max(10_000_000).optional(),
  max_cpu_shares: z.number().int().min(0).max(10_000_000).optional(),
  max_ports: z.number().int().min(0).max(10_000).optional(),
});
export type UserLimits = z.infer<typeof UserLimits>;

const Capability = z.string().regex(/^[A-Z_]{2,32}$/, "capability names are upper case, without CAP_");

/** Most names a `user_env_allow` list may hold. */
export const MAX_USER_ENV_ALLOW = 256;

/**
 * What an admin may loosen for one server; user files can never set these. A server with an entry here is
 * "loosened": a user's custom server may not take its id, and the user's environment reaches it only for the
 * names in `user_env_allow`.
 */
export const ServerSecurityOverride = z.strictObject({
  user: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]+(?::[a-zA-Z0-9_.-]+)?$/, "user must be uid[:gid] or name[:group]")
    .optional(),
  cap_add: z.array(Capability).max(16).optional(),
  no_new_privileges: z.boolean().optional(),
  read_only_rootfs: z.boolean().optional(),
  publish_host: z.union([z.ipv4(), z.ipv6()]).optional(),
  /** Names from the user's environment (top-level or per-server) this server still receives. */
  user_env_allow: z.array(EnvName).max(MAX_USER_ENV_ALLOW).optional(),
  /**
   * Whether the user's own volumes (`config.volumes` in enabled-servers.json) may be mounted into this server
   * (default false: a user could otherwise mount their writable data over code the loosened container runs).
   */
  allow_user_volumes: z.boolean().optional(),
});
export type ServerSecurityOverride = z.infer<typeof ServerSecurityOverride>;

/**
 * Scale to zero (README, "Idle servers"): `default_timeout_seconds` applies to servers whose catalog entry sets
 * neither `idle_timeout_seconds` nor `long_lived`; `max_timeout_seconds` caps every server's timeout, and gives
 * one to always-on servers (long-lived ones included): the admin's word wins over the catalog.
 */
export const IdlePolicy = z.strictObject({
  default_timeout_seconds: IdleTimeoutSeconds.optional(),
  max_timeout_seconds: IdleTimeoutSeconds.min(1).optional(),
});
export type IdlePolicy = z.infer<typeof IdlePolicy>;

/** Image globs: `*` any run of characters, `?` one character (see desired/image-policy.ts). */
export const ImageGlob = z.string().min(1).max(255);
/** Most globs an allow-list (policy.json or MCP_PORTAL_ALLOWED_IMAGES) may hold. */
export const MAX_IMAGE_GLOBS = 1_000;

/**
 * Egress limits (README, "Network egress"): a server's entry, else `default`, narrows what its catalog declares;
 * it never widens it. Unlike server_security, an entry here loosens nothing, so it does not make a server loosened.
 */
export const EgressPolicy = z.strictObject({
  default: Egress.optional(),
  servers: jsonMap(ServerId, Egress).prefault({}),
});
export type EgressPolicy = z.infer<typeof EgressPolicy>;

/** Tools of one server hidden from everyone (the admin's word: it wins over any user's allow). */
export const ServerTools = z.strictObject({ deny: ToolGlobList.default([]) });
export type ServerTools = z.infer<typeof ServerTools>;

/**
 * Requests to users' servers through the gateway, as token buckets: `per_user` for all of one user's servers
 * together, `per_server` for one server of one user; `users.<id>` and `servers.<id>` replace them for that
 * user or server id. Absent: no rate limit.
 */
export const RateLimits = z.strictObject({
  per_user: RateLimit.optional(),
  per_server: RateLimit.optional(),
  users: jsonMap(UserId, RateLimit).prefault({}),
  servers: jsonMap(ServerId, RateLimit).prefault({}),
});
export type RateLimits = z.infer<typeof RateLimits>;

export const PolicyFile = z.strictObject({
  $schema: SchemaRef,
  /**
   * Absent: MCP_PORTAL_ALLOWED_IMAGES applies, and without it every image of every registry may run. Kept
   * absent here (no default) so that the difference between "not given" and "given" survives parsing.
   */
  allowed_images: z.array(ImageGlob).max(MAX_IMAGE_GLOBS).optional(),
  default_limits: UserLimits.default({}),
  /** Idle timeouts for everyone; a user's own `idle` wins field by field. */
  idle: IdlePolicy.optional(),
  users: jsonMap(
    UserId,
    z.strictObject({ limits: UserLimits.default({}), idle: IdlePolicy.optional() }),
  ).prefault({}),
  server_security: jsonMap(ServerId, ServerSecurityOverride).prefault({}),
  egress: EgressPolicy.prefault({}),
  /** Per server id: tools denied to every user (enforced by the gateway; changes replace no container). */
  server_tools: jsonMap(ServerId, ServerTools).prefault({}),
  rate_limits: RateLimits.prefault({}),
});
export type PolicyFile = z.infer<typeof PolicyFile>;

export const DEFAULT_POLICY: PolicyFile = PolicyFile.parse({});
