import { z } from "zod";

/*
 * Tool policy in the data tree: which of a server's MCP tools a user sees and may call. Globs match tool names
 * exactly and case-sensitively; `*` matches any run of characters, `?` exactly one. The gateway enforces them
 * (src/gateway/tool-policy.ts); they never reach a container's spec.
 */

/** Longest tool glob (MCP tool names are at most 128 characters). */
export const MAX_TOOL_GLOB_LENGTH = 128;
/** Most globs one allow or deny list may hold. */
export const MAX_TOOL_GLOBS = 256;

export const ToolGlob = z
  .string()
  .min(1)
  .max(MAX_TOOL_GLOB_LENGTH)
  .regex(
    /^[\x21-\x7e]+$/,
    "tool globs are printable ASCII characters without spaces (* and ? are wildcards)",
  );

export const ToolGlobList = z.array(ToolGlob).max(MAX_TOOL_GLOBS);

/** `enabled-servers.json` `servers[].tools`: absent `allow` means every tool; `deny` wins over `allow`. */
export const ToolPolicy = z.strictObject({
  allow: ToolGlobList.optional(),
  deny: ToolGlobList.optional(),
});
export type ToolPolicy = z.infer<typeof ToolPolicy>;

/** A token bucket: at most `requests` at once, refilled at `requests` per `window_seconds`. */
export const RateLimit = z.strictObject({
  requests: z.number().int().min(1).max(1_000_000),
  window_seconds: z.number().int().min(1).max(86_400),
});
export type RateLimit = z.infer<typeof RateLimit>;
