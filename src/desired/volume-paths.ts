export type UserArea = "data" | "cache" | "config";

export interface UserVolumePath {
  area: UserArea;
  /** Sub-directory inside the area, `""` for the area itself; segments are plain names. */
  subpath: string;
}

export type VolumePathResult = { ok: true; value: UserVolumePath } | { ok: false; reason: string };

const PLACEHOLDER_AREAS: Record<string, UserArea> = {
  "{USER_DATA}": "data",
  "{USER_CACHE}": "cache",
  "{USER_CONFIG}": "config",
};
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/**
 * Resolves a catalog or user `host_path` to a place inside the user's own area. Everything else (absolute host
 * paths, `..`, unknown placeholders) is refused: user data lives in the user's labelled volumes, never on
 * arbitrary host paths (README, "Security").
 */
export function resolveUserVolumePath(hostPath: string, userId: string): VolumePathResult {
  let rest = hostPath.split("{USER_ID}").join(userId);
  let area: UserArea = "data";
  const placeholder = Object.keys(PLACEHOLDER_AREAS).find((p) => rest.startsWith(p));
  if (placeholder) {
    area = PLACEHOLDER_AREAS[placeholder] ?? "data";
    rest = rest.slice(placeholder.length);
    if (rest !== "" && !rest.startsWith("/")) {
      return { ok: false, reason: `expected "/" after ${placeholder}` };
    }
  } else if (rest.startsWith("/")) {
    return {
      ok: false,
      reason:
        "absolute host paths are not allowed; use {USER_DATA}/..., {USER_CACHE}/... or {USER_CONFIG}/...",
    };
  }
  if (rest.includes("{") || rest.includes("}")) {
    return {
      ok: false,
      reason: "unknown placeholder (allowed: {USER_ID}, {USER_DATA}, {USER_CACHE}, {USER_CONFIG})",
    };
  }
  const segments = rest.split("/").filter((s) => s !== "");
  for (const segment of segments) {
    if (segment === ".." || segment === ".")
      return { ok: false, reason: `"${segment}" would escape the user's area` };
    if (!SEGMENT.test(segment))
      return { ok: false, reason: `path segment "${segment.slice(0, 64)}" is not a plain name` };
  }
  if (segments.length > 8) return { ok: false, reason: "path is nested too deep (8 levels at most)" };
  return { ok: true, value: { area, subpath: segments.join("/") } };
}
