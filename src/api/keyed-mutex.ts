/**
 * Runs tasks one at a time per key (a user id, or "catalogs/base"), in arrival order; different keys run
 * concurrently. The API's read-modify-write of one user's files happens under that user's key, so concurrent
 * requests never lose an update.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    // Tails never reject, so the task runs once the previous one has settled, whatever its outcome.
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with a task queued or running (tests). */
  get size(): number {
    return this.tails.size;
  }
}
