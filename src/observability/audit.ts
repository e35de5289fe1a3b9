import { mkdir, open, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { Logger } from "./logger.js";

/*
 * Append-only audit log: one JSON line per event in <stateDir>/audit.log, rotated by size.
 *
 * Crash safety: every event is one write(2) of one complete line on a descriptor opened with O_APPEND, so a
 * process crash (even kill -9) leaves whole lines; the kernel owns the data once write returns. fsync protects only
 * against a host crash or power loss, and costs milliseconds per call, so it is batched: at most one fsync per
 * `fsyncIntervalMs` (default 1 s, the bounded window of loss on power failure), plus one before rotation and on close.
 * `fsyncIntervalMs: 0` syncs after every event for installations that want that guarantee.
 * Writes go through one promise chain, so lines never interleave and rotation never races a write.
 * A line torn by a host crash (file not ending in "\n") is closed with a "\n" on open, so the next event starts fresh.
 */

export const AUDIT_EVENT_TYPES = [
  "CONTAINER_OPERATION",
  "NETWORK_OPERATION",
  "VOLUME_OPERATION",
  "DESIRED_STATE_CHANGE",
  "SECRET_CHANGE",
  "ACTION_BLOCKED",
  "API_REQUEST",
  "CATALOG_ACCESS",
  /** A tools/call through the gateway (the gateway's own audit log). */
  "TOOL_CALL",
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];
export type AuditResult = "success" | "failure" | "blocked";
export type AuditSeverity = "info" | "warning" | "error" | "critical";

/** One audit line; fields and names follow the original design's AuditEvent, in snake_case. */
export interface AuditEvent {
  timestamp: string;
  event_type: AuditEventType;
  /** The user the event concerns; null for installation-wide events. */
  user_id: string | null;
  action: string;
  resource: string;
  result: AuditResult;
  details: Record<string, unknown>;
  severity: AuditSeverity;
  ip_address?: string;
  user_agent?: string;
  session_id?: string;
}

/** What callers pass: timestamp defaults to now, severity is derived from the result, details are redacted. */
export type AuditEventInput = Omit<AuditEvent, "timestamp" | "severity" | "details"> & {
  details?: Record<string, unknown>;
  severity?: AuditSeverity;
  timestamp?: Date;
};

/** The narrow interface the rest of the controller depends on; tests pass a fake. */
export interface AuditWriter {
  /** Never rejects: resolves true once the line is written, false when the write failed (counted and logged). */
  write(event: AuditEventInput): Promise<boolean>;
}

export const AUDIT_FILE_NAME = "audit.log";
export const DEFAULT_AUDIT_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_AUDIT_KEEP = 5;
export const DEFAULT_AUDIT_FSYNC_INTERVAL_MS = 1000;

export interface AuditLogOptions {
  stateDir: string;
  /** Rotate before a write would make audit.log larger than this (MCP_PORTAL_AUDIT_MAX_BYTES). */
  maxBytes?: number;
  /** Rotated files kept: audit.log.1 (newest) .. audit.log.<keep>. */
  keep?: number;
  /** 0: fsync after every event; otherwise at most one fsync per interval. */
  fsyncIntervalMs?: number;
  logger?: Logger;
  /** Called once per event that could not be written (wire to mcp_portal_audit_write_errors_total). */
  onWriteError?: (error: unknown) => void;
  now?: () => Date;
}

const auditMaxBytesSchema = z.coerce.number().int().min(1024).default(DEFAULT_AUDIT_MAX_BYTES);

/** Reads MCP_PORTAL_AUDIT_MAX_BYTES (integer, at least 1024; default 10 MiB). Throws on an invalid value. */
export function parseAuditMaxBytes(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env.MCP_PORTAL_AUDIT_MAX_BYTES;
  const parsed = auditMaxBytesSchema.safeParse(raw === undefined || raw.trim() === "" ? undefined : raw);
  if (!parsed.success) {
    throw new Error(`MCP_PORTAL_AUDIT_MAX_BYTES: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

const SENSITIVE_KEY =
  /value|secret|token|password|passwd|credential|api[-_]?key|private[-_]?key|authorization|cookie/i;
const ENV_KEY = /^(env|environment)$/i;
/** Keys that name or fingerprint a secret rather than hold it ("secret_name", "token_digest") are kept. */
const SAFE_KEY = /(^|[-_])(name|names|digest|digests|id|ids|count|key_id)$/i;
const MAX_DEPTH = 8;

/** Drops keys that may hold secrets (value, secret, token, password, env, ...) from details, at any depth. */
export function redactDetails(details: Record<string, unknown>): Record<string, unknown> {
  return redactObject(details, 0, new WeakSet());
}

function redactObject(input: object, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  seen.add(input);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if (ENV_KEY.test(key) || (SENSITIVE_KEY.test(key) && !SAFE_KEY.test(key))) continue;
    out[key] = redactValue(value, depth + 1, seen);
  }
  return out;
}

function redactValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value === null || typeof value !== "object") return value;
  if (seen.has(value)) return "[Circular]";
  if (depth >= MAX_DEPTH) return "[Truncated]";
  if (Array.isArray(value)) {
    seen.add(value);
    return value.map((item) => redactValue(item, depth + 1, seen));
  }
  if (value instanceof Date) return value.toISOString();
  return redactObject(value, depth, seen);
}

export function defaultSeverity(result: AuditResult): AuditSeverity {
  if (result === "failure") return "error";
  if (result === "blocked") return "warning";
  return "info";
}

export class AuditLog implements AuditWriter {
  readonly file: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private readonly fsyncIntervalMs: number;
  private readonly now: () => Date;
  private handle: FileHandle | undefined;
  private size = 0;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: AuditLogOptions) {
    this.file = join(options.stateDir, AUDIT_FILE_NAME);
    this.maxBytes = options.maxBytes ?? DEFAULT_AUDIT_MAX_BYTES;
    this.keep = Math.max(1, options.keep ?? DEFAULT_AUDIT_KEEP);
    this.fsyncIntervalMs = options.fsyncIntervalMs ?? DEFAULT_AUDIT_FSYNC_INTERVAL_MS;
    this.now = options.now ?? (() => new Date());
  }

  write(input: AuditEventInput): Promise<boolean> {
    if (this.closed) return Promise.resolve(this.fail(new Error("audit log is closed")));
    let line: string;
    try {
      line = `${JSON.stringify(this.toEvent(input))}\n`;
    } catch (error) {
      return Promise.resolve(this.fail(error));
    }
    return this.enqueue(async () => {
      try {
        await this.append(Buffer.from(line, "utf8"));
        return true;
      } catch (error) {
        await this.discardHandle();
        return this.fail(error);
      }
    });
  }

  /** Resolves once every event written so far is on disk (fsynced). */
  flush(): Promise<void> {
    return this.enqueue(() => this.sync());
  }

  /** Flushes and closes the file; never rejects (a failed fsync is logged). Later writes fail and are counted. */
  close(): Promise<void> {
    this.closed = true;
    return this.enqueue(async () => {
      await this.sync().catch((error: unknown) => this.logError(error, "audit log fsync failed"));
      await this.discardHandle();
    });
  }

  private toEvent(input: AuditEventInput): AuditEvent {
    const event: AuditEvent = {
      timestamp: (input.timestamp ?? this.now()).toISOString(),
      event_type: input.event_type,
      user_id: input.user_id,
      action: input.action,
      resource: input.resource,
      result: input.result,
      details: redactDetails(input.details ?? {}),
      severity: input.severity ?? defaultSeverity(input.result),
    };
    if (input.ip_address !== undefined) event.ip_address = input.ip_address;
    if (input.user_agent !== undefined) event.user_agent = input.user_agent;
    if (input.session_id !== undefined) event.session_id = input.session_id;
    return event;
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const next = this.chain.then(task);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async append(line: Buffer): Promise<void> {
    let handle = await this.ensureOpen();
    if (this.size > 0 && this.size + line.length > this.maxBytes) {
      await this.rotate();
      handle = await this.ensureOpen();
    }
    let offset = 0;
    // One write call per line; the loop only continues a short write (e.g. a nearly full disk).
    while (offset < line.length) {
      const { bytesWritten } = await handle.write(line, offset, line.length - offset);
      if (bytesWritten <= 0) throw new Error("audit log: write made no progress");
      offset += bytesWritten;
      this.size += bytesWritten;
    }
    this.dirty = true;
    if (this.fsyncIntervalMs <= 0) await this.sync();
    else this.scheduleSync();
  }

  private async ensureOpen(): Promise<FileHandle> {
    if (this.handle !== undefined) return this.handle;
    await mkdir(this.options.stateDir, { recursive: true, mode: 0o700 });
    const handle = await open(this.file, "a+", 0o600);
    try {
      const { size } = await handle.stat();
      this.size = size;
      if (size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) {
          // A torn last line (crash mid-write on a host crash, or a failed write): close it so the next event
          // starts on its own line; the torn line stays as evidence and readers skip it as unparsable.
          await handle.write("\n");
          this.size += 1;
        }
      }
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    this.handle = handle;
    return handle;
  }

  private async rotate(): Promise<void> {
    await this.sync();
    await this.discardHandle();
    await rm(`${this.file}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) {
      await rename(`${this.file}.${i}`, `${this.file}.${i + 1}`).catch(ignoreMissing);
    }
    await rename(this.file, `${this.file}.1`).catch(ignoreMissing);
    this.size = 0;
  }

  private scheduleSync(): void {
    if (this.syncTimer !== undefined) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void this.enqueue(() => this.sync()).catch((error: unknown) =>
        this.logError(error, "audit log fsync failed"),
      );
    }, this.fsyncIntervalMs);
    // A pending fsync must not keep the process alive; close() syncs on shutdown.
    this.syncTimer.unref();
  }

  private async sync(): Promise<void> {
    if (this.syncTimer !== undefined) {
      clearTimeout(this.syncTimer);
      this.syncTimer = undefined;
    }
    if (this.handle === undefined || !this.dirty) return;
    this.dirty = false;
    await this.handle.sync();
  }

  /** Drops the descriptor after an error (or on close); the next write reopens and re-checks the file's tail. */
  private async discardHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    this.dirty = false;
    await handle?.close().catch(() => undefined);
  }

  private fail(error: unknown): false {
    this.logError(error, "audit event not written");
    try {
      this.options.onWriteError?.(error);
    } catch {
      // A failing hook must not turn a lost audit line into a crash.
    }
    return false;
  }

  private logError(error: unknown, message: string): void {
    this.options.logger?.error({ err: error, file: this.file }, message);
  }
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
}
