/**
 * A follower of the room event log: a reader with a cursor of its own that acts on what follows it.
 * This node's stream reader, the Meilisearch indexer and each bridge's transaction pusher are
 * followers (and, through `TransactionSender`, each federation peer's outbound queue). What they share lives here: one run at
 * a time, a wake during a run asks for one more (CoalescingRunner), a failed run is retried on the
 * shared backoff schedule (src/lib/backoff.ts), and a wake while a retry is pending waits for it.
 * Each reads the log with `EventStream.readAfter` (or `eventsRepository.readAfter`).
 */
import type { Logger } from 'pino';
import { backoffDelay, type BackoffOptions } from '../lib/backoff.js';
import { CoalescingRunner } from './coalescing-runner.js';

export interface FollowerOptions {
  /** Named in the logs. */
  name: string;
  log: Logger;
  /**
   * One unit of work (read a batch past the cursor, act on it, advance the cursor).
   * @returns true when more may be waiting right away. Throw to be retried after a backoff.
   */
  step: () => Promise<boolean>;
  retry: BackoffOptions;
  /** Called when a step failed, with the delay before the retry (ms). */
  onFailure?: (err: unknown, retryInMs: number) => void;
}

export class Follower {
  private readonly runner = new CoalescingRunner(() => this.run());
  private failures = 0;
  private retryTimer?: NodeJS.Timeout;
  private retryDueMs = 0;
  private stopped = false;

  constructor(private readonly opts: FollowerOptions) {}

  /** Asks for a run now (or after the run in progress); ignored while a retry is pending or after stop. */
  wake(): void {
    if (this.stopped || this.retryTimer) return;
    this.runner.wake();
  }

  /** Stops waking, cancels a pending retry, and resolves once the run in progress (if any) ends. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.runner.idle();
  }

  /**
   * Cancels a pending retry and runs now with the backoff reset (a peer that called in is up again).
   * No effect when no retry is pending.
   */
  retryNow(): void {
    if (this.stopped || !this.retryTimer) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.failures = 0;
    this.runner.wake();
  }

  /** Failed runs since the last success (0 when healthy). */
  get failedAttempts(): number {
    return this.failures;
  }

  /** When the pending retry is due (ms since the epoch), or null when none is pending. */
  get retryAtMs(): number | null {
    return this.retryTimer ? this.retryDueMs : null;
  }

  /** True while a run is in progress. */
  get busy(): boolean {
    return this.runner.running;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Resolves once no run is in progress. */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  private async run(): Promise<void> {
    if (this.stopped || this.retryTimer) return; // a wake asked for during a failed run waits for the retry
    try {
      while (!this.stopped && (await this.opts.step()));
      this.failures = 0;
    } catch (err) {
      if (this.stopped) return;
      const delay = backoffDelay(++this.failures, this.opts.retry);
      this.opts.log.warn({ err, follower: this.opts.name, attempt: this.failures, retry_in_ms: delay }, 'follower step failed; retrying');
      this.retryDueMs = Date.now() + delay;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.wake();
      }, delay);
      this.retryTimer.unref();
      this.opts.onFailure?.(err, delay);
    }
  }
}
