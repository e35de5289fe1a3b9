import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { resolveUserVolumePath } from "../desired/volume-paths.js";
import { ImageName, ImageTag, VolumeMount } from "../schema/common.js";
import { ENV_NAME_PATTERN, SECRET_NAME_PATTERN } from "../util/ids.js";
import { CatalogAssembler, type ConvertOptions, type ConvertResult, skip } from "./assembler.js";
import type { ImportSource } from "./catalog.js";
import { type EgressIntent, type EgressRule, applyEgress } from "./egress.js";
import { splitImage } from "./image-ref.js";
import { ImportError, type ServerReport, unreadableReport } from "./report.js";
import { errorCode, firstString, isRecord, scalarText, text, truncate } from "./text.js";

/*
 * Migration from Docker's MCP catalog formats into our CatalogFile (source "base"). Two inputs:
 *  - the catalog YAML `docker mcp catalog show --format yaml` prints (a top-level `registry:` map of name -> tile:
 *    description, title, type, image, secrets [{name, env, example}], env [{name, value}], command, volumes,
 *    config, remote, metadata.category, ...), and
 *  - docker/mcp-registry's per-server `servers/<name>/server.yaml` (name, image, type, meta, about, config
 *    {secrets, env [{name, example, value}], parameters}, run {command, volumes, env (a map)}, remote, ...).
 * Both are normalised into one entry shape, then mapped field by field. Whatever has no equivalent is reported
 * per server with a reason; nothing is ever emitted that our schema (or the data dir's image policy) rejects.
 */

const TEMPLATE = /\{\{[^}]*\}\}/;
const TEMPLATE_GLOBAL = /\{\{[^}]*\}\}/g;
const VOLUME_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
/** Stands in for a user id when checking that a mapped host path stays inside the user's area. */
const PLACEHOLDER_USER = "user";

export type InputFormat = "catalog" | "server-yaml" | "registry-dir";

const FORMAT_LABELS: Record<InputFormat, string> = {
  catalog: "Docker MCP catalog",
  "server-yaml": "registry server.yaml",
  "registry-dir": "directory of registry server.yaml files",
};

/** One server as both source formats describe it, before mapping. */
export interface SourceEntry {
  name: string;
  origin: string;
  type: string | undefined;
  image: unknown;
  title: unknown;
  description: unknown;
  category: unknown;
  secrets: unknown;
  /** `[{name, value}]` lists and `{NAME: value}` maps, in the order they apply. */
  env: unknown[];
  command: unknown;
  volumes: unknown;
  remote: unknown;
  user: unknown;
  disableNetwork: unknown;
  allowHosts: unknown;
  oauth: unknown;
  /** The entry declares user configuration (`config` parameters), which our catalog cannot template. */
  hasParameters: boolean;
}

export interface LoadedSource extends ImportSource {
  format: InputFormat;
  entries: SourceEntry[];
  /** Entries that could not even be read (a server.yaml that does not parse), already as skipped reports. */
  unreadable: ServerReport[];
}

function loadedSource(
  format: InputFormat,
  entries: SourceEntry[],
  unreadable: ServerReport[],
  catalogName?: string,
): LoadedSource {
  return {
    format,
    label: FORMAT_LABELS[format],
    entries,
    unreadable,
    ...(catalogName !== undefined ? { catalogName } : {}),
    convert: (options) => convertEntries(entries, options, unreadable),
  };
}

/** Default cap on one input file of the Docker importer (bytes). */
export const DOCKER_MCP_MAX_INPUT_BYTES = 50 * 1024 * 1024;

