import { ImageName, ImageTag } from "../../schema/common.js";
import { splitImage } from "../image-ref.js";
import { ImportError } from "../report.js";

/*
 * npm and PyPI packages run on a runner image that fetches the pinned package when the container starts
 * (`npx --yes -- <package>@<version>`, `uvx <package>@<version>`): the engine needs the package registry then,
 * not at import time. The images are configurable because sites mirror or pin them.
 */

export interface RunnerImage {
  name: string;
  tag: string;
}

export interface RunnerImages {
  npm: RunnerImage;
  pypi: RunnerImage;
}

export const DEFAULT_RUNNER_IMAGES = {
  npm: "node:24-alpine",
  pypi: "ghcr.io/astral-sh/uv:python3.12-bookworm-slim",
} as const;

export const RUNNER_IMAGE_ENV = {
  npm: "MCP_PORTAL_NPM_RUNNER_IMAGE",
  pypi: "MCP_PORTAL_PYPI_RUNNER_IMAGE",
} as const;

/** `name:tag`; a tag is required so the catalog never says `latest` by accident. */
export function parseRunnerImage(ref: string, what: string): RunnerImage {
  const parts = splitImage(ref.trim());
  if (parts.digest !== undefined) throw new ImportError(`${what}: "${ref}" has a digest; give name:tag`);
  if (parts.tag === undefined) throw new ImportError(`${what}: "${ref}" has no tag; give name:tag`);
  if (!ImageName.safeParse(parts.name).success || !ImageTag.safeParse(parts.tag).success) {
    throw new ImportError(`${what}: "${ref}" is not a valid image name:tag`);
  }
  return { name: parts.name, tag: parts.tag };
}

/** Flags win over the environment, which wins over the defaults. */
export function runnerImages(
  flags: { npm?: string | undefined; pypi?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
): RunnerImages {
  const pick = (kind: "npm" | "pypi", flag: string) => {
    const fromFlag = flags[kind];
    if (fromFlag !== undefined) return parseRunnerImage(fromFlag, flag);
    const fromEnv = env[RUNNER_IMAGE_ENV[kind]];
    if (fromEnv !== undefined && fromEnv !== "") return parseRunnerImage(fromEnv, RUNNER_IMAGE_ENV[kind]);
    return parseRunnerImage(DEFAULT_RUNNER_IMAGES[kind], `default ${kind} runner image`);
  };
  return { npm: pick("npm", "--npm-runner-image"), pypi: pick("pypi", "--pypi-runner-image") };
}
