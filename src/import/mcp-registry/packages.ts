import { ImageName, ImageTag } from "../../schema/common.js";
import { registryHost, splitImage } from "../image-ref.js";
import type { ServerReport } from "../report.js";
import { argumentTokens } from "./arguments.js";
import { mapDockerFlags } from "./docker-flags.js";
import type { RunnerImage, RunnerImages } from "./runners.js";
import type { Package } from "./schema.js";

/*
 * How one server.json package becomes a container: an OCI package is the image itself (packageArguments replace
 * its CMD); npm and PyPI packages run on a runner image through npx/uvx with the pinned version. nuget (dnx) and
 * mcpb bundles are not runnable here.
 */

/** Preference when a server offers several packages: an image needs nothing at start, npx/uvx need a registry. */
const PREFERENCE = ["oci", "npm", "pypi"] as const;
type RunnableType = (typeof PREFERENCE)[number];

const NOT_RUNNABLE: Readonly<Record<string, string>> = {
  nuget: "nuget packages run with dnx (.NET SDK), for which there is no runner image",
  mcpb: "MCP bundles (mcpb) are desktop-client archives, not container images",
};

export interface Launch {
  image: string;
  tag: string;
  command?: string[];
  environment: Record<string, string>;
  userConfigurable: boolean;
}

/** The package to run: the first by preference; the others are reported. */
export function choosePackage(
  packages: readonly Package[],
  report: ServerReport,
): { ok: true; pkg: Package } | { ok: false; reason: string } {
  const runnable = PREFERENCE.flatMap((type) => packages.filter((p) => p.registryType === type));
  const chosen = runnable[0];
  if (chosen === undefined) {
    const why = [...new Set(packages.map((p) => p.registryType))]
      .map((type) => NOT_RUNNABLE[type] ?? `registry type "${type}" is not supported`)
      .join("; ");
    return { ok: false, reason: `no runnable package: ${why}` };
  }
  for (const other of packages) {
    if (other === chosen) continue;
    report.dropped.push({
      field: `package ${describePackage(other)}`,
      reason: `not used: the ${describePackage(chosen)} package runs`,
    });
  }
  return { ok: true, pkg: chosen };
}

export function describePackage(pkg: Package): string {
  return `${pkg.registryType} ${pkg.identifier}${pkg.version !== undefined ? `@${pkg.version}` : ""}`;
}

export function launchOf(
  pkg: Package,
  runners: RunnerImages,
  report: ServerReport,
): { ok: true; launch: Launch } | { ok: false; reason: string } {
  const type = pkg.registryType as RunnableType;
  if (pkg.fileSha256 !== undefined) {
    report.dropped.push({
      field: "fileSha256",
      reason: "no file is downloaded at import; the package registry serves it at start",
    });
  }
  if (type === "oci") return ociLaunch(pkg, report);
  return runnerLaunch(type, pkg, type === "npm" ? runners.npm : runners.pypi, report);
}

const DOCKER_HUB = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);

/**
 * `identifier` is the image (with its registry, tag and/or digest: the 2025-12-11 form), or, in the earlier
 * form, a repository completed by `registryBaseUrl` and `version`.
 */
function ociLaunch(
  pkg: Package,
  report: ServerReport,
): { ok: true; launch: Launch } | { ok: false; reason: string } {
  const ref = splitImage(pkg.identifier.trim());
  let name = ref.name;
  if (pkg.registryBaseUrl !== undefined) {
    let host: string;
    try {
      const url = new URL(pkg.registryBaseUrl);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("not http(s)");
      host = url.host;
    } catch {
      return { ok: false, reason: `registryBaseUrl "${pkg.registryBaseUrl}" is not a URL` };
    }
    const inName = registryHost(name);
    if (inName === undefined) {
      if (!DOCKER_HUB.has(host)) name = `${host}/${name}`;
    } else if (inName !== host && !(DOCKER_HUB.has(inName) && DOCKER_HUB.has(host))) {
      return { ok: false, reason: `identifier names registry ${inName} but registryBaseUrl says ${host}` };
    }
  }
  if (!ImageName.safeParse(name).success)
    return { ok: false, reason: `image "${name}" is not a valid image name` };
  let tag = ref.tag;
  if (tag === undefined && pkg.version !== undefined) tag = pkg.version;
  else if (tag !== undefined && pkg.version !== undefined && pkg.version !== tag) {
    report.notes.push(`the identifier's tag "${tag}" is used, not version "${pkg.version}"`);
  }
  if (tag === undefined) {
    return {
      ok: false,
      reason: ref.digest
        ? `image "${pkg.identifier}" is pinned by digest only; catalog entries name a tag, and none is given`
        : `image "${pkg.identifier}" has no tag or version: it would not be pinned`,
    };
  }
  if (!ImageTag.safeParse(tag).success) return { ok: false, reason: `"${tag}" is not a valid image tag` };
  if (ref.digest !== undefined) {
    report.dropped.push({
      field: "image digest",
      reason: `${ref.digest}: catalog entries have no digest field; the tag "${tag}" is used, which is not pinned`,
    });
  }
  const flags = mapDockerFlags(pkg.runtimeArguments, report);
  const args = argumentTokens(pkg.packageArguments, "packageArguments", report);
  if (!args.ok) return args;
  return {
    ok: true,
    launch: {
      image: name,
      tag,
      ...(args.tokens.length > 0 ? { command: args.tokens } : {}),
      environment: flags.environment,
      userConfigurable: flags.userConfigurable,
    },
  };
}

