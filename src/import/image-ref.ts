export interface ImageRef {
  name: string;
  tag?: string;
  digest?: string;
}

/** `name[:tag][@digest]`; the tag separator is the last ':' after the last '/' (a registry port is not a tag). */
export function splitImage(ref: string): ImageRef {
  const at = ref.indexOf("@");
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const rest = at >= 0 ? ref.slice(0, at) : ref;
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  const out: ImageRef =
    colon > slash ? { name: rest.slice(0, colon), tag: rest.slice(colon + 1) } : { name: rest };
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** The registry host of an image name (`ghcr.io`, `localhost:5000`), or undefined for Docker Hub short names. */
export function registryHost(name: string): string | undefined {
  const slash = name.indexOf("/");
  if (slash < 0) return undefined;
  const first = name.slice(0, slash);
  return first.includes(".") || first.includes(":") || first === "localhost" ? first : undefined;
}
