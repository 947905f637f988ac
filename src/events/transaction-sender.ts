/**
 * The one durable transaction sender: what bridge pushers (src/modules/bridges/bridges.pusher.ts) and
 * federation peers' outbound queues (src/modules/federation/) share. A `Follower` that, per
 * destination, keeps a persisted cursor and at most one pending transaction:
 *
 * 1. with none pending, `collect(cursor)` reads what follows the cursor; nothing for the destination
 *    just advances the cursor, else the transaction is written whole (`open`) before it is sent;
 * 2. the pending transaction is sent (`deliver`) as it is until the destination accepts it, retried
 *    on the shared backoff (exponential with jitter, src/lib/backoff.ts), across restarts too;
 * 3. only then does the cursor move past it (`close`).
 *
 * So items reach the destination in order, at least once, and a retried transaction never gains or
 * loses items; the destination dedupes by txn_id.
 *
 * A sender given `refusedForGood` (federation; bridge pushers are not) does not retry a transaction
 * the destination refused for good (e.g. 403): it hands it to `store.refused`, which drops it (a
 * dead letter) or gives it up for smaller ones, and goes on with the queue.
 */
import type { Logger } from 'pino';
import type { BackoffOptions } from '../lib/backoff.js';
import { Follower } from './follower.js';

export interface SenderState<B> {
  /** The cursor: everything up to it was delivered or concerned no one. */
  last_position: number;
  txn_seq: number;
  pending_txn_id: string | null;
  pending_body: B | null;
}

/** Where a sender keeps its cursor and pending transaction, and where it reads from. */
export interface TransactionStore<B> {
  state(): Promise<SenderState<B>>;
  /** What follows `after`: a body for the destination (null: nothing for it), the last position read, and whether more may follow at once. */
  collect(after: number): Promise<{ body: B | null; upto: number; more: boolean }>;
  /** Persists transaction `txnId` (the `txnSeq`-th, opened when the sequence was `txnSeq - 1`) covering up to `upto`. */
  open(prevSeq: number, txnId: string, upto: number, body: B): Promise<void>;
  /** Moves the cursor to `upto` (nothing pending). */
  advance(upto: number): Promise<void>;
  /** The destination accepted `txnId`: moves the cursor past it and clears it. */
  close(txnId: string): Promise<void>;
  /**
   * The destination refused `txnId` for good (only with `refusedForGood`): the store clears it,
   * moving the cursor past it (a dead letter) or not (its items go again, in other transactions).
   */
  refused?(txnId: string, body: B, err: unknown): Promise<void>;
}

export class TransactionSender<B> {
  private readonly follower: Follower;
  private lastSuccessMs: number | null = null;

  constructor(
    private readonly opts: {
      name: string;
      log: Logger;
      retry: BackoffOptions;
      store: TransactionStore<B>;
      /** Sends one transaction. @throws unless the destination accepted it. */
      deliver: (txnId: string, body: B) => Promise<void>;
      /** Whether `deliver`'s error says the destination will never accept that transaction (then `store.refused` takes it). */
      refusedForGood?: (err: unknown) => boolean;
    },
  ) {
    this.follower = new Follower({ name: opts.name, log: opts.log, step: () => this.step(), retry: opts.retry });
  }

  wake(): void {
    this.follower.wake();
  }

  /** The destination is back (it called in): retry at once with the backoff reset. */
  retryNow(): void {
    this.follower.retryNow();
  }

  stop(): Promise<void> {
    return this.follower.stop();
  }

  get isStopped(): boolean {
    return this.follower.isStopped;
  }

  /** `failures`: failed attempts in a row; `retry_at_ms`: when the next is due (ms since the epoch) or null; `last_success_ms`: this process's last accepted transaction. */
  status(): { failures: number; retry_at_ms: number | null; last_success_ms: number | null } {
    return { failures: this.follower.failedAttempts, retry_at_ms: this.follower.retryAtMs, last_success_ms: this.lastSuccessMs };
  }

  /** One unit of work. @returns true when there may be more to do right away. @throws when delivery failed. */
  private async step(): Promise<boolean> {
    const { store } = this.opts;
    let state = await store.state();
    if (!state.pending_txn_id) {
      const { body, upto, more } = await store.collect(state.last_position);
      if (!body) {
        if (upto !== state.last_position) await store.advance(upto);
        return more;
      }
      await store.open(state.txn_seq, String(state.txn_seq + 1), upto, body);
      state = await store.state();
      if (!state.pending_txn_id) return true; // another node opened and closed it first
    }
    try {
      await this.opts.deliver(state.pending_txn_id, state.pending_body!);
    } catch (err) {
      if (!store.refused || !this.opts.refusedForGood?.(err)) throw err;
      this.opts.log.warn({ err, txn_id: state.pending_txn_id }, `${this.opts.name}: transaction refused for good; not retried`);
      await store.refused(state.pending_txn_id, state.pending_body!, err);
      return true;
    }
    await store.close(state.pending_txn_id);
    this.lastSuccessMs = Date.now();
    return true;
  }
}
