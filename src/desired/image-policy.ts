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
