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
  const env: Record<string, string> = {};
  const fromSecret = new Set<string>();
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.values)) {
      env[key] = value;
      if (layer.secret) fromSecret.add(key);
      else fromSecret.delete(key);
    }
  }
  const hashable: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (volatileKeys.has(key)) continue;
    hashable[key] = fromSecret.has(key) ? `secret-digest:${secretDigests[key] ?? "unknown"}` : value;
  }
  return { env, hashable };
}
