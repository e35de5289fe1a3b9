import { ownValue } from "../util/own-property.js";

/** Where a final environment value came from; secret values must never reach the spec hash or logs. */
export interface EnvLayer {
  values: Readonly<Record<string, string>>;
  secret?: boolean;
}

export interface BuiltEnvironment {
  env: Record<string, string>;
  /** The same keys, secret values replaced by their digest and volatile keys left out. */
  hashable: Record<string, string>;
}

/**
 * Later layers win, in the original design's order: server env, user env, portal variables, required
 * secrets, the user's per-server overrides.
 */
export function buildEnvironment(
  layers: readonly EnvLayer[],
  secretDigests: Readonly<Record<string, string>>,
  volatileKeys: ReadonlySet<string>,
): BuiltEnvironment {
  // A Map, not an object, while names from files are assembled: no name can reach a prototype.
  const env = new Map<string, string>();
  const fromSecret = new Set<string>();
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.values)) {
      env.set(key, value);
      if (layer.secret) fromSecret.add(key);
      else fromSecret.delete(key);
    }
  }
  const hashable = new Map<string, string>();
  for (const [key, value] of env) {
    if (volatileKeys.has(key)) continue;
    const digest = ownValue(secretDigests, key) ?? "unknown";
    hashable.set(key, fromSecret.has(key) ? `secret-digest:${digest}` : value);
  }
  return { env: Object.fromEntries(env), hashable: Object.fromEntries(hashable) };
}

export interface SelectedEnvironment {
  values: Readonly<Record<string, string>>;
  /** Names left out, sorted. */
  dropped: string[];
}

/** `values` restricted to the names `allowed` admits ("all": every name). */
export function selectEnvironment(
  values: Readonly<Record<string, string>>,
  allowed: ReadonlySet<string> | "all",
): SelectedEnvironment {
  if (allowed === "all") return { values, dropped: [] };
  const kept = Object.entries(values).filter(([key]) => allowed.has(key));
  const dropped = Object.keys(values).filter((key) => !allowed.has(key));
  return { values: Object.fromEntries(kept), dropped: dropped.sort() };
}
