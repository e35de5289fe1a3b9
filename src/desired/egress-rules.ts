import type { Egress } from "../schema/egress.js";

/*
 * Pure rules of network egress (README, "Network egress"): what a `host:port` pattern matches, and a server's
 * effective egress, its catalog's declaration narrowed by policy.json. Used by the controller (what to build) and
 * by the egress proxy (what to let through), so both read patterns the same way.
 */

export interface HostPattern {
  /** `*.example.com`: any name below example.com (at any depth), never example.com itself. */
  wildcard: boolean;
  /** Lower case, without the `*.`. */
  host: string;
  /** Undefined: any port. */
  port: number | undefined;
}

export type EffectiveEgress =
  | { mode: "unrestricted" }
  | { mode: "none" }
  /** `allow` sorted and without duplicates; empty means nothing is allowed (through the proxy). */
  | { mode: "allow"; allow: string[] };

export const UNRESTRICTED: EffectiveEgress = { mode: "unrestricted" };

/** Reads a pattern the schema accepted (EgressHostPattern); undefined for anything else. */
export function parseHostPattern(pattern: string): HostPattern | undefined {
  const match = /^(\*\.)?([a-z0-9.-]+):(\*|[0-9]{1,5})$/.exec(pattern.toLowerCase());
  if (!match) return undefined;
  return {
    wildcard: match[1] !== undefined,
    host: match[2]!,
    port: match[3] === "*" ? undefined : Number(match[3]),
  };
}

export function formatHostPattern(p: HostPattern): string {
  return `${p.wildcard ? "*." : ""}${p.host}:${p.port ?? "*"}`;
}

/** Whether `host` (a name, compared case-insensitively, a trailing dot ignored) and `port` match the pattern. */
export function matchesHostPattern(pattern: HostPattern, host: string, port: number): boolean {
  if (pattern.port !== undefined && pattern.port !== port) return false;
  const name = host.toLowerCase().replace(/\.$/, "");
  return pattern.wildcard ? name.endsWith(`.${pattern.host}`) : name === pattern.host;
}

/** Whether a name may be resolved at all under the patterns (DNS has no port: any pattern naming it counts). */
export function nameAllowed(patterns: readonly HostPattern[], host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  return patterns.some((p) => (p.wildcard ? name.endsWith(`.${p.host}`) : name === p.host));
}

export function destinationAllowed(patterns: readonly HostPattern[], host: string, port: number): boolean {
  return patterns.some((p) => matchesHostPattern(p, host, port));
}

/** The names and ports both patterns match, as one pattern; undefined when they share none. */
export function intersectPatterns(a: HostPattern, b: HostPattern): HostPattern | undefined {
  if (a.port !== undefined && b.port !== undefined && a.port !== b.port) return undefined;
  const port = a.port ?? b.port;
  const within = (name: string, parent: string) => name.endsWith(`.${parent}`);
  let host: { wildcard: boolean; host: string } | undefined;
  if (!a.wildcard && !b.wildcard) host = a.host === b.host ? a : undefined;
  else if (!a.wildcard) host = within(a.host, b.host) ? a : undefined;
  else if (!b.wildcard) host = within(b.host, a.host) ? b : undefined;
  else if (a.host === b.host || within(a.host, b.host)) host = a;
  else if (within(b.host, a.host)) host = b;
  return host ? { wildcard: host.wildcard, host: host.host, port } : undefined;
}

function fromDeclaration(egress: Egress | undefined): EffectiveEgress {
  if (egress === undefined || egress.mode === "unrestricted") return UNRESTRICTED;
  if (egress.mode === "none") return { mode: "none" };
  return { mode: "allow", allow: normalise(egress.allow_hosts ?? []) };
}

function normalise(patterns: readonly string[]): string[] {
  const parsed = patterns.map(parseHostPattern).filter((p): p is HostPattern => p !== undefined);
  return [...new Set(parsed.map(formatHostPattern))].sort();
}

/**
 * A server's egress: the catalog's declaration (absent: unrestricted) narrowed by policy.json's (absent: no
 * narrowing). The result allows a destination only when both do, so a policy can never widen a server's egress.
 */
export function effectiveEgress(catalog: Egress | undefined, policy: Egress | undefined): EffectiveEgress {
  const declared = fromDeclaration(catalog);
  const limit = fromDeclaration(policy);
  if (declared.mode === "none" || limit.mode === "none") return { mode: "none" };
  if (limit.mode === "unrestricted") return declared;
  if (declared.mode === "unrestricted") return limit;
  const result: HostPattern[] = [];
  for (const a of declared.allow.map(parseHostPattern)) {
    for (const b of limit.allow.map(parseHostPattern)) {
      if (!a || !b) continue;
      const both = intersectPatterns(a, b);
      if (both) result.push(both);
    }
  }
  return { mode: "allow", allow: [...new Set(result.map(formatHostPattern))].sort() };
}

/** One line for status and `plan`: `unrestricted`, `none`, or `allow api.example.com:443, *.example.org:*`. */
export function describeEffectiveEgress(egress: EffectiveEgress): string {
  if (egress.mode !== "allow") return egress.mode;
  return egress.allow.length === 0 ? "allow (nothing)" : `allow ${egress.allow.join(", ")}`;
}
