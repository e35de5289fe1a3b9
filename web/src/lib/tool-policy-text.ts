/*
 * The tool policy the gateway enforces for one server (status `servers[].tools`), in words. Pure, unit-tested
 * under Node.
 */

export function toolPolicyText(
  tools: { allow?: readonly string[]; deny: readonly string[] } | undefined,
): string {
  if (tools === undefined || (tools.allow === undefined && tools.deny.length === 0))
    return "Tools: all the server offers (no tool policy).";
  const parts: string[] = [];
  parts.push(
    tools.allow === undefined ? "all the server offers" : `only ${tools.allow.join(", ") || "none"}`,
  );
  if (tools.deny.length > 0) parts.push(`hidden: ${tools.deny.join(", ")}`);
  return `Tools: ${parts.join("; ")}.`;
}
