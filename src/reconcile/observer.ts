import type { ActualNetwork, ContainerRuntime } from "../docker/runtime.js";
import { LABELS, isOwnedBy, ownerFilters } from "../labels.js";
import { isValidUserId } from "../util/ids.js";
import type { ActualUser } from "./plan.js";

/** One full listing of what the installation owns (and of every network, for subnet allocation). */
export interface FleetListing {
  /** Per user, everything labelled with its id. Users without objects have no entry. */
  slices: Map<string, ActualUser>;
  /** Every network on the engine, ours and others' (their subnets must not be reused). */
  allNetworks: ActualNetwork[];
  /** Containers of our servers (the managed total the prune guard measures against). */
  managedContainers: number;
  /** Objects labelled for this installation, all users. */
  listing: ActualUser;
}

export interface UserObservation {
  observed: ActualUser;
  /** True when it came from an earlier listing rather than a call just now (it may be stale). */
  fromCache: boolean;
  /** Equal fingerprints: nothing a plan depends on differs between two observations. */
  fingerprint: string;
}

const EMPTY: ActualUser = { containers: [], networks: [], volumes: [] };

/**
 * The one place that lists the engine for the reconcile loop: a full listing (three calls, one per kind) sliced
 * per user, and a user's own listing (three calls) when its slice may be stale. Slices are kept between
 * listings, as an informer's cache: a reconcile that only re-evaluates (a file or health change) uses the last
 * slice; whatever may have changed the user's objects (an engine event, our own mutations) marks it stale, so the
 * next reconcile lists again. A plan made on a cached slice is re-made on a fresh one before it is acted on.
 */
export class Observer {
  private readonly slices = new Map<string, { observed: ActualUser; fingerprint: string }>();
  private readonly stale = new Set<string>();
  /** After the first full listing, a user without a slice is known to own nothing. */
  private listed = false;

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly installation: string,
  ) {}

  /** Lists everything (3 calls) and refreshes every user's slice. */
  async listAll(): Promise<FleetListing> {
    const filters = ownerFilters(this.installation);
    const [containers, allNetworks, volumes] = await Promise.all([
      this.runtime.listContainers(filters),
      this.runtime.listNetworks(),
      this.runtime.listVolumes(filters),
    ]);
    const networks = allNetworks.filter((n) => isOwnedBy(n.labels, this.installation));
    const listing = { containers, networks, volumes };
    const slices = sliceByUser(listing);
    this.slices.clear();
    this.stale.clear();
    this.listed = true;
    for (const [userId, observed] of slices)
      this.slices.set(userId, { observed, fingerprint: fingerprintOf(observed) });
    let managedContainers = 0;
    for (const c of containers) if (c.labels[LABELS.serverId] !== undefined) managedContainers++;
    return { slices, allNetworks, managedContainers, listing };
  }

  /** The user's objects: the kept slice unless it may be stale (or `fresh` is asked), else its own listing. */
  async user(userId: string, options: { fresh?: boolean } = {}): Promise<UserObservation> {
    const kept = this.slices.get(userId);
    const known = kept !== undefined || this.listed;
    if (!options.fresh && !this.stale.has(userId) && known) {
      const slice = kept ?? { observed: EMPTY, fingerprint: "" };
      return { observed: slice.observed, fromCache: true, fingerprint: slice.fingerprint };
    }
    const filters = ownerFilters(this.installation, userId);
    const [containers, networks, volumes] = await Promise.all([
      this.runtime.listContainers(filters),
      this.runtime.listNetworks(filters),
      this.runtime.listVolumes(filters),
    ]);
    const observed = { containers, networks, volumes };
    const fingerprint = fingerprintOf(observed);
    this.stale.delete(userId);
    if (containers.length + networks.length + volumes.length > 0)
      this.slices.set(userId, { observed, fingerprint });
    else this.slices.delete(userId);
    return { observed, fromCache: false, fingerprint };
  }

  /** The kept slice of a user, when it is not stale (no I/O); an empty one for a user without objects. */
  peek(userId: string): UserObservation | undefined {
    if (this.stale.has(userId)) return undefined;
    const kept = this.slices.get(userId);
    if (kept) return { observed: kept.observed, fromCache: true, fingerprint: kept.fingerprint };
    return this.listed ? { observed: EMPTY, fromCache: true, fingerprint: "" } : undefined;
  }

  /** The user's objects may have changed (an engine event, or we changed them): list before trusting them. */
  markStale(userId: string): void {
    this.stale.add(userId);
  }

  forget(userId: string): void {
    this.slices.delete(userId);
    this.stale.delete(userId);
  }

  /** Users with objects as of the last listings. */
  users(): IterableIterator<string> {
    return this.slices.keys();
  }
}

/**
 * Installation-wide listings sliced per user by the user label; objects without a valid user id are left out.
 * Only users with at least one object get a slice.
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

/** Everything of a slice that a plan reads, as one string: equal strings, equal plans (for the same desire). */
export function fingerprintOf(observed: ActualUser): string {
  const parts: string[] = [];
  for (const c of observed.containers)
    parts.push(
      `c${c.id}|${c.name}|${c.state}|${c.labels[LABELS.serverId] ?? ""}|${c.labels[LABELS.specHash] ?? ""}|${c.labels[LABELS.hostPort] ?? ""}|${c.networkIds.join(",")}`,
    );
  for (const n of observed.networks)
    parts.push(`n${n.id}|${n.name}|${n.subnets.join(",")}|${n.labels[LABELS.portBlock] ?? ""}`);
  for (const v of observed.volumes) parts.push(`v${v.name}`);
  return parts.sort().join("\n");
}
