import type { ContainerRuntime } from "../docker/runtime.js";
import { backoffDelay } from "../util/backoff.js";
import { type Clock, systemClock } from "../util/clock.js";

export class ImagePullBackOffError extends Error {
  readonly code = "ImagePullBackOff";
  constructor(
    readonly image: string,
    readonly retryInMs: number,
    readonly pullError: string,
  ) {
    super(`image ${image} could not be pulled (${pullError}); next try in ${Math.ceil(retryInMs / 1000)} s`);
  }
}

/** Pulls images that are absent, at most one pull per image at a time, with per-image backoff on failure. */
export class ImagePuller {
  private readonly failures = new Map<string, { count: number; nextAt: number; cause: string }>();
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly clock: Clock = systemClock,
    private readonly policy = { baseMs: 10_000, maxMs: 5 * 60_000 },
  ) {}

  /** `runtime` is the caller's (audited) view of the engine, so a pull is attributed to who needed it. */
  async ensure(image: string, runtime: ContainerRuntime): Promise<{ pulled: boolean }> {
    if (await runtime.imageExists(image)) {
      this.failures.delete(image);
      return { pulled: false };
    }
    const failure = this.failures.get(image);
    const now = this.clock.now();
    if (failure && now < failure.nextAt)
      throw new ImagePullBackOffError(image, failure.nextAt - now, failure.cause);
    let pull = this.inFlight.get(image);
    if (!pull) {
      pull = runtime.pullImage(image).finally(() => this.inFlight.delete(image));
      this.inFlight.set(image, pull);
    }
    try {
      await pull;
      this.failures.delete(image);
      return { pulled: true };
    } catch (error) {
      const count = (this.failures.get(image)?.count ?? 0) + 1;
      const delay = backoffDelay(count, this.policy);
      const cause = error instanceof Error ? error.message : String(error);
      this.failures.set(image, { count, nextAt: this.clock.now() + delay, cause });
      throw new ImagePullBackOffError(image, delay, cause);
    }
  }
}