/** Reads a catalog YAML, a single server.yaml, or a directory of `<name>/server.yaml` files. */
export async function loadDockerMcpSource(
  input: string,
  maxBytes = DOCKER_MCP_MAX_INPUT_BYTES,
): Promise<LoadedSource> {
  let info;
  try {
    info = await stat(input);
  } catch (error) {
    throw new ImportError(
      `${input}: ${errorCode(error) === "ENOENT" ? "no such file or directory" : String(error)}`,
    );
  }
  if (info.isDirectory()) return loadRegistryDir(input, maxBytes);
  const text = await readText(input, maxBytes);
  const doc = parseYamlDocument(text, input);
  if (isRecord(doc) && doc.registry !== undefined) return fromCatalog(doc, input);
  if (isRecord(doc) && typeof doc.name === "string" && (doc.image !== undefined || doc.type !== undefined)) {
    return loadedSource("server-yaml", [fromServerYaml(doc, input)], []);
  }
  throw new ImportError(
    `${input}: neither a Docker MCP catalog (no top-level "registry:" map) nor a registry server.yaml (no "name" and "image"/"type")`,
  );
}

async function loadRegistryDir(dir: string, maxBytes: number): Promise<LoadedSource> {
  let root = dir;
  let files = await serverYamlFiles(root);
  if (files.length === 0) {
    // The root of a docker/mcp-registry checkout keeps them under servers/.
    const nested = path.join(dir, "servers");
    if (await isDirectory(nested)) {
      root = nested;
      files = await serverYamlFiles(root);
    }
  }
  if (files.length === 0) throw new ImportError(`${dir}: no <name>/server.yaml files found`);
  const entries: SourceEntry[] = [];
  const unreadable: ServerReport[] = [];
  for (const file of files) {
    const name = path.basename(path.dirname(file));
    try {
      const doc = parseYamlDocument(await readText(file, maxBytes), file);
      if (!isRecord(doc)) throw new ImportError(`${file}: not a YAML mapping`);
      entries.push(fromServerYaml(doc, file));
    } catch (error) {
      unreadable.push(
        unreadableReport(
          name,
          file,
          `cannot read: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    }
  }
  return loadedSource("registry-dir", entries, unreadable);
}

async function serverYamlFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
    for (const candidate of ["server.yaml", "server.yml"]) {
      const file = path.join(dir, entry.name, candidate);
      try {
        if ((await stat(file)).isFile()) {
          found.push(file);
          break;
        }
      } catch {
        // Not a server directory.
      }
    }
  }
  return found.sort();
}

function fromCatalog(doc: Record<string, unknown>, file: string): LoadedSource {
  const registry = doc.registry;
  if (!isRecord(registry)) throw new ImportError(`${file}: "registry" must be a map of server name to entry`);
  const entries: SourceEntry[] = [];
  const unreadable: ServerReport[] = [];
  for (const [name, tile] of Object.entries(registry)) {
    const origin = `${file}: registry.${name}`;
    if (!isRecord(tile)) {
      unreadable.push(unreadableReport(name, origin, "entry is not a map"));
      continue;
    }
    const metadata = isRecord(tile.metadata) ? tile.metadata : {};
    const oauth = isRecord(tile.oauth) ? tile.oauth.providers : tile.oauth;
    entries.push({
      name,
      origin,
      type: typeof tile.type === "string" ? tile.type : undefined,
      image: tile.image,
      title: tile.title,
      description: tile.description,
      category: metadata.category,
      secrets: tile.secrets,
      env: tile.env === undefined ? [] : [tile.env],
      command: tile.command,
      volumes: tile.volumes,
      remote: tile.remote,
      user: tile.user,
      disableNetwork: tile.disableNetwork,
      allowHosts: tile.allowHosts,
      oauth,
      hasParameters: Array.isArray(tile.config) && tile.config.length > 0,
    });
  }
  const catalogName = firstString(doc.displayName, doc.name);
  return loadedSource("catalog", entries, unreadable, catalogName);
}

function fromServerYaml(doc: Record<string, unknown>, file: string): SourceEntry {
  const about = isRecord(doc.about) ? doc.about : {};
  const meta = isRecord(doc.meta) ? doc.meta : {};
  const config = isRecord(doc.config) ? doc.config : {};
  const run = isRecord(doc.run) ? doc.run : {};
  const env: unknown[] = [];
  if (config.env !== undefined) env.push(config.env);
  if (run.env !== undefined) env.push(run.env);
  const parameters = isRecord(config.parameters) ? config.parameters : undefined;
  return {
    name: typeof doc.name === "string" ? doc.name : path.basename(path.dirname(file)),
    origin: file,
    type: typeof doc.type === "string" ? doc.type : undefined,
    image: doc.image,
    title: about.title,
    description: about.description,
    category: meta.category,
    secrets: config.secrets,
    env,
    command: run.command,
    volumes: run.volumes,
    remote: doc.remote,
    user: run.user,
    disableNetwork: run.disableNetwork,
    allowHosts: run.allowHosts,
    oauth: doc.oauth,
    hasParameters: parameters !== undefined && isRecord(parameters.properties),
  };
}

/**
 * Maps entries to server definitions; every definition returned passes ServerDefinition. Pure: the same entries
 * give the same servers and reports.
 */
export function convertEntries(
  entries: readonly SourceEntry[],
  options: ConvertOptions = {},
  unreadable: readonly ServerReport[] = [],
): ConvertResult {
  const assembler = new CatalogAssembler(options);
  for (const report of unreadable) assembler.addReport(report);
  for (const entry of entries) {
    const report = assembler.report(entry.name, entry.origin);
    const server = convertEntry(entry, report, assembler);
    if (server !== undefined) assembler.accept(server, report);
  }
  return assembler.result();
}

function convertEntry(
  entry: SourceEntry,
  report: ServerReport,
  assembler: CatalogAssembler,
): Record<string, unknown> | undefined {
  const drop = (field: string, reason: string) => report.dropped.push({ field, reason });
  const type = entry.type ?? "server";
  const remoteUrl =
    isRecord(entry.remote) && typeof entry.remote.url === "string" ? entry.remote.url : undefined;
  if (type === "remote" || (remoteUrl !== undefined && entry.image === undefined)) {
    return skip(
      report,
      `remote server${remoteUrl ? ` (${remoteUrl})` : ""}: hosted elsewhere, mcp-portal runs containers only`,
    );
  }
  if (type === "poci")
    return skip(report, "poci entry (tools run as one-shot containers per call), not an MCP server");
  if (type !== "server") return skip(report, `unsupported type "${type}"`);
  if (typeof entry.image !== "string" || entry.image.trim() === "") return skip(report, "no image");

  const image = splitImage(entry.image.trim());
  if (!ImageName.safeParse(image.name).success)
    return skip(report, `image "${entry.image}" is not a valid image name`);
  if (image.tag !== undefined && !ImageTag.safeParse(image.tag).success) {
    return skip(report, `image "${entry.image}" has an invalid tag`);
  }
  const tag = image.tag ?? "latest";
  if (image.digest !== undefined) {
    drop(
      "image digest",
      `${image.digest}: catalog entries have no digest field; the tag "${tag}" is used, which is not pinned`,
    );
  }
  if (!assembler.imageAllowed(image.name, report)) return undefined;

  const id = assembler.claimId(entry.name, report);
  if (id === undefined) return undefined;

  const server: Record<string, unknown> = { id, name: truncate(entry.name, 128) };
  const displayName = text(entry.title);
  if (displayName) server.display_name = truncated(displayName, 256, "title", report);
  const description = text(entry.description);
  if (description) server.description = truncated(description, 4096, "description", report);
  const category = text(entry.category);
  if (category) server.category = truncated(category, 64, "category", report);
  server.image = image.name;
  server.tag = tag;

  let templated = false;
  const command = mapCommand(entry.command, drop);
  if (command.templated) templated = true;
  if (command.value) server.command = command.value;
  server.transport = "stdio";

  const secrets = mapSecrets(entry.secrets, report);
  const environment = mapEnvironment(entry.env, new Set(secrets), drop);
  if (environment.templated) templated = true;
  if (Object.keys(environment.value).length > 0) server.environment = environment.value;

  const volumes = mapVolumes(entry.volumes, id, report);
  if (volumes.templated) templated = true;
  if (volumes.value.length > 0) server.volumes = volumes.value;
  if (secrets.length > 0) server.required_secrets = secrets;

  if (typeof entry.user === "string" && entry.user !== "") {
    drop(
      "user",
      `"${entry.user}": containers run as the configured non-root user (policy.json server_security can override)`,
    );
  }
  applyEgress(dockerEgress(entry), server, report);
  if (Array.isArray(entry.oauth) ? entry.oauth.length > 0 : isRecord(entry.oauth)) {
    drop("oauth", "no OAuth flow: set the token as a secret (mcp-portal secrets set <user> <NAME>)");
  }
  if (templated || entry.hasParameters) {
    server.user_configurable = true;
    report.notes.push(
      "user_configurable: true, so each user supplies the configuration (environment, volumes) in enabled-servers.json",
    );
  }
  return server;
}

/** Docker's `run.disableNetwork` and `run.allowHosts` (`host:port` entries) as one egress declaration. */
function dockerEgress(entry: SourceEntry): EgressIntent | undefined {
  if (entry.disableNetwork === true) return { mode: "none", declaredBy: "disableNetwork" };
  if (!Array.isArray(entry.allowHosts) || entry.allowHosts.length === 0) return undefined;
  const rules: EgressRule[] = [];
  for (const raw of entry.allowHosts) {
    const value = scalarText(raw);
    if (value === undefined || value === "") continue;
    const colon = value.lastIndexOf(":");
    const port = colon > 0 ? Number(value.slice(colon + 1)) : Number.NaN;
    rules.push(
      Number.isInteger(port) && port > 0 && port < 65_536
        ? { host: value.slice(0, colon), port }
        : { host: value },
    );
  }
  return { mode: "allow", rules, declaredBy: "allowHosts" };
}

function mapCommand(
  raw: unknown,
  drop: (field: string, reason: string) => void,
): { value?: string[]; templated: boolean } {
  if (raw === undefined || raw === null) return { templated: false };
  if (!Array.isArray(raw)) {
    drop("command", "not a list of arguments");
    return { templated: false };
  }
  const args = raw.map(scalarText);
  if (args.some((a) => a === undefined)) {
    drop("command", "has arguments that are not strings");
    return { templated: false };
  }
  const strings = args as string[];
  const templates = strings.filter((a) => TEMPLATE.test(a));
  if (templates.length > 0) {
    drop(
      "command",
      `uses user configuration (${templates.map(templateNames).join(", ")}); the image's default command runs instead`,
    );
    return { templated: true };
  }
  if (strings.length === 0) return { templated: false };
  if (strings.length > 256 || strings.some((a) => a.length > 4096)) {
    drop("command", "too long for the catalog schema (256 arguments of 4096 characters at most)");
    return { templated: false };
  }
  return { value: strings, templated: false };
}

function mapSecrets(raw: unknown, report: ServerReport): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    report.dropped.push({ field: "secrets", reason: "not a list" });
    return [];
  }
  const out: string[] = [];
  for (const [i, secret] of raw.entries()) {
    const label = isRecord(secret) && typeof secret.name === "string" ? secret.name : `secrets[${i}]`;
    const env = isRecord(secret) ? scalarText(secret.env) : undefined;
    if (env === undefined || env === "") {
      report.dropped.push({ field: `secret ${label}`, reason: "has no env name to inject it as" });
      continue;
    }
    const name = env.toUpperCase();
    if (!SECRET_NAME_PATTERN.test(name)) {
      report.dropped.push({
        field: `secret ${label}`,
        reason: `env "${env}" is not a valid environment variable name`,
      });
      continue;
    }
    if (out.includes(name)) continue;
    out.push(name);
    report.notes.push(
      name === env
        ? `secret ${label} -> required secret ${name}`
        : `secret ${label} -> required secret ${name} (upper-cased from "${env}": the container sees ${name})`,
    );
    if (isRecord(secret) && secret.required === false) {
      report.notes.push(
        `secret ${name} is optional in the source but required here: the server waits until it is set`,
      );
    }
  }
  return out.slice(0, 64);
}

