import type { ToolAccess, ToolCallOutcome, ToolCallRecord } from "./handler.js";
import {
  type Classified,
  ERROR_CODES,
  type JsonRpcResponse,
  classify,
  errorResponse,
  idKey,
} from "./jsonrpc.js";
import { calledTool } from "./tool-policy.js";
import { filterToolsResponse, messageBytes, outcomeOf, screenToolCall } from "./tool-calls.js";

/*
 * The tool traffic of one HTTP server (streamable-http or sse) as the proxy sees it: request bodies are screened
 * before they are forwarded (a tools/call of a hidden tool refuses the body), and the answers to tools/list and
 * tools/call requests are looked for in the server's responses, on whichever stream of the session they come
 * (the POST's own answer; a session's GET stream for the sse transport, or a resumed stream). Only what the policy
 * and the audit need is tracked, per session and request id, bounded in number and time.
 */

export type ScreenResult =
  { kind: "refuse"; status: number; body: unknown } | { kind: "forward"; body: Buffer; watch: Watch };

/** What one forwarded body asked that its answers are checked for. */
export interface Watch {
  readonly session: string;
  readonly lists: ReadonlySet<string>;
  readonly calls: ReadonlySet<string>;
  /** Nothing to look for in the answers. */
  readonly empty: boolean;
}

interface PendingList {
  access: ToolAccess | undefined;
  expiresAt: number;
}

interface PendingCall {
  record: ToolCallRecord;
  expiresAt: number;
}

interface SessionPending {
  lists: Map<string, PendingList>;
  calls: Map<string, PendingCall>;
}

export interface ToolTrafficOptions {
  now: () => number;
  /** How long an answer may take before its request is forgotten (the proxy's response timeout). */
  ttlMs: number;
  /** Requests tracked at once, all sessions (beyond it new tools/list and tools/call requests are refused). */
  maxPending: number;
}

export class ToolTraffic {
  private readonly sessions = new Map<string, SessionPending>();
  private pending = 0;

  constructor(private readonly options: ToolTrafficOptions) {}

  get pendingCount(): number {
    return this.pending;
  }

