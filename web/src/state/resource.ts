import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { PortalEvent } from "../api/types.js";
import { signed } from "./session.js";

export interface Resource<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Loads data when `key` changes and on `reload()`; an answer for an older key or request is dropped. */
export function useResource<T>(key: string, load: (signal: AbortSignal) => Promise<T>): Resource<T> {
  const [state, setState] = useState<{ key: string; data?: T; error: unknown; loading: boolean }>({
    key,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const abort = new AbortController();
    setState((previous) => ({
      ...previous,
      key,
      loading: true,
      ...(previous.key !== key ? { data: undefined } : {}),
    }));
    loadRef.current(abort.signal).then(
      (data) => !abort.signal.aborted && setState({ key, data, error: null, loading: false }),
      (error: unknown) =>
        !abort.signal.aborted && setState((previous) => ({ ...previous, key, error, loading: false })),
    );
    return () => abort.abort();
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return {
    data: state.key === key ? state.data : undefined,
    error: state.error,
    loading: state.loading,
    reload,
  };
}

/** Live refresh: calls `onChange` (debounced) for events about `userId` (any user when null), and after reconnects. */
export function useLiveRefresh(userId: string | null, onChange: () => void, delayMs = 250): void {
  const callback = useRef(onChange);
  callback.current = onChange;
  const live = signed.value?.live;
  useEffect(() => {
    if (live === undefined) return undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const schedule = () => {
      clearTimeout(timer);
      timer = setTimeout(() => callback.current(), delayMs);
    };
    const offEvent = live.subscribe((event: PortalEvent) => {
      if (userId === null || event.data.user_id === userId) schedule();
    });
    const offReconnect = live.onReconnect(schedule);
    return () => {
      clearTimeout(timer);
      offEvent();
      offReconnect();
    };
  }, [live, userId, delayMs]);
}

/**
 * Re-reads every `intervalMs` while the page is visible and `enabled`: for what events do not announce (a
 * container the controller restarted keeps its status, so no event says its restart count or start time changed).
 */
export function usePolling(reload: () => void, intervalMs: number, enabled = true): void {
  const callback = useRef(reload);
  callback.current = reload;
  useEffect(() => {
    if (!enabled) return undefined;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") callback.current();
    }, intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, enabled]);
}
