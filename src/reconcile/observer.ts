import type { ActualContainer, ActualNetwork, ContainerRuntime } from "../docker/runtime.js";
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

interface KeptSlice {
  observed: ActualUser;
  fingerprint: string;
  /** Containers of our servers in `observed`. */
  servers: number;
}

/** Containers of our servers among a user's objects (not its other containers, such as an egress proxy). */
function serverContainers(observed: ActualUser): number {
  let servers = 0;
  for (const c of observed.containers) if (c.labels[LABELS.serverId] !== undefined) servers++;
  return servers;
}

/**
 * The one place that lists the engine for the reconcile loop: a full listing (three calls, one per kind) sliced
 * per user, and a user's own listing (three calls) when its slice may be stale. Slices are kept between
 * listings, as an informer's cache: a reconcile that only re-evaluates (a file or health change) uses the last
 * slice; whatever may have changed the user's objects (an engine event, our own mutations) marks it stale, so the
 * next reconcile lists again. A plan made on a cached slice is re-made on a fresh one before it is acted on.
 */
export class Observer {
  private slices = new Map<string, KeptSlice>();
  /** Containers of our servers in `slices`, kept as slices change (a kept resync asks it every time). */
  private keptServers = 0;
  /**
   * Users whose slice may be stale, with the mark's sequence number: a listing clears only marks made before it
   * started (an event that arrives while a listing is under way may describe a change the listing missed).
   */
  private readonly stale = new Map<string, number>();
  private marks = 0;
  /** The sequence number of the last mark that concerns everything (a network or volume event, a lost stream). */
  private fleetMark = 0;
  /** The sequence number when the last full listing started. */
  private fleetListedAt = -1;
  /** After the first full listing, a user without a slice is known to own nothing. */
  private listed = false;

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly installation: string,
  ) {}

  /** Lists everything (3 calls) and refreshes every user's slice. */
  async listAll(): Promise<FleetListing> {
    const startedAt = this.marks;
    const filters = ownerFilters(this.installation);
    const [containers, allNetworks, volumes] = await Promise.all([
      this.runtime.listContainers(filters),
      this.runtime.listNetworks(),
      this.runtime.listVolumes(filters),
    ]);
    const networks = allNetworks.filter((n) => isOwnedBy(n.labels, this.installation));
    const listing = { containers, networks, volumes };
    const slices = sliceByUser(listing);
    // A settled fleet lists the same objects every resync: an unchanged slice keeps its fingerprint (the same
    // string, so comparing it later is a pointer check) instead of building and sorting a new one.
    const next = new Map<string, KeptSlice>();
    let keptServers = 0;
    for (const [userId, observed] of slices) {
      const before = this.slices.get(userId);
      const fingerprint =
        before && sameObservation(before.observed, observed) ? before.fingerprint : fingerprintOf(observed);
      const servers = serverContainers(observed);
      keptServers += servers;
      next.set(userId, { observed, fingerprint, servers });
    }
    this.slices = next;
    this.keptServers = keptServers;
    for (const [userId, mark] of this.stale) if (mark <= startedAt) this.stale.delete(userId);
    this.fleetListedAt = startedAt;
    this.listed = true;
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
    const startedAt = this.marks;
    const filters = ownerFilters(this.installation, userId);
    const [containers, networks, volumes] = await Promise.all([
      this.runtime.listContainers(filters),
      this.runtime.listNetworks(filters),
      this.runtime.listVolumes(filters),
    ]);
    const observed = { containers, networks, volumes };
    const fingerprint = fingerprintOf(observed);
    if ((this.stale.get(userId) ?? 0) <= startedAt) this.stale.delete(userId);
    this.keptServers -= this.slices.get(userId)?.servers ?? 0;
    if (containers.length + networks.length + volumes.length > 0) {
      const servers = serverContainers(observed);
      this.keptServers += servers;
      this.slices.set(userId, { observed, fingerprint, servers });
    } else this.slices.delete(userId);
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
    this.stale.set(userId, ++this.marks);
  }

  /**
   * Something changed that no user's listing covers (a network or volume event, an event stream that dropped):
   * the kept listing is not trusted until the next full listing.
   */
  invalidateListing(): void {
    this.fleetMark = ++this.marks;
  }

  /** Whether the kept listing may miss a change no user's mark records (see `invalidateListing`). */
  get listingInvalidated(): boolean {
    return this.fleetMark > this.fleetListedAt;
  }

  /** Users marked stale and not listed since. */
  get staleUsers(): number {
    return this.stale.size;
  }

  /** Containers of our servers in the kept slices (the managed total, without listing). */
  managedContainers(): number {
    return this.keptServers;
  }

  forget(userId: string): void {
    this.keptServers -= this.slices.get(userId)?.servers ?? 0;
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
  // Listings keep a user's objects together (created together): the last slice is looked up first.
  let lastUserId: string | undefined;
  let last: ActualUser | undefined;
  const slice = (labels: Readonly<Record<string, string>>): ActualUser | undefined => {
    const userId = labels[LABELS.userId];
    if (!userId) return undefined;
    if (userId === lastUserId) return last;
    let s = slices.get(userId);
    // A user's slice exists only once its id passed the check: each id is checked once per listing.
    if (!s) {
      if (!isValidUserId(userId)) return undefined;
      s = { containers: [], networks: [], volumes: [] };
      slices.set(userId, s);
    }
    lastUserId = userId;
    last = s;
    return s;
  };
  for (const c of listing.containers) slice(c.labels)?.containers.push(c);
  for (const n of listing.networks) slice(n.labels)?.networks.push(n);
  for (const v of listing.volumes) slice(v.labels)?.volumes.push(v);
  return slices;
}

