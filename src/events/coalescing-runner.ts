/**
 * Runs an async job one run at a time, woken by events: a wake during a run makes the job run once
 * more right after it, so no wake is lost and wakes never pile up. The stream followers (the stream
 * reader, the search indexer, the bridge transaction pushers) are driven by it instead of polling.
 * The job handles its own errors (it must not throw).
 */
export class CoalescingRunner {
  private current?: Promise<void>;
  private again = false;

  constructor(private readonly job: () => Promise<void>) {}

  /** Starts a run now, or asks for one more after the run in progress. */
  wake(): void {
    if (this.current) {
      this.again = true;
      return;
    }
    this.current = this.loop();
  }

  /** True while a run is in progress. */
  get running(): boolean {
    return this.current !== undefined;
  }

  /** Resolves once no run is in progress. */
  idle(): Promise<void> {
    return this.current ?? Promise.resolve();
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.job();
      } while (this.again);
    } finally {
      // Same synchronous step as the last `again` check: a later wake starts a new run.
      this.current = undefined;
    }
  }
}
