import { signal } from "@preact/signals";
import { SseParser } from "../lib/sse-parser.js";
import { API, ApiFailure } from "./client.js";
import type { PortalEvent } from "./types.js";

/*
 * The live event stream (GET /api/v1/events) read with fetch and a streaming body reader: EventSource cannot send
 * an Authorization header, and the token must never go into a URL. Events are hints: after a reconnect every
 * listener is told to re-read (`onReconnect`), since events may have been missed meanwhile.
 */

export type LiveState = "connecting" | "live" | "reconnecting" | "refused" | "closed";

export const liveState = signal<LiveState>("closed");

type Listener = (event: PortalEvent) => void;

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class LiveEvents {
  private readonly listeners = new Set<Listener>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly abort = new AbortController();
  private retryMs = RETRY_MIN_MS;

  constructor(private readonly token: string) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.abort.abort();
    liveState.value = "closed";
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  private async loop(): Promise<void> {
    let first = true;
    while (!this.abort.signal.aborted) {
      liveState.value = first ? "connecting" : "reconnecting";
      try {
        await this.read(first);
      } catch (error) {
        if (this.abort.signal.aborted) return;
        if (error instanceof ApiFailure && (error.status === 401 || error.status === 403)) {
          liveState.value = "refused";
          return;
        }
      }
      if (this.abort.signal.aborted) return;
      first = false;
      liveState.value = "reconnecting";
      await this.sleep(this.retryMs);
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    }
  }

  private async read(first: boolean): Promise<void> {
    const response = await fetch(`${API}/events`, {
      headers: { authorization: `Bearer ${this.token}`, accept: "text/event-stream" },
      credentials: "omit",
      cache: "no-store",
      signal: this.abort.signal,
    });
    if (!response.ok || response.body === null) {
      throw new ApiFailure(response.status, `HTTP_${response.status}`, response.statusText);
    }
    liveState.value = "live";
    this.retryMs = RETRY_MIN_MS;
    if (!first) for (const listener of this.reconnectListeners) listener();
    const parser = new SseParser();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      for (const message of parser.push(value)) this.dispatch(message.event, message.data);
    }
  }

  private dispatch(event: string, data: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    const message = { event, data: parsed } as PortalEvent;
    for (const listener of this.listeners) listener(message);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.abort.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
