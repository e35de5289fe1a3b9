/** Docker's own normalisation: `mcp/github` is `docker.io/mcp/github`, `redis` is `docker.io/library/redis`. */
export function normalizeImageName(image: string): string {
  const first = image.split("/")[0] ?? "";
  const hasRegistry =
    image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (hasRegistry) {
    const [registry, ...rest] = image.split("/");
    if ((registry === "docker.io" || registry === "index.docker.io") && rest.length === 1)
      return `docker.io/library/${rest[0]}`;
    return registry === "index.docker.io" ? `docker.io/${rest.join("/")}` : image;
  }
  return image.includes("/") ? `docker.io/${image}` : `docker.io/library/${image}`;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

/** `*` matches any run of characters (slashes included), `?` one character; a glob may name either form. */
export function isImageAllowed(image: string, globs: readonly string[]): boolean {
  const candidates = [image, normalizeImageName(image)];
  return globs.some((glob) => {
    // A glob may be written short (`mcp/*`) or long (`docker.io/mcp/*`); compare both against both forms.
    const patterns = [globToRegExp(glob), globToRegExp(normalizeImageName(glob))];
    return patterns.some((re) => candidates.some((c) => re.test(c)));
  });
}

/** Where the image allow-list in force comes from. */
export type AllowedImagesSource = "policy.json" | "MCP_PORTAL_ALLOWED_IMAGES" | "none";

export interface AllowedImages {
  globs: readonly string[];
  source: AllowedImagesSource;
}

/** Every image of every registry: what applies when neither policy.json nor the environment names any. */
const ANY_IMAGE: readonly string[] = ["*"];

/**
 * policy.json's `allowed_images` when the file gives the field, else MCP_PORTAL_ALLOWED_IMAGES when set, else
 * every image ("none": no allow-list at all, which `validate` and `plan` warn about).
 */
export function resolveAllowedImages(
  fromPolicy: readonly string[] | undefined,
  fromEnvironment: readonly string[] | undefined,
): AllowedImages {
  if (fromPolicy !== undefined) return { globs: fromPolicy, source: "policy.json" };
  if (fromEnvironment !== undefined) return { globs: fromEnvironment, source: "MCP_PORTAL_ALLOWED_IMAGES" };
  return { globs: ANY_IMAGE, source: "none" };
}

/** The one wording of a refused image, for status, `validate` and the API alike. */
export function imageNotAllowedMessage(image: string, source: AllowedImagesSource): string {
  switch (source) {
    case "policy.json":
      return `image "${image}" is not allowed by policy.json allowed_images`;
    case "MCP_PORTAL_ALLOWED_IMAGES":
      return `image "${image}" is not allowed by MCP_PORTAL_ALLOWED_IMAGES (policy.json gives no allowed_images)`;
    case "none":
      // Not reached while "none" means every image; kept exact should that ever change.
      return `image "${image}" is not allowed`;
  }
}

/** One line saying which allow-list applies, for `validate` and `plan`. */
export function describeAllowedImages(allowed: AllowedImages): string {
  switch (allowed.source) {
    case "policy.json":
      return `allowed images from policy.json allowed_images: ${allowed.globs.join(", ") || "(none: every image refused)"}`;
    case "MCP_PORTAL_ALLOWED_IMAGES":
      return `allowed images from MCP_PORTAL_ALLOWED_IMAGES (policy.json gives no allowed_images): ${allowed.globs.join(", ")}`;
    case "none":
      return "no image allow-list: policy.json gives no allowed_images and MCP_PORTAL_ALLOWED_IMAGES is not set, so any image from any registry may run";
  }
}
