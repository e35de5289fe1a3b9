import { stat, rm } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import type { WakeRefusal } from "../contracts/idle-state.js";
import { WAKE_REQUEST_VERSION, type WakeRequest, wakeRequestPath } from "../contracts/wake-request.js";
import type { Logger } from "../observability/logger.js";
import { writeJsonAtomic } from "../util/atomic-write.js";
import type { Clock } from "../util/clock.js";
import type { IdleView } from "./idle-view.js";
import type { WakeMetrics, WakeResult } from "./wake-metrics.js";

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

export type WakeOutcome =
  { ok: true } | { ok: false; result: Exclude<WakeResult, "success">; message: string };

/** How a wake learns that the server is back: from its endpoint. */
export interface WakeWait {
  /** Resolves true once the container runs (false after `timeoutMs`). */
  running(timeoutMs: number): Promise<boolean>;
  /**
   * Resolves true once the server is ready for requests; false after `timeoutMs`, or before it when the container
   * stopped again (a crash on start).
   */
  ready?(timeoutMs: number): Promise<boolean>;
}

export interface WakerDeps {
  stateDir: string;
  clock: Clock;
  logger: Logger;
  view: IdleView;
  metrics: WakeMetrics;
  /** MCP_PORTAL_GATEWAY_WAKE_TIMEOUT_SECONDS, in ms. */
  timeoutMs: number;
  /** While waiting, a wake request the controller took is written again this often (default 2 s). */
  retryMs?: number;
}

/**
 * Asks the controller to wake an idle server and waits, bounded, until it is served again. Requests that reach
 * the same idle server meanwhile share one wake (one request file, one start). The request is a file the
 * controller acts on (src/contracts/wake-request.ts); while the server is not back, a request the controller
 * already consumed is written again every `retryMs`, so a controller that restarted or lost it still sees one.
 */
export class Waker {
  private readonly inflight = new Map<string, Promise<WakeOutcome>>();

  constructor(private readonly deps: WakerDeps) {}

  wake(userId: string, serverId: string, wait: WakeWait): Promise<WakeOutcome> {
    const key = `${userId}/${serverId}`;
    let wake = this.inflight.get(key);
    if (!wake) {
      wake = this.run(userId, serverId, wait).finally(() => this.inflight.delete(key));
      this.inflight.set(key, wake);
    }
    return wake;
  }

  private async run(userId: string, serverId: string, wait: WakeWait): Promise<WakeOutcome> {
    const { clock, metrics, logger, timeoutMs } = this.deps;
    const started = performance.now();
    const requestedAt = clock.now();
    const deadline = requestedAt + timeoutMs;
    const file = wakeRequestPath(this.deps.stateDir, userId, serverId);
    const request: WakeRequest = {
      version: WAKE_REQUEST_VERSION,
      user_id: userId,
      server_id: serverId,
      requested_at: new Date(requestedAt).toISOString(),
    };
    const finish = (outcome: WakeOutcome): WakeOutcome => {
      metrics.wakesTotal.inc({ result: outcome.ok ? "success" : outcome.result });
      const seconds = (performance.now() - started) / 1000;
      if (outcome.ok) metrics.wakeDurationSeconds.observe(seconds);
      logger[outcome.ok ? "info" : "warn"](
        {
          user_id: userId,
          server_id: serverId,
          duration_ms: Math.round(seconds * 1000),
          ...(outcome.ok ? {} : { result: outcome.result, reason: outcome.message }),
        },
        outcome.ok ? "idle server woken" : "idle server not woken",
      );
      return outcome;
    };
    try {
      await writeJsonAtomic(file, request);
    } catch (error) {
      logger.error({ err: String(error) }, "cannot write a wake request");
      return finish({
        ok: false,
        result: "error",
        message: "the gateway could not ask the controller to wake it",
      });
    }
    const refusal = (): WakeRefusal | undefined => {
      const refused = this.deps.view.get(userId, serverId)?.wake_refused;
      return refused && Date.parse(refused.at) >= requestedAt ? refused : undefined;
    };
    const retryMs = this.deps.retryMs ?? 2000;
    for (;;) {
      const refused = refusal();
      if (refused)
        return finish({ ok: false, result: "refused", message: `${refused.reason}: ${refused.message}` });
      const remaining = deadline - clock.now();
      if (remaining <= 0) break;
      let unsubscribe: () => void = () => undefined;
      const viewChanged = new Promise<false>((resolve) => {
        unsubscribe = this.deps.view.onChange(() => resolve(false));
      });
      const running = await Promise.race([wait.running(Math.min(remaining, retryMs)), viewChanged]);
      unsubscribe();
      // Back only once the controller no longer lists it as idle: while it stops a server for idleness the
      // container still runs (and idle.json already lists it); the controller clears the entry before it starts
      // the server again.
      let back = running;
      if (back && this.deps.view.isIdle(userId, serverId)) {
        await this.deps.view.refresh();
        back = !this.deps.view.isIdle(userId, serverId);
        if (!back) await sleep(clock, Math.min(this.deps.view.pollMs, Math.max(0, deadline - clock.now())));
      }
      if (back) {
        const ready = wait.ready ? await wait.ready(Math.max(0, deadline - clock.now())) : true;
        if (ready) return finish({ ok: true });
        if (clock.now() < deadline) {
          // It stopped again right after its start: no use waiting for the bound (the controller backs off).
          await rm(file, { force: true }).catch(() => undefined);
          return finish({
            ok: false,
            result: "error",
            message: "it stopped again right after its start (see the server's status)",
          });
        }
        break;
      }
      // Taken by the controller, yet not back: ask again (a restarted controller acts on it; one that already
      // woke the server just removes it).
      if (!(await stat(file).catch(() => undefined)) && clock.now() < deadline)
        await writeJsonAtomic(file, request).catch(() => undefined);
    }
    // Stop asking: a request left behind would wake the server later for nobody.
    await rm(file, { force: true }).catch(() => undefined);
    return finish({
      ok: false,
      result: "timeout",
      message: `not back within ${Math.round(timeoutMs / 1000)} s (see the server's status)`,
    });
  }
}
