export interface PortRange {
  start: number;
  end: number;
}

/** The highest TCP/UDP port; a block past it is never accepted (unless the configured range itself goes past it). */
export const MAX_PORT = 65_535;

/** The largest block (MCP_PORTAL_PORTS_PER_USER's bound); a recorded block larger than this is not accepted. */
export const MAX_BLOCK_SIZE = 10_000;

export function blockSize(block: PortRange): number {
  return block.end - block.start + 1;
}

export function blockCount(range: PortRange, size: number): number {
  return Math.floor((range.end - range.start + 1) / size);
}

export function blockAt(range: PortRange, size: number, index: number): PortRange {
  const start = range.start + index * size;
  return { start, end: start + size - 1 };
}

/** Start of the block holding `port`, or undefined when the port is outside the range's whole blocks. */
export function blockStartOf(range: PortRange, size: number, port: number): number | undefined {
  if (port < range.start || port > range.end) return undefined;
  const index = Math.floor((port - range.start) / size);
  return index < blockCount(range, size) ? range.start + index * size : undefined;
}

/**
 * Indexes of the range's whole blocks (of `size` ports) that share a port with `span`: one for a block on the
 * grid, several for a block of another size or alignment, none when `span` misses every whole block.
 */
export function blocksCovering(
  range: PortRange,
  size: number,
  span: PortRange,
): { first: number; last: number } | undefined {
  const count = blockCount(range, size);
  const gridEnd = range.start + count * size - 1;
  const start = Math.max(span.start, range.start);
  const end = Math.min(span.end, gridEnd);
  if (count === 0 || start > end) return undefined;
  return { first: Math.floor((start - range.start) / size), last: Math.floor((end - range.start) / size) };
}

/** Indexes of the blocks that contain an excluded port: never handed to a new user. */
export function excludedBlocks(range: PortRange, size: number, excluded: readonly PortRange[]): Set<number> {
  const indexes = new Set<number>();
  for (const span of excluded) {
    const covered = blocksCovering(range, size, span);
    if (covered) for (let i = covered.first; i <= covered.last; i++) indexes.add(i);
  }
  return indexes;
}

/** How many users an empty pool gives a block: the range's whole blocks without an excluded port. */
export function portPoolCapacity(range: PortRange, size: number, excluded: readonly PortRange[]): number {
  return blockCount(range, size) - excludedBlocks(range, size, excluded).size;
}

/** `a-b` or `a`, as configuration and messages write a span of ports. */
export function formatPortSpan(span: PortRange): string {
  return span.start === span.end ? String(span.start) : `${span.start}-${span.end}`;
}

/**
 * A comma-separated list of ports and `a-b` spans (MCP_PORTAL_PORT_EXCLUDE); empty means none. Returns the
 * spans, or the first entry that is not one.
 */
export function parsePortSpans(value: string): { spans: PortRange[] } | { invalid: string } {
  const spans: PortRange[] = [];
  for (const raw of value.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(entry);
    const start = Number(match?.[1]);
    const end = match?.[2] === undefined ? start : Number(match[2]);
    if (!match || start < 1 || end > MAX_PORT || start > end) return { invalid: entry };
    spans.push({ start, end });
  }
  return { spans };
}

/**
 * Host ports for servers in priority order: a server keeps the port it already has (from its container's
 * label) when that port is inside the block and not claimed by an earlier server; others take the lowest free.
 */
export function assignHostPorts(
  block: PortRange,
  serverIds: readonly string[],
  current: ReadonlyMap<string, number>,
  reserved: ReadonlySet<number> = new Set(),
): Map<string, number> {
  const assigned = new Map<string, number>();
  const taken = new Set<number>(reserved);
  for (const id of serverIds) {
    const port = current.get(id);
    if (port !== undefined && port >= block.start && port <= block.end && !taken.has(port)) {
      assigned.set(id, port);
      taken.add(port);
    }
  }
  let next = block.start;
  for (const id of serverIds) {
    if (assigned.has(id)) continue;
    while (next <= block.end && taken.has(next)) next++;
    if (next > block.end) break;
    assigned.set(id, next);
    taken.add(next);
  }
  return assigned;
}
