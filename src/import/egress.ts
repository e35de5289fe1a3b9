import type { ServerReport } from "./report.js";

/*
 * A server's network egress as its source declares it (Docker's run.disableNetwork / run.allowHosts, ToolHive's
 * permissions.network), in one shape for every importer. The catalog has no egress field yet, so applyEgress
 * reports the declaration as dropped; once the catalog gains one, this is the one place that maps it.
 */

export interface EgressRule {
  /** A host name or pattern as the source writes it (`api.example.com`, `.example.com`, `*`). */
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

/** Maps the declared egress onto the server (nothing yet) and says in the report what that means. */
export function applyEgress(
  intent: EgressIntent | undefined,
  _server: Record<string, unknown>,
  report: ServerReport,
): void {
  if (intent === undefined) return;
  if (intent.mode === "unrestricted") {
    report.notes.push(`${EGRESS_FIELD}: unrestricted (${intent.declaredBy}), as for every server today`);
    return;
  }
  report.dropped.push({
    field: EGRESS_FIELD,
    reason: `not supported yet: ${describeEgress(intent)} (${intent.declaredBy}) is not enforced; the container gets unrestricted egress like every server today`,
  });
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