/**
 * What a plan or a status reads of a container. Its labels cannot change without a new id, except a workload
 * updated in place, whose version then changes. `sameContainer` compares exactly these fields.
 */
function containerPart(c: ActualContainer): string {
  return (
    `c${c.id}|${c.name}|${c.state}|${c.labels[LABELS.serverId] ?? ""}|${c.labels[LABELS.specHash] ?? ""}` +
    `|${c.labels[LABELS.hostPort] ?? ""}|${c.networkIds.join(",")}|${c.version ?? ""}|${c.placement ?? ""}` +
    `|${c.node ?? ""}|${c.crashLoop ? `${c.crashLoop.failures}:${c.crashLoop.lastError}` : ""}`
  );
}

function sameContainer(a: ActualContainer, b: ActualContainer): boolean {
  return (
    a.id === b.id &&
    a.name === b.name &&
    a.state === b.state &&
    a.labels[LABELS.serverId] === b.labels[LABELS.serverId] &&
    a.labels[LABELS.specHash] === b.labels[LABELS.specHash] &&
    a.labels[LABELS.hostPort] === b.labels[LABELS.hostPort] &&
    sameStrings(a.networkIds, b.networkIds) &&
    a.version === b.version &&
    a.placement === b.placement &&
    a.node === b.node &&
    a.crashLoop?.failures === b.crashLoop?.failures &&
    a.crashLoop?.lastError === b.crashLoop?.lastError
  );
}

function networkPart(n: ActualNetwork): string {
  return `n${n.id}|${n.name}|${n.subnets.join(",")}|${n.labels[LABELS.portBlock] ?? ""}`;
}

function sameNetwork(a: ActualNetwork, b: ActualNetwork): boolean {
  return (
    a.id === b.id &&
    a.name === b.name &&
    sameStrings(a.subnets, b.subnets) &&
    a.labels[LABELS.portBlock] === b.labels[LABELS.portBlock]
  );
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Everything of a slice that a plan or a status reads, as one string: equal strings, equal plans (for the same desire). */
export function fingerprintOf(observed: ActualUser): string {
  const parts: string[] = [];
  for (const c of observed.containers) parts.push(containerPart(c));
  for (const n of observed.networks) parts.push(networkPart(n));
  for (const v of observed.volumes) parts.push(`v${v.name}`);
  return parts.sort().join("\n");
}

/**
 * The same objects in the same order, field for field as `fingerprintOf` reads them: then their fingerprints are
 * equal, without building either. (Another order answers false; the fingerprints, sorted, may still be equal.)
 */
export function sameObservation(a: ActualUser, b: ActualUser): boolean {
  if (
    a.containers.length !== b.containers.length ||
    a.networks.length !== b.networks.length ||
    a.volumes.length !== b.volumes.length
  )
    return false;
  for (let i = 0; i < a.containers.length; i++)
    if (!sameContainer(a.containers[i]!, b.containers[i]!)) return false;
  for (let i = 0; i < a.networks.length; i++) if (!sameNetwork(a.networks[i]!, b.networks[i]!)) return false;
  for (let i = 0; i < a.volumes.length; i++) if (a.volumes[i]!.name !== b.volumes[i]!.name) return false;
  return true;
}
