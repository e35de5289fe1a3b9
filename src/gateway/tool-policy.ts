import type { EffectiveToolPolicy } from "../contracts/gateway-access.js";
import { paramsRecord } from "./jsonrpc.js";

/*
 * The tool policy as the gateway applies it, pure: which tool names a server's callers may see and call, and a
 * tools/list result with the others taken out. Globs match exactly and case-sensitively; `*` matches any run of
 * characters, `?` one. Matching is linear in practice and O(name × glob) at worst: globs come from files that
 * users write, so no regular expression is built from them.
 */

/** Whether `name` matches `glob` (`*` any run, `?` one character, anything else itself). */
export function globMatches(glob: string, name: string): boolean {
  const g = Array.from(glob);
  const s = Array.from(name);
  let gi = 0;
  let si = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    if (gi < g.length && (g[gi] === "?" || g[gi] === s[si])) {
      gi += 1;
      si += 1;
    } else if (gi < g.length && g[gi] === "*") {
      star = gi;
      mark = si;
      gi += 1;
    } else if (star !== -1) {
      gi = star + 1;
      mark += 1;
      si = mark;
    } else {
      return false;
    }
  }
  while (gi < g.length && g[gi] === "*") gi += 1;
  return gi === g.length;
}

/** Decides per tool name; `visible` is what every other function here asks. */
export interface ToolFilter {
  visible(name: string): boolean;
}

/** Every tool: no policy applies. */
export const ALL_TOOLS: ToolFilter = { visible: () => true };
/** No tool at all (a server the policy does not list, or a policy that cannot be read). */
export const NO_TOOLS: ToolFilter = { visible: () => false };

export function toolFilter(policy: EffectiveToolPolicy): ToolFilter {
  const { allow, deny } = policy;
  if (allow === undefined && deny.length === 0) return ALL_TOOLS;
  return {
    visible: (name) =>
      (allow === undefined || allow.some((glob) => globMatches(glob, name))) &&
      !deny.some((glob) => globMatches(glob, name)),
  };
}

/** The tool a `tools/call` names, or undefined when its params carry no string name. */
export function calledTool(params: unknown): string | undefined {
  const name = paramsRecord(params)?.name;
  return typeof name === "string" ? name : undefined;
}

/**
 * A tools/list result without the tools the filter hides (entries without a string name go too: they cannot be
 * called by name, and nothing can say whether the policy allows them). Anything else in the result is kept.
 * Returns the same object when nothing was removed.
 */
export function filterToolsResult(result: unknown, filter: ToolFilter): unknown {
  const record = paramsRecord(result);
  if (!record || !Array.isArray(record.tools)) return result;
  const tools = record.tools as unknown[];
  const kept = tools.filter((tool) => {
    const name = paramsRecord(tool)?.name;
    return typeof name === "string" && filter.visible(name);
  });
  return kept.length === tools.length ? result : { ...record, tools: kept };
}

/** The JSON-RPC error of a refused tools/call (-32602, as MCP answers an unknown tool). */
export function hiddenToolMessage(name: string | undefined): string {
  if (name === undefined) return "invalid params: tools/call needs a tool name";
  return `Unknown tool: ${name.slice(0, 128)} (not available to this user: tool policy)`;
}