function mapEnvironment(
  layers: readonly unknown[],
  secretNames: ReadonlySet<string>,
  drop: (field: string, reason: string) => void,
): { value: Record<string, string>; templated: boolean } {
  const value: Record<string, string> = {};
  let templated = false;
  const add = (name: string, raw: unknown) => {
    const field = `env ${name}`;
    if (!ENV_NAME_PATTERN.test(name)) return drop(field, "not a valid environment variable name");
    if (secretNames.has(name)) return drop(field, "a required secret of the same name provides it");
    const text = scalarText(raw);
    if (text === undefined) return drop(field, "value is not a string");
    if (TEMPLATE.test(text)) {
      templated = true;
      return drop(
        field,
        `value ${JSON.stringify(text)} uses user configuration (${templateNames(text)}); users set it in their config.environment`,
      );
    }
    if (text.length > 32_768) return drop(field, "value longer than 32768 characters");
    value[name] = text;
  };
  for (const layer of layers) {
    if (Array.isArray(layer)) {
      for (const item of layer) {
        if (!isRecord(item) || typeof item.name !== "string") {
          drop("env", "an entry without a name");
          continue;
        }
        if (item.value === undefined || item.value === null) {
          // server.yaml config.env may carry only an `example`: the value is the user's to give.
          templated = true;
          drop(
            `env ${item.name}`,
            "no value in the source (only an example); users set it in their config.environment",
          );
          continue;
        }
        add(item.name, item.value);
      }
    } else if (isRecord(layer)) {
      for (const [name, raw] of Object.entries(layer)) add(name, raw);
    } else if (layer !== null && layer !== undefined) {
      drop("env", "neither a list nor a map");
    }
  }
  return { value, templated };
}

