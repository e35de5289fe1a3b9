import { Egress, MAX_ALLOW_HOSTS } from "../schema/egress.js";
import type { ServerReport } from "./report.js";

/*
 * A server's network egress as its source declares it (Docker's run.disableNetwork / run.allowHosts, ToolHive's
 * permissions.network), in one shape for every importer, and the one place that maps it onto the catalog's
 * `egress` field (README, "Network egress"; "Importing catalogs").
 */

export interface EgressRule {
  /** A host name or pattern as the source writes it (`api.example.com`, `.example.com`, `*.example.com`, `*`). */
  host: string;
  /** Undefined: any port. */
  port?: number;
}

export type EgressIntent =
  | { mode: "none"; declaredBy: string }
  | { mode: "allow"; rules: EgressRule[]; declaredBy: string }
  | { mode: "unrestricted"; declaredBy: string };

/** The report line's field for every egress declaration. */
export const EGRESS_FIELD = "network egress";

/**
 * Our patterns for one source rule, or why it has none. `.example.com` (Squid's and ToolHive's form) means the
 * domain and every name below it: both `example.com` and `*.example.com`. An IP address or a bare `*` host has no
 * pattern (the proxy checks names; "any host" is not an allow-list).
 */
function patternsOf(rule: EgressRule): { patterns: string[] } | { refused: string } {
  const port = rule.port === undefined ? "*" : String(rule.port);
  const host = rule.host.trim().toLowerCase().replace(/\.$/, "");
  if (host === "*" || host === "") return { refused: "any host" };
  const names = host.startsWith(".") ? [host.slice(1), `*${host}`] : [host];
  const patterns = names.map((n) => `${n}:${port}`);
  for (const p of patterns) {
    const checked = Egress.safeParse({ mode: "allow", allow_hosts: [p] });
    if (!checked.success) return { refused: checked.error.issues[0]?.message ?? "not a host pattern" };
  }
  return { patterns };
}

/** Maps the declared egress onto the server's `egress` field and says in the report what that means. */
export function applyEgress(
  intent: EgressIntent | undefined,
  server: Record<string, unknown>,
  report: ServerReport,
): void {
  if (intent === undefined) return;
  if (intent.mode === "unrestricted") {
    report.notes.push(`${EGRESS_FIELD}: unrestricted (${intent.declaredBy})`);
    return;
  }
  if (intent.mode === "none") {
    server.egress = { mode: "none" };
    report.notes.push(`${EGRESS_FIELD}: none (${intent.declaredBy}) -> egress mode none`);
    return;
  }
  const allow: string[] = [];
  const refused: string[] = [];
  for (const rule of intent.rules) {
    const mapped = patternsOf(rule);
    const written = rule.port === undefined ? rule.host : `${rule.host}:${rule.port}`;
    if ("refused" in mapped) refused.push(`${written} (${mapped.refused})`);
    else allow.push(...mapped.patterns);
  }
  const unique = [...new Set(allow)].sort();
  if (refused.length > 0 || unique.length > MAX_ALLOW_HOSTS) {
    // A partial allow-list would block what the server needs; a wider one would not be what was declared.
    const why =
      refused.length > 0
        ? `cannot be expressed as host:port patterns: ${refused.join(", ")}`
        : `more than ${MAX_ALLOW_HOSTS} patterns`;
    report.dropped.push({
      field: EGRESS_FIELD,
      reason: `${describeEgress(intent)} (${intent.declaredBy}) ${why}; the server is imported with unrestricted egress: set egress by hand or narrow it in policy.json`,
    });
    return;
  }
  server.egress = { mode: "allow", allow_hosts: unique };
  report.notes.push(
    `${EGRESS_FIELD}: ${describeEgress(intent)} (${intent.declaredBy}) -> egress allow ${unique.length === 0 ? "(nothing)" : unique.join(", ")}`,
  );
}

export function describeEgress(intent: EgressIntent): string {
  switch (intent.mode) {
    case "none":
      return "no network access";
    case "unrestricted":
      return "unrestricted";
    case "allow":
      return intent.rules.length === 0
        ? "an empty allow-list"
        : `only ${intent.rules.map((r) => (r.port === undefined ? r.host : `${r.host}:${r.port}`)).join(", ")}`;
  }
}
