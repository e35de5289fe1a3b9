import { CatalogAssembler, type ConvertOptions, type ConvertResult, skip } from "../assembler.js";
import type { ImportSource } from "../catalog.js";
import { applyEgress } from "../egress.js";
import type { ServerReport } from "../report.js";
import { truncate } from "../text.js";
import { argumentValues } from "./arguments.js";
import { mapEnvironment } from "./environment.js";
import { REGISTRY_FORMAT_LABELS, type RegistryDocuments, type RegistryEntry } from "./load.js";
import { choosePackage, launchOf } from "./packages.js";
import type { RunnerImages } from "./runners.js";
import { readToolHive } from "./toolhive.js";
import { mapTransport } from "./transport.js";

/** The read documents as an import source; `runners` are the images npm and PyPI packages run on. */
export function mcpRegistrySource(documents: RegistryDocuments, runners: RunnerImages): ImportSource {
  return {
    format: documents.format,
    label: REGISTRY_FORMAT_LABELS[documents.format],
    convert: (options) => convertRegistryEntries(documents, runners, options),
  };
}

/** Maps every entry; pure: the same documents and options give the same servers and reports. */
export function convertRegistryEntries(
  documents: RegistryDocuments,
  runners: RunnerImages,
  options: ConvertOptions = {},
): ConvertResult {
  const assembler = new CatalogAssembler(options);
  for (const report of documents.refused) assembler.addReport(report);
  for (const entry of documents.entries) {
    const report = assembler.report(entry.server.name, entry.origin);
    const server = convertEntry(entry, runners, report, assembler);
    if (server !== undefined) assembler.accept(server, report);
  }
  return assembler.result();
}

function convertEntry(
  entry: RegistryEntry,
  runners: RunnerImages,
  report: ServerReport,
  assembler: CatalogAssembler,
): Record<string, unknown> | undefined {
  const { server: doc } = entry;
  const status = entry.official?.status;
  if (status === "deleted") return skip(report, "deleted from the registry");
  if (status === "deprecated") report.notes.push("deprecated in the registry");
  const packages = doc.packages ?? [];
  const remotes = doc.remotes ?? [];
  const remoteUrls = remotes.map((r) => r.url).join(", ");
  if (packages.length === 0) {
    return skip(
      report,
      remotes.length > 0
        ? `remote server (${remoteUrls}): hosted elsewhere, not runnable here; mcp-portal runs containers only`
        : "no packages: nothing to run",
    );
  }
  if (remotes.length > 0) {
    report.dropped.push({
      field: "remotes",
      reason: `${remoteUrls}: hosted endpoints are not runnable here; the package runs instead`,
    });
  }
  const chosen = choosePackage(packages, report);
  if (!chosen.ok) return skip(report, chosen.reason);
  const { pkg } = chosen;

  const launch = launchOf(pkg, runners, report);
  if (!launch.ok) return skip(report, launch.reason);
  const env = mapEnvironment(pkg.environmentVariables, report);
  const values = argumentValues([...(pkg.runtimeArguments ?? []), ...(pkg.packageArguments ?? [])]);
  for (const [name, value] of Object.entries(env.environment)) values.set(name, value);
  const transport = mapTransport(pkg.transport, values, report);
  if (!transport.ok) return skip(report, transport.reason);
  if (!assembler.imageAllowed(launch.launch.image, report)) return undefined;

  // Names are `namespace/name`; the id comes from the name part.
  const id = assembler.claimId(doc.name.slice(doc.name.lastIndexOf("/") + 1), report);
  if (id === undefined) return undefined;

  const server: Record<string, unknown> = { id, name: truncate(doc.name, 128) };
  if (doc.name.length > 128) report.notes.push("name cut to 128 characters");
  if (doc.title !== undefined) server.display_name = doc.title;
  server.description = doc.description;
  server.image = launch.launch.image;
  server.tag = launch.launch.tag;
  if (launch.launch.command) server.command = launch.launch.command;
  server.transport = transport.transport;
  if (transport.transport !== "stdio") server.ports = [{ container_port: transport.port, protocol: "tcp" }];
  const environment = { ...launch.launch.environment, ...env.environment };
  for (const name of env.secrets) {
    if (environment[name] === undefined) continue;
    delete environment[name];
    report.dropped.push({ field: `env ${name}`, reason: "a required secret of the same name provides it" });
  }
  if (Object.keys(environment).length > 0) server.environment = environment;
  if (env.secrets.length > 0) server.required_secrets = env.secrets;
  if (launch.launch.userConfigurable || env.userConfigurable) {
    server.user_configurable = true;
    report.notes.push(
      "user_configurable: true, so each user supplies the configuration (environment, volumes) in enabled-servers.json",
    );
  }
  const toolhive = readToolHive([doc._meta, entry.wrapperMeta], pkg.identifier, report);
  applyEgress(toolhive.egress, server, report);
  return server;
}
