// Inputs for computeDesiredUser built from the real schemas and catalog merge, shared by the desired and
// reconcile unit tests.
import { createHash } from "node:crypto";
import { type MergedCatalog, mergeGlobalCatalog, mergeUserCatalog } from "../../../src/catalog/merge.js";
import type { Limits } from "../../../src/config.js";
import { type DesiredUserInput, type SecretResolution } from "../../../src/desired/user-desired.js";
import { BaseCatalogFile, UserCatalogFile } from "../../../src/schema/catalog.js";
import { EnabledServersFile } from "../../../src/schema/enabled-servers.js";
import { PolicyFile } from "../../../src/schema/policy.js";

export type ServerInput = Record<string, unknown> & { id: string; image?: string };

export const DEFAULT_LIMITS: Limits = {
  max_containers: 10,
  max_memory_mb: 2048,
  max_cpu_shares: 1024,
  max_ports: 100,
};

/** A server definition input with the required fields filled in. */
export function server(id: string, fields: Record<string, unknown> = {}): ServerInput {
  return { id, name: id, image: `mcp/${id.toLowerCase().replace(/_/g, "-")}`, ...fields };
}

/** The merged catalog of one base catalog (and optionally the user's custom servers), via the real merge. */
export function catalogOf(servers: readonly ServerInput[], custom?: readonly ServerInput[]): MergedCatalog {
  const base = BaseCatalogFile.parse({ version: "1", source: "base", metadata: { name: "test" }, servers });
  const global = mergeGlobalCatalog([{ file: "catalogs/base/test.json", hash: "h1", catalog: base }], []);
  if (global.problems.length > 0) throw new Error(JSON.stringify(global.problems));
  const user = custom
    ? UserCatalogFile.parse({ version: "1", source: "user", metadata: { name: "custom" }, servers: custom })
    : undefined;
  return mergeUserCatalog(
    global.catalog,
    user ? { file: "users/alice/custom-servers.json", hash: "h2", catalog: user } : undefined,
  );
}

/** A stand-in for the keyed secret digest: deterministic and distinct per user, name and value. */
export function fakeDigest(userId: string, name: string, value: string): string {
  return createHash("sha256").update(`test:${userId}:${name}:${value}`).digest("hex");
}

export function secretsResolver(
  userId: string,
  secrets: Readonly<Record<string, string>>,
  undecryptable: readonly string[] = [],
): (name: string) => SecretResolution {
  return (name) => {
    if (undecryptable.includes(name))
      return { ok: false, reason: "SecretDecryptFailed", message: `secret ${name} could not be decrypted` };
    const value = secrets[name];
    if (value === undefined)
      return { ok: false, reason: "MissingSecret", message: `secret ${name} is not in secrets.env` };
    return { ok: true, value, digest: fakeDigest(userId, name, value) };
  };
}

export interface InputOptions {
  installation?: string;
  userId?: string;
  servers?: readonly ServerInput[];
  custom?: readonly ServerInput[];
  /** enabled-servers.json as written (parsed with the real schema). */
  enabled?: Record<string, unknown>;
  policy?: Record<string, unknown>;
  /** MCP_PORTAL_ALLOWED_IMAGES as the config parsed it. */
  defaultAllowedImages?: readonly string[];
  defaultLimits?: Limits;
  portBlock?: { start: number; end: number };
  currentPorts?: ReadonlyMap<string, number>;
  secrets?: Record<string, string>;
  undecryptable?: string[];
  resolveSecret?: DesiredUserInput["resolveSecret"];
  publishHost?: string;
  publishPorts?: boolean;
  containerUser?: string;
  portalVersion?: string;
}

/** A DesiredUserInput with sensible defaults: user alice, installation default, block 20000-20099. */
export function desiredInput(options: InputOptions = {}): DesiredUserInput {
  const userId = options.userId ?? "alice";
  const servers = options.servers ?? [server("time")];
  return {
    installation: options.installation ?? "default",
    userId,
    catalog: catalogOf(servers, options.custom),
    enabled: EnabledServersFile.parse(options.enabled ?? { servers: servers.map((s) => ({ id: s.id })) }),
    policy: PolicyFile.parse(options.policy ?? {}),
    ...(options.defaultAllowedImages ? { defaultAllowedImages: options.defaultAllowedImages } : {}),
    defaultLimits: options.defaultLimits ?? DEFAULT_LIMITS,
    portBlock: options.portBlock ?? { start: 20000, end: 20099 },
    currentPorts: options.currentPorts ?? new Map(),
    resolveSecret:
      options.resolveSecret ?? secretsResolver(userId, options.secrets ?? {}, options.undecryptable ?? []),
    publishHost: options.publishHost ?? "127.0.0.1",
    publishPorts: options.publishPorts ?? true,
    containerUser: options.containerUser ?? "1000:1000",
    portalVersion: options.portalVersion ?? "1.0.0",
  };
}
