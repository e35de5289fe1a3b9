import { sha256Hex } from "../util/canonical-json.js";

function shortHash(...parts: string[]): string {
  return sha256Hex(parts.join("\u0000")).slice(0, 6);
}

/**
 * `mcp-<user>-<server>-<hash>`: readable, and the hash of the ids (and installation) makes the ambiguity of
 * `-` inside ids (user `a-b` + server `c` vs user `a` + server `b-c`) harmless.
 */
export function containerName(installation: string, userId: string, serverId: string): string {
  return `mcp-${userId}-${serverId}-${shortHash(installation, userId, serverId)}`;
}

/** Name a replacement is created under before it takes over the final name. */
export function replacementName(finalName: string, specHash: string): string {
  return `${finalName}-next-${specHash.slice(0, 8)}`;
}

export function networkName(installation: string, userId: string): string {
  // Keep the contract name for the default installation; others share engines (tests), so they need their own.
  return installation === "default" ? `mcp-net-${userId}` : `mcp-net-${userId}-${shortHash(installation)}`;
}

/** Linux caps interface names at 15 characters; `userID[:8]` collided for users sharing a prefix. */
export function bridgeName(installation: string, userId: string): string {
  return `mcpbr-${sha256Hex(`${installation}\u0000${userId}`).slice(0, 9)}`;
}

/**
 * A new volume's name: readable, and unique by a 128-bit hash of installation, user, area and path. The readable
 * part alone is ambiguous (ids and paths contain `-`, the path is cut at 40 characters), so the hash must be long
 * enough that no user can search for a path whose name equals another user's volume (0.1 used 24 bits: a
 * collision took seconds). Volumes created under 0.1's names are adopted by their labels (see
 * computeDesiredUser's `existingVolumes`), so an upgrade renames nothing.
 */
export function volumeName(installation: string, userId: string, area: string, subpath: string): string {
  const slug = subpath
    .replace(/[^A-Za-z0-9_.-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  const readable = slug ? `${area}-${slug}` : area;
  return `mcp-${userId}-${readable}-${sha256Hex([installation, userId, area, subpath].join("\u0000")).slice(0, 32)}`;
}

/** Key of a user's volume by what it holds (area and path), as its labels record it. */
export function volumeKey(area: string, subpath: string): string {
  return `${area}\u0000${subpath}`;
}
