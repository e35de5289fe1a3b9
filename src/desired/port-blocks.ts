export interface PortRange {
  start: number;
  end: number;
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
