import { z } from "zod";
import type { EgressIntent, EgressRule } from "../egress.js";
import type { ServerReport } from "../report.js";
import { isRecord } from "../text.js";

/*
 * ToolHive (Stacklok) publishes its registry as server.json documents with an extension under
 * `_meta["io.modelcontextprotocol.registry/publisher-provided"]["io.github.stacklok"][<image or URL>]`. We read
 * its `permissions`: network egress (`network.outbound`: insecure_allow_all, allow_host, allow_port) as an
 * EgressIntent, and host mounts or privileged mode, which have no place here, as dropped.
 */

export const PUBLISHER_PROVIDED_KEY = "io.modelcontextprotocol.registry/publisher-provided";
export const TOOLHIVE_KEY = "io.github.stacklok";

const Outbound = z.looseObject({
  insecure_allow_all: z.boolean().optional(),
  allow_host: z.array(z.string()).optional(),
  allow_port: z.array(z.number().int().min(1).max(65_535)).optional(),
  allow_transport: z.array(z.string()).optional(),
});

export const ToolHivePermissions = z.looseObject({
  network: z.looseObject({ outbound: Outbound.optional() }).optional(),
  read: z.array(z.string()).optional(),
  write: z.array(z.string()).optional(),
  privileged: z.boolean().optional(),
});

const ToolHiveEntry = z.looseObject({ permissions: ToolHivePermissions.optional() });

export interface ToolHiveFindings {
  egress?: EgressIntent;
}

/**
 * Reads the extension for `key` (the package identifier) from the server's `_meta` or the API wrapper's; with a
 * single entry under another key, that one. Reports what it cannot use.
 */
export function readToolHive(
  metas: readonly (Record<string, unknown> | undefined)[],
  key: string,
  report: ServerReport,
): ToolHiveFindings {
  const entries = toolhiveEntries(metas);
  if (entries.size === 0) return {};
  let chosenKey = entries.has(key) ? key : undefined;
  if (chosenKey === undefined && entries.size === 1) {
    chosenKey = [...entries.keys()][0]!;
    report.notes.push(
      `ToolHive metadata is keyed "${chosenKey}", not "${key}"; read anyway (the only entry)`,
    );
  }
  if (chosenKey === undefined) {
    report.notes.push(`ToolHive metadata has no entry for "${key}"; its permissions were not read`);
    return {};
  }
  const parsed = ToolHiveEntry.safeParse(entries.get(chosenKey));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    report.dropped.push({
      field: "ToolHive permissions",
      reason: `unreadable: ${issue ? `${issue.path.join(".") || "$"}: ${issue.message}` : "invalid"}`,
    });
    return {};
  }
  const permissions = parsed.data.permissions;
  if (permissions === undefined) return {};
  const mounts = [...(permissions.read ?? []), ...(permissions.write ?? [])];
  if (mounts.length > 0) {
    report.dropped.push({
      field: "ToolHive permissions.read/write",
      reason: `host mounts (${mounts.join(", ")}) are not given: volumes live in the user's area ({USER_DATA}, {USER_CACHE}, {USER_CONFIG})`,
    });
  }
  if (permissions.privileged === true) {
    report.dropped.push({
      field: "ToolHive permissions.privileged",
      reason:
        "refused: containers never run privileged from a catalog (policy.json server_security is the admin's)",
    });
  }
  const outbound = permissions.network?.outbound;
  if (outbound === undefined) return {};
  return { egress: egressOf(outbound) };
}

function egressOf(outbound: z.infer<typeof Outbound>): EgressIntent {
  const declaredBy = "ToolHive permissions.network.outbound";
  if (outbound.insecure_allow_all === true) return { mode: "unrestricted", declaredBy };
  const hosts = outbound.allow_host ?? [];
  const ports = outbound.allow_port ?? [];
  if (hosts.length === 0 && ports.length === 0) return { mode: "none", declaredBy };
  const rules: EgressRule[] = [];
  for (const host of hosts.length > 0 ? hosts : ["*"]) {
    if (ports.length === 0) rules.push({ host });
    for (const port of ports) rules.push({ host, port });
  }
  return { mode: "allow", rules, declaredBy };
}

function toolhiveEntries(metas: readonly (Record<string, unknown> | undefined)[]): Map<string, unknown> {
  const entries = new Map<string, unknown>();
  for (const meta of metas) {
    const provided = meta?.[PUBLISHER_PROVIDED_KEY];
    const toolhive = isRecord(provided) ? provided[TOOLHIVE_KEY] : undefined;
    if (!isRecord(toolhive)) continue;
    for (const [key, value] of Object.entries(toolhive)) if (!entries.has(key)) entries.set(key, value);
  }
  return entries;
}