function mapVolumes(
  raw: unknown,
  serverId: string,
  report: ServerReport,
): { value: Record<string, unknown>[]; templated: boolean } {
  const value: Record<string, unknown>[] = [];
  let templated = false;
  if (raw === undefined || raw === null) return { value, templated };
  if (!Array.isArray(raw)) {
    report.dropped.push({ field: "volumes", reason: "not a list" });
    return { value, templated };
  }
  const targets = new Set<string>();
  for (const item of raw) {
    const spec = scalarText(item);
    if (spec === undefined) {
      report.dropped.push({ field: "volume", reason: "not a string" });
      continue;
    }
    const field = `volume ${spec}`;
    const parts = splitVolume(spec);
    if (parts.length === 1) {
      if (TEMPLATE.test(spec)) {
        templated = true;
        report.dropped.push({
          field,
          reason: `expands to host paths chosen in user configuration (${templateNames(spec)}); users add volumes in their area instead`,
        });
      } else {
        report.dropped.push({ field, reason: "anonymous volume (no source): its data would not persist" });
      }
      continue;
    }
    if (parts.length > 3) {
      report.dropped.push({ field, reason: "not of the form source:target[:mode]" });
      continue;
    }
    const [source = "", target = "", options = ""] = parts;
    if (TEMPLATE.test(target)) {
      templated = true;
      report.dropped.push({
        field,
        reason: `the container path comes from user configuration (${templateNames(target)})`,
      });
      continue;
    }
    let hostPath: string;
    if (TEMPLATE.test(source)) {
      templated = true;
      hostPath = `{USER_DATA}/${volumeSlug(serverId, templateNames(source).split(", ")[0] ?? "")}`;
      report.notes.push(
        `${field}: the host path from user configuration becomes ${hostPath} in the user's own area`,
      );
    } else if (/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(source)) {
      hostPath = `{USER_DATA}/${volumeSlug(serverId, source)}`;
      report.notes.push(`${field}: named volume "${source}" becomes ${hostPath} in the user's own area`);
    } else {
      report.dropped.push({
        field,
        reason: `host path "${source}" is not allowed: volumes live in the user's area ({USER_DATA}, {USER_CACHE}, {USER_CONFIG})`,
      });
      continue;
    }
    const modes = options.split(",").filter((o) => o !== "");
    const mode = modes.includes("ro") ? "ro" : "rw";
    const ignored = modes.filter((o) => o !== "ro" && o !== "rw");
    if (ignored.length > 0) report.notes.push(`${field}: mount options ${ignored.join(",")} ignored`);
    if (targets.has(target)) {
      report.dropped.push({ field, reason: `a second volume at ${target}` });
      continue;
    }
    const volume = { host_path: hostPath, container_path: target, mode };
    const parsed = VolumeMount.safeParse(volume);
    if (!parsed.success) {
      report.dropped.push({ field, reason: parsed.error.issues[0]?.message ?? "invalid volume" });
      continue;
    }
    const inside = resolveUserVolumePath(hostPath, PLACEHOLDER_USER);
    if (!inside.ok) {
      report.dropped.push({ field, reason: inside.reason });
      continue;
    }
    targets.add(target);
    value.push(volume);
  }
  if (value.length > 32) {
    report.dropped.push({ field: "volumes", reason: `${value.length - 32} beyond the 32 the schema allows` });
    value.length = 32;
  }
  return { value, templated };
}

