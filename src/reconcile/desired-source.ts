import { type MergedCatalog, mergeUserCatalog } from "../catalog/merge.js";
import type { Config } from "../config.js";
import { canonicalHash } from "../util/canonical-json.js";
import { PORTAL_VERSION } from "../version.js";
import type { DesiredSource } from "./decide.js";
import type { GlobalSnapshot, UserSnapshot } from "./desired-inputs.js";
import type { Stalled } from "./status-projection.js";
import { type SecretKeys, loadUserSecrets } from "./user-secrets.js";

export interface PreparedSource {
  source: DesiredSource;
  /** The secrets' digests (or failures) by name: part of what the desired state depends on. */
  secretsKey: unknown;
}

export interface PrepareArgs {
  config: Config;
  userId: string;
  /** The data dir with symlinks resolved. */
  root: string;
  global: GlobalSnapshot;
  user: UserSnapshot;
  secrets: SecretKeys | undefined;
  /** Merges the user's catalog (the loop caches it by `inputsHash`; `plan` just computes it). */
  mergedCatalog: (inputsHash: string, compute: () => MergedCatalog) => Promise<MergedCatalog>;
}

/**
 * Everything the decision needs besides the observed objects and the port block: the merged catalog, the
 * secrets (read and decrypted here, the only I/O on the way), and whether the user can be planned at all. The
 * loop and `plan` share it, so both decide from the same source.
 */
export async function prepareDesiredSource(args: PrepareArgs): Promise<PreparedSource> {
  const { config, userId, global, user } = args;
  if (user.kind === "absent") return { source: { kind: "deleted" }, secretsKey: null };
  if (!global.inputs || !user.inputs) {
    const stalled: Stalled =
      user.awaitingUntil !== undefined && !user.inputs
        ? {
            reason: "EnabledServersMissing",
            message: `enabled-servers.json is missing: nothing is changed until ${new Date(user.awaitingUntil).toISOString()}`,
          }
        : {
            reason: "InvalidDesiredState",
            message:
              "the desired state is invalid and there is no last good state to keep; nothing was changed",
          };
    return { source: { kind: "hold", generation: "invalid", stalled }, secretsKey: null };
  }
  const globalInputs = global.inputs;
  const userInputs = user.inputs;
  const custom = userInputs.custom;
  const catalogHash = canonicalHash({
    global: globalInputs.catalog.inputsHash,
    custom: custom ? [custom.file, custom.hash] : null,
  });
  const catalog = await args.mergedCatalog(catalogHash, () => mergeUserCatalog(globalInputs.catalog, custom));
  const generation = canonicalHash({
    catalog: catalogHash,
    user: userInputs.hash,
    policy: globalInputs.policyHash,
  }).slice(0, 16);
  const needed = new Set<string>();
  for (const entry of userInputs.enabled.servers) {
    for (const name of catalog.servers.get(entry.id)?.definition.required_secrets ?? []) needed.add(name);
  }
  const resolveSecret = await loadUserSecrets(args.root, userId, needed, args.secrets);
  const secretsKey = [...needed].sort().map((name) => {
    const r = resolveSecret(name);
    return r.ok ? [name, r.digest] : [name, r.reason, r.message];
  });
  return {
    source: {
      kind: "desired",
      generation,
      suspended: userInputs.enabled.suspend,
      input: {
        installation: config.installation,
        userId,
        catalog,
        enabled: userInputs.enabled,
        policy: globalInputs.policy,
        defaultLimits: config.defaultLimits,
        resolveSecret,
        publishHost: config.publishHost,
        publishPorts: !config.gateway,
        containerUser: config.containerUser,
        egressProxyImage: config.egressProxyImage,
        egressExtraHosts: config.egressExtraHosts,
        egressEnforced: config.backend === "engine",
        portalVersion: PORTAL_VERSION,
        defaultAllowedImages: config.defaultAllowedImages,
      },
      portBlock: undefined,
    },
    secretsKey,
  };
}
