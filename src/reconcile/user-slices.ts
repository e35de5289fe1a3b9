import { LABELS } from "../labels.js";
import { isValidUserId } from "../util/ids.js";
import type { ActualUser } from "./plan.js";

/**
 * Installation-wide listings (one per resource kind) sliced per user by the user label; objects without a valid
 * user id are left out. Only users with at least one object get a slice.
 */
export function sliceByUser(listing: Readonly<ActualUser>): Map<string, ActualUser> {
  const slices = new Map<string, ActualUser>();
  const slice = (labels: Readonly<Record<string, string>>): ActualUser | undefined => {
    const userId = labels[LABELS.userId];
    if (!userId || !isValidUserId(userId)) return undefined;
    let s = slices.get(userId);
    if (!s) {
      s = { containers: [], networks: [], volumes: [] };
      slices.set(userId, s);
    }
    return s;
  };
  for (const c of listing.containers) slice(c.labels)?.containers.push(c);
  for (const n of listing.networks) slice(n.labels)?.networks.push(n);
  for (const v of listing.volumes) slice(v.labels)?.volumes.push(v);
  return slices;
}