/** Splits `source:target[:mode]` at colons outside `{{...}}`. */
function splitVolume(spec: string): string[] {
  const holes: string[] = [];
  const masked = spec.replace(TEMPLATE_GLOBAL, (m) => {
    holes.push(m);
    return `\uE000${holes.length - 1}\uE001`;
  });
  return masked
    .split(":")
    .map((part) => part.replace(/\uE000(\d+)\uE001/g, (_, i: string) => holes[Number(i)] ?? ""));
}

/** `{{a.b_c|volume}}` -> `a.b_c`, for reports. */
function templateNames(textValue: string): string {
  const names = [...textValue.matchAll(TEMPLATE_GLOBAL)].map((m) => m[0].slice(2, -2).split("|")[0]!.trim());
  return [...new Set(names)].join(", ");
}

function volumeSlug(serverId: string, source: string): string {
  const last = source.split(".").pop() ?? "";
  const slug = `${serverId}-${last}`
    .replace(/[^A-Za-z0-9_.-]+/g, "-")
    .replace(/^[^A-Za-z0-9_]+/, "")
    .replace(/-+$/, "")
    .slice(0, 64);
  return VOLUME_SEGMENT.test(slug) ? slug : serverId;
}

function truncated(value: string, max: number, field: string, report: ServerReport): string {
  if (value.length <= max) return value;
  report.notes.push(`${field} cut to ${max} characters`);
  return truncate(value, max);
}

function parseYamlDocument(source: string, file: string): unknown {
  try {
    return parseYaml(source, { maxAliasCount: 100 });
  } catch (error) {
    throw new ImportError(
      `${file}: not valid YAML: ${error instanceof Error ? (error.message.split("\n")[0] ?? "").replace(/:\s*$/, "") : String(error)}`,
    );
  }
}

async function readText(file: string, maxBytes: number): Promise<string> {
  let info;
  try {
    info = await stat(file);
  } catch (error) {
    throw new ImportError(`${file}: cannot read (${errorCode(error) ?? String(error)})`);
  }
  if (info.size > maxBytes) throw new ImportError(`${file}: larger than ${maxBytes} bytes`);
  return readFile(file, "utf8");
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
