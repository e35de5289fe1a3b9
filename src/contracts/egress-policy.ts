import { z } from "zod";
import { ServerId, UserId } from "../util/ids.js";

/*
 * The policy the controller hands a user's egress proxy (environment MCP_PORTAL_EGRESS_POLICY, canonical JSON),
 * and the lines the proxy writes about what it refused (its stdout, read back by the controller). Contract:
 * README, "Network egress".
 */

export const EGRESS_POLICY_VERSION = 1;

export const EgressPolicyEntry = z.strictObject({
  server: ServerId,
  /** The server's fixed address on the egress network, as an offset from the subnet's start. */
  offset: z.number().int().min(2).max(65_534),
  mode: z.enum(["none", "allow"]),
  /** host:port patterns (see desired/egress-rules.ts); empty for `none`. */
  allow: z.array(z.string().max(260)).max(65_536),
});
export type EgressPolicyEntry = z.infer<typeof EgressPolicyEntry>;

export const EgressPolicyDocument = z.strictObject({
  version: z.literal(EGRESS_POLICY_VERSION),
  user: UserId,
  servers: z.array(EgressPolicyEntry).max(10_000),
});
export type EgressPolicyDocument = z.infer<typeof EgressPolicyDocument>;

/** What was refused: a proxied connection or request, or a DNS question. */
export const EGRESS_DENIAL_KINDS = ["connect", "dns"] as const;
export type EgressDenialKind = (typeof EGRESS_DENIAL_KINDS)[number];

/** Most characters of a destination in a denial line (a hostile name could be long). */
export const MAX_DENIAL_DESTINATION = 260;

/**
 * One line per (server, kind, destination) and window: the count of refusals in it. `server` is `(unknown)` for a
 * source that is no restricted server; `destination` is `(other)` for what exceeded the proxy's distinct
 * destinations per window.
 */
export const EgressDenialLine = z.strictObject({
  msg: z.literal("egress_denied"),
  user: UserId,
  server: z.string().max(64),
  kind: z.enum(EGRESS_DENIAL_KINDS),
  destination: z.string().max(MAX_DENIAL_DESTINATION),
  reason: z.string().max(200),
  count: z.number().int().min(1),
  window_seconds: z.number().int().min(1),
  time: z.iso.datetime(),
});
export type EgressDenialLine = z.infer<typeof EgressDenialLine>;
