import { readFile } from "node:fs/promises";
import path from "node:path";
import { EGRESS_PROXY_ROLE } from "../desired/egress-desired.js";
import type { ContainerRuntime } from "../docker/runtime.js";
import { LABELS, ownerFilters } from "../labels.js";
import type { AuditWriter } from "../observability/audit.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import {
  DENIAL_CURSOR_FILE,
  DenialCursorFile,
  type ProxyCursor,
  advance,
  linesAfter,
  parseDenialLine,
} from "./egress-denials.js";

/** Reads of at most maxBytes each that a removed proxy's drain makes before it gives up on the rest. */
export const DRAIN_MAX_READS = 16;

export interface EgressDenialCollectorOptions {
  runtime: Pick<ContainerRuntime, "listContainers" | "readLogs">;
  audit: AuditWriter;
  metrics: Pick<Metrics, "egressDeniedTotal">;
  logger: Logger;
  stateDir: string;
  installation: string;
  /** MCP_PORTAL_EGRESS_DENIAL_POLL_SECONDS, in ms. */
  pollMs: number;
  /** MCP_PORTAL_EGRESS_DENIAL_MAX_BYTES: most bytes of one proxy's log read per poll. */
  maxBytes: number;
}

/** What one poll did (tests and the debug log). */
export interface PollResult {
  proxies: number;
  denials: number;
  invalid: number;
}

/**
 * Turns the denial lines users' egress proxies write (one per server, kind, destination and 10 s window) into
 * audit lines and `mcp_portal_egress_denied_total{kind}`. It follows each proxy container's log from a cursor kept
 * in `<state-dir>/egress-denials.json` (written after each proxy's lines are audited), so a restart goes on where
 * the last poll stopped: no window is lost or counted twice (a crash between an audit line and the cursor write
 * repeats that poll's lines of that proxy). At most `maxBytes` of a proxy's log per poll; the rest comes next poll.
 */