const DEFAULT_REGISTRIES: Record<"npm" | "pypi", string> = {
  npm: "https://registry.npmjs.org",
  pypi: "https://pypi.org",
};

/** npx/uvx with the pinned version; the package manager's caches live in the user's /cache volume. */
function runnerLaunch(
  type: "npm" | "pypi",
  pkg: Package,
  runner: RunnerImage,
  report: ServerReport,
): { ok: true; launch: Launch } | { ok: false; reason: string } {
  if (pkg.version === undefined)
    return { ok: false, reason: `${type} package ${pkg.identifier} has no version: it would not be pinned` };
  if (!/^[A-Za-z0-9@/._~-]+$/.test(pkg.identifier) || pkg.identifier.startsWith("-")) {
    return { ok: false, reason: `"${pkg.identifier}" is not a ${type} package name` };
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9.+_-]*$/.test(pkg.version) || /(^|\.)[xX](\.|$)/.test(pkg.version)) {
    return { ok: false, reason: `version "${pkg.version}" is not a single pinned version` };
  }
  const runtime = argumentTokens(pkg.runtimeArguments, "runtimeArguments", report);
  if (!runtime.ok) return runtime;
  const args = argumentTokens(pkg.packageArguments, "packageArguments", report);
  if (!args.ok) return args;
  const environment: Record<string, string> = {};
  const registry = pkg.registryBaseUrl?.replace(/\/+$/, "");
  const custom = registry !== undefined && registry !== DEFAULT_REGISTRIES[type];
  let command: string[];
  if (type === "npm") {
    if (pkg.runtimeHint !== undefined && pkg.runtimeHint !== "npx") {
      report.notes.push(`runtimeHint "${pkg.runtimeHint}": runs with npx`);
    }
    command = ["npx", "--yes", ...runtime.tokens, "--", `${pkg.identifier}@${pkg.version}`, ...args.tokens];
    environment.npm_config_cache = "/cache/npm";
    environment.npm_config_update_notifier = "false";
    if (custom) {
      environment.npm_config_registry = registry;
      report.notes.push(`npm registry ${registry} (npm_config_registry)`);
    }
  } else {
    if (custom) {
      // uvx would look the same name up on pypi.org: a different package, not the publisher's.
      return {
        ok: false,
        reason: `PyPI index ${registry} is not supported (uvx would fetch a same-named package from pypi.org)`,
      };
    }
    if (pkg.runtimeHint !== undefined && pkg.runtimeHint !== "uvx") {
      report.notes.push(`runtimeHint "${pkg.runtimeHint}": runs with uvx`);
    }
    command = ["uvx", ...runtime.tokens, `${pkg.identifier}@${pkg.version}`, ...args.tokens];
    environment.UV_CACHE_DIR = "/cache/uv";
    environment.UV_PYTHON_DOWNLOADS = "never";
  }
  if (runtime.tokens.length > 0) {
    report.notes.push(`runtimeArguments ${runtime.tokens.join(" ")} go to ${type === "npm" ? "npx" : "uvx"}`);
  }
  report.notes.push(
    `runs ${command.join(" ")} on ${runner.name}:${runner.tag}; the package is fetched from its registry when the container starts`,
  );
  return {
    ok: true,
    launch: { image: runner.name, tag: runner.tag, command, environment, userConfigurable: false },
  };
}