  /**
   * A request body (already read): refused when it is not JSON-RPC the gateway can read, or when it calls a tool
   * the policy hides (a batch is refused whole: its other messages get an error naming why); else the body to
   * forward, written again from what the gateway parsed, so the server reads exactly what was checked.
   */
  screen(raw: Buffer, session: string, access: ToolAccess | undefined): ScreenResult {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString("utf8"));
    } catch {
      return {
        kind: "refuse",
        status: 400,
        body: errorResponse(null, ERROR_CODES.parseError, "parse error: the body is not JSON"),
      };
    }
    const batch = Array.isArray(parsed);
    const values: unknown[] = batch ? (parsed as unknown[]) : [parsed];
    const messages = values.map(classify);
    if (values.length === 0 || messages.some((m) => m === undefined)) {
      return {
        kind: "refuse",
        status: 400,
        body: errorResponse(null, ERROR_CODES.invalidRequest, "invalid request: not a JSON-RPC 2.0 message"),
      };
    }
    const requests = (messages as Classified[]).flatMap((m) => (m.kind === "request" ? [m.message] : []));
    const refusals = new Map<string, JsonRpcResponse>();
    for (const request of requests) {
      const refused = screenToolCall(request, access);
      if (refused) refusals.set(idKey(request.id), refused);
    }
    const tracked = requests.filter(
      (r) => (r.method === "tools/call" && access) || (r.method === "tools/list" && access?.restricted),
    );
    this.sweep();
    const overLimit = this.pending + tracked.length > this.options.maxPending;
    if (refusals.size > 0 || (tracked.length > 0 && overLimit)) {
      const limit = `too many tool requests in flight to this server (limit ${this.options.maxPending})`;
      const errors = requests.map(
        (r) =>
          refusals.get(idKey(r.id)) ??
          (refusals.size > 0
            ? errorResponse(
                r.id,
                ERROR_CODES.invalidRequest,
                "batch refused: it calls a tool the tool policy hides",
              )
            : errorResponse(r.id, ERROR_CODES.limitExceeded, limit)),
      );
      // Every tools/call of a refused body is recorded: none of them reached the server.
      for (const [i, request] of requests.entries()) {
        if (request.method !== "tools/call" || access === undefined) continue;
        const record = access.begin(calledTool(request.params), messageBytes(request));
        record.finish(refusals.size > 0 ? "refused" : "limit_exceeded", messageBytes(errors[i]));
      }
      return { kind: "refuse", status: 200, body: batch ? errors : errors[0] };
    }
    const lists = new Set<string>();
    const calls = new Set<string>();
    const expiresAt = this.options.now() + this.options.ttlMs;
    for (const request of tracked) {
      const key = idKey(request.id);
      const pending = this.sessionPending(session);
      if (request.method === "tools/list") {
        if (!pending.lists.has(key)) this.pending += 1;
        pending.lists.set(key, { access, expiresAt });
        lists.add(key);
      } else if (access !== undefined) {
        // A client reusing the id of a call still in flight: the earlier one's answer can no longer be told apart.
        pending.calls.get(key)?.record.finish("no_response", 0);
        if (!pending.calls.has(key)) this.pending += 1;
        pending.calls.set(key, {
          record: access.begin(calledTool(request.params), messageBytes(request)),
          expiresAt,
        });
        calls.add(key);
      }
    }
    return {
      kind: "forward",
      body: Buffer.from(JSON.stringify(parsed), "utf8"),
      watch: { session, lists, calls, empty: lists.size === 0 && calls.size === 0 },
    };
  }

  /** Whether an event of this session's streams must be held (a tools/list answer may be in it). */
  holds(session: string): boolean {
    return (this.sessions.get(session)?.lists.size ?? 0) > 0;
  }

  /** Whether an event of this session's streams is worth a look (a tools/call answer may be in it). */
  observes(session: string): boolean {
    return (this.sessions.get(session)?.calls.size ?? 0) > 0;
  }

  /**
   * A message the server sent on one of the session's streams (JSON, a single message or a batch): answers to
   * tracked tools/list requests come back filtered, answers to tracked tools/call requests end their records.
   * Returns the JSON to relay, or undefined when it is unchanged.
   */
  answer(session: string, json: string): string | undefined {
    const pending = this.sessions.get(session);
    if (!pending) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      return undefined;
    }
    const batch = Array.isArray(value);
    const values: unknown[] = batch ? (value as unknown[]) : [value];
    let changed = false;
    const out = values.map((item) => {
      const classified = classify(item);
      if (classified?.kind !== "response" || classified.message.id === null) return item;
      const response: JsonRpcResponse = classified.message;
      const key = idKey(response.id as string | number);
      const list = pending.lists.get(key);
      if (list) {
        pending.lists.delete(key);
        this.pending -= 1;
        const filtered = filterToolsResponse(response, list.access);
        if (filtered !== response) changed = true;
        return filtered;
      }
      const call = pending.calls.get(key);
      if (call) {
        pending.calls.delete(key);
        this.pending -= 1;
        call.record.finish(outcomeOf(response), messageBytes(response));
      }
      return item;
    });
    this.dropIfEmpty(session);
    return changed ? JSON.stringify(batch ? out : out[0]) : undefined;
  }

  /**
   * A POST's own answer ended. Its unanswered tools/call requests end with `outcome` when `final` (the transport
   * answers on the POST, or the request failed); its unanswered tools/list requests stay tracked until they expire,
   * so a resumed stream cannot bring the unfiltered list.
   */
  postEnded(watch: Watch, outcome: ToolCallOutcome = "no_response", final = true): void {
    if (!final || watch.calls.size === 0) return;
    const pending = this.sessions.get(watch.session);
    if (!pending) return;
    for (const key of watch.calls) {
      const call = pending.calls.get(key);
      if (!call) continue;
      pending.calls.delete(key);
      this.pending -= 1;
      call.record.finish(outcome, 0);
    }
    this.dropIfEmpty(watch.session);
  }

  /** Forgets requests whose answers are overdue (their calls end as `no_response`). */
  sweep(): void {
    const now = this.options.now();
    for (const [session, pending] of this.sessions) {
      for (const [key, list] of pending.lists) {
        if (list.expiresAt > now) continue;
        pending.lists.delete(key);
        this.pending -= 1;
      }
      for (const [key, call] of pending.calls) {
        if (call.expiresAt > now) continue;
        pending.calls.delete(key);
        this.pending -= 1;
        call.record.finish("no_response", 0);
      }
      this.dropIfEmpty(session);
    }
  }

  /** The server is no longer served: open calls end as `no_response`. */
  close(): void {
    for (const pending of this.sessions.values())
      for (const call of pending.calls.values()) call.record.finish("no_response", 0);
    this.sessions.clear();
    this.pending = 0;
  }

  private sessionPending(session: string): SessionPending {
    let pending = this.sessions.get(session);
    if (!pending) {
      pending = { lists: new Map(), calls: new Map() };
      this.sessions.set(session, pending);
    }
    return pending;
  }

  private dropIfEmpty(session: string): void {
    const pending = this.sessions.get(session);
    if (pending && pending.lists.size === 0 && pending.calls.size === 0) this.sessions.delete(session);
  }
}