export class EgressDenialCollector {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Undefined until read; the file's proxies by container id. */
  private cursors: Map<string, ProxyCursor> | undefined;
  /** The last poll or drain queued (see exclusive). */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: EgressDenialCollectorOptions) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pollOnce()
        .then(
          () => undefined,
          (error: unknown) =>
            this.options.logger.warn({ err: error }, "egress denials: poll failed; next poll retries"),
        )
        .finally(() => this.schedule());
    }, this.options.pollMs);
    this.timer.unref();
  }

  /** Reads every proxy's new lines once: audits and counts them, then records how far it read. */
  pollOnce(): Promise<PollResult> {
    return this.exclusive(() => this.pollAll());
  }

  /**
   * Reads what one proxy wrote since the last poll, called between its stop (the proxy writes its open window when
   * SIGTERM arrives) and its removal (its log goes with it): the last window of a replaced or removed proxy is
   * audited instead of lost. Runs after a poll in progress, never beside it (both would read from one cursor).
   */
  drain(containerId: string, containerName: string, userId: string): Promise<PollResult> {
    return this.exclusive(async () => {
      const cursors = await this.loadCursors();
      const result: PollResult = { proxies: 1, denials: 0, invalid: 0 };
      const proxy = { id: containerId, name: containerName, user: userId };
      // Its log is gone after this: read on past maxBytes, up to a bound.
      for (let read = 1; (await this.collect(proxy, cursors, result)).more; read++) {
        if (read >= DRAIN_MAX_READS) {
          this.options.logger.warn(
            { user: userId, proxy: containerName, reads: read, max_bytes: this.options.maxBytes },
            "egress denials: the removed proxy's log holds more than the drain reads; the rest is lost",
          );
          break;
        }
      }
      return result;
    });
  }

  /** One poll or drain at a time, in call order; a failure does not stop the next. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async pollAll(): Promise<PollResult> {
    const { runtime, installation } = this.options;
    const cursors = await this.loadCursors();
    const proxies = await runtime.listContainers([
      ...ownerFilters(installation),
      `${LABELS.role}=${EGRESS_PROXY_ROLE}`,
    ]);
    const result: PollResult = { proxies: proxies.length, denials: 0, invalid: 0 };
    const listed = new Set(proxies.map((p) => p.id));
    let changed = false;
    for (const id of [...cursors.keys()]) {
      // A removed proxy's log is gone with it: its cursor too.
      if (!listed.has(id)) changed = cursors.delete(id) || changed;
    }
    for (const proxy of proxies) {
      const user = proxy.labels[LABELS.userId];
      if (user === undefined) continue;
      if ((await this.collect({ id: proxy.id, name: proxy.name, user }, cursors, result)).saved)
        changed = false;
    }
    if (changed) await this.saveCursors(cursors);
    return result;
  }

  /**
   * Audits one proxy's lines after its cursor (one read of at most maxBytes) and moves the cursor. `saved`: the cursor
   * file was written; `more`: the read stopped at maxBytes, every line of it was taken, so another read goes on.
   */
  private async collect(
    proxy: { id: string; name: string; user: string },
    cursors: Map<string, ProxyCursor>,
    result: PollResult,
  ): Promise<{ saved: boolean; more: boolean }> {
    const { user } = proxy;
    const cursor = cursors.get(proxy.id);
    const read = await this.options.runtime.readLogs(proxy.id, {
      ...(cursor ? { since: cursor.last } : {}),
      maxBytes: this.options.maxBytes,
    });
    const { fresh } = linesAfter(read.lines, cursor);
    let position = cursor;
    let taken = 0;
    for (const line of fresh) {
      const parsed = parseDenialLine(line.text, user);
      if (parsed.kind === "invalid") {
        result.invalid++;
        this.options.logger.warn(
          { user, proxy: proxy.name, reason: parsed.reason },
          "egress denials: a line of the proxy is not a valid denial line; skipped",
        );
      } else if (parsed.kind === "denial") {
        const d = parsed.line;
        const written = await this.options.audit.write({
          event_type: "ACTION_BLOCKED",
          user_id: d.user,
          action: "egress_denied",
          resource: d.server,
          result: "blocked",
          details: {
            server: d.server,
            kind: d.kind,
            destination: d.destination,
            reason: d.reason,
            count: d.count,
            window_seconds: d.window_seconds,
            window_end: d.time,
            proxy: proxy.name,
          },
        });
        // Not written: stop here; the next poll starts again from this line.
        if (!written) break;
        this.options.metrics.egressDeniedTotal.inc({ kind: d.kind }, d.count);
        result.denials++;
      }
      position = advance(position, [line]);
      taken++;
    }
    const more = read.truncated && taken === fresh.length && taken > 0;
    if (position && (position.last !== cursor?.last || position.taken_at_last !== cursor.taken_at_last)) {
      cursors.set(proxy.id, position);
      await this.saveCursors(cursors);
      return { saved: true, more };
    }
    return { saved: false, more };
  }

  private async loadCursors(): Promise<Map<string, ProxyCursor>> {
    if (this.cursors) return this.cursors;
    const file = path.join(this.options.stateDir, DENIAL_CURSOR_FILE);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      // First start: every proxy's log from its beginning.
      this.cursors = new Map();
      return this.cursors;
    }
    let parsed: ReturnType<typeof DenialCursorFile.safeParse>;
    try {
      parsed = DenialCursorFile.safeParse(JSON.parse(text));
    } catch {
      parsed = DenialCursorFile.safeParse(undefined);
    }
    if (!parsed.success) {
      // Re-reading every proxy's whole log would count windows twice: refuse, and say how to go on.
      throw new Error(
        `${file}: not a valid egress denial cursor (${parsed.error.issues[0]?.message ?? "invalid"}); ` +
          `denials are not read until it is fixed or removed (removing it re-reads the proxies' logs from their start)`,
      );
    }
    this.cursors = new Map(Object.entries(parsed.data.proxies));
    return this.cursors;
  }

  private async saveCursors(cursors: ReadonlyMap<string, ProxyCursor>): Promise<void> {
    const file: DenialCursorFile = { version: 1, proxies: Object.fromEntries(cursors) };
    await writeFileAtomic(path.join(this.options.stateDir, DENIAL_CURSOR_FILE), `${JSON.stringify(file)}\n`, {
      mode: 0o600,
    });
  }
}
