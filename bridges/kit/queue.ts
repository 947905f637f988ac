/**
 * A durable work queue with per-lane ordering (a lane is one portal and direction): items of a lane
 * are handled one at a time in the order they were queued; lanes run concurrently.
 *
 * - Durable: an item is in the store (`q:<seq>`) before `enqueue` resolves, and leaves it only when
 *   handled (then its key is remembered as `seen:<key>`), so a crash at any point re-runs it.
 * - Deduped: an item whose key is queued or seen is dropped (webhook redeliveries, retried
 *   transactions).
 * - Retried: a failure marked `transient` is retried with exponential backoff (`backoffDelay`: 250 ms
 *   doubling up to `retryMaxMs`, ±20 % jitter). Hub failures (`HubError`) are retried without limit, since the hub
 *   coming back is only a matter of time; remote failures (`RemoteError`) up to `maxAttempts` tries.
 * - Dead-lettered: a permanent failure or the last try moves the item to `dead:<seq>`; `onDead` may
 *   queue follow-up items (a notice in the room) in the same atomic write.
 */
import type { Logger } from 'pino';
import { backoffDelay } from '../../src/lib/backoff.js';
import { HubError } from './hub-client.js';
import type { FileStore, Op } from './store.js';

export interface WorkItem<T = any> {
  seq: number;
  lane: string;
  /** Dedupe key, unique per logical event. */
  key: string;
  kind: string;
  data: T;
}

export type NewItem = Omit<WorkItem, 'seq'>;

export interface QueueOptions {
  maxAttempts: number;
  retryMaxMs: number;
}

export class WorkQueue {
  private seq = 0;
  private readonly lanes = new Map<string, WorkItem[]>();
  private readonly running = new Set<string>();
  private readonly queuedKeys = new Set<string>();
  private stopped = false;
  private readonly sleepers = new Set<() => void>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly store: FileStore,
    private readonly handler: (item: WorkItem) => Promise<void>,
    private readonly onDead: (item: WorkItem, err: Error) => NewItem[],
    private readonly opts: QueueOptions,
    private readonly log: Logger,
  ) {
    const items = store.entries<WorkItem>('q:').map(([, v]) => v).sort((a, b) => a.seq - b.seq);
    for (const item of items) this.push(item);
    this.seq = Math.max(0, ...items.map((i) => i.seq), ...store.entries<WorkItem>('dead:').map(([, v]) => v.seq));
  }

  /** Starts handling what was queued before a restart. */
  start(): void {
    for (const lane of this.lanes.keys()) this.kick(lane);
  }

  /** Stops after the items in hand; queued items stay in the store for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of this.sleepers) wake();
    while (this.running.size) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** True when an item with this key is queued or was handled. */
  known(key: string): boolean {
    return this.queuedKeys.has(key) || this.store.has(`seen:${key}`);
  }

  /**
   * Queues the items whose keys are new, together with `extra` store ops, in one durable write.
   * @returns how many were queued.
   */
  async enqueue(items: NewItem[], extra: Op[] = []): Promise<number> {
    const added: WorkItem[] = [];
    const ops: Op[] = [...extra];
    for (const it of items) {
      if (this.known(it.key)) continue;
      const item = { ...it, seq: ++this.seq };
      this.queuedKeys.add(item.key);
      added.push(item);
      ops.push({ put: `q:${item.seq}`, value: item });
    }
    await this.store.batch(ops);
    for (const item of added) {
      this.push(item);
      this.kick(item.lane);
    }
    return added.length;
  }

  /** Items queued and not yet handled. */
  get size(): number {
    let n = 0;
    for (const items of this.lanes.values()) n += items.length;
    return n;
  }

  /** Resolves when nothing is queued or running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.size > 0 || this.running.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private push(item: WorkItem): void {
    this.queuedKeys.add(item.key);
    const lane = this.lanes.get(item.lane);
    if (lane) lane.push(item);
    else this.lanes.set(item.lane, [item]);
  }

  private kick(lane: string): void {
    if (this.stopped || this.running.has(lane)) return;
    this.running.add(lane);
    void this.drain(lane);
  }

  private async drain(lane: string): Promise<void> {
    const items = this.lanes.get(lane)!;
    try {
      while (!this.stopped && items.length) {
        if (!(await this.process(items[0]))) break;
        items.shift();
      }
    } catch (err) {
      this.log.error({ err, lane }, 'queue lane failed');
    } finally {
      this.running.delete(lane);
      if (items.length === 0 && this.lanes.get(lane) === items) this.lanes.delete(lane);
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Handles one item to completion or dead letter. @returns false when stopped before that. */
  private async process(item: WorkItem): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      if (this.stopped) return false;
      try {
        await this.handler(item);
        await this.store.batch([{ del: `q:${item.seq}` }, { put: `seen:${item.key}`, value: Date.now() }]);
        this.queuedKeys.delete(item.key);
        return true;
      } catch (err) {
        const e = err as Error & { transient?: boolean };
        const retry = e instanceof HubError ? e.transient : e.transient === true && attempt < this.opts.maxAttempts;
        if (this.stopped) return false;
        if (retry) {
          const delay = backoffDelay(attempt, { maxMs: this.opts.retryMaxMs });
          this.log.warn({ key: item.key, attempt, delay_ms: delay, err: e.message }, 'retrying');
          await this.sleep(delay);
          continue;
        }
        this.log.error({ key: item.key, attempt, err: e.message }, 'dead-lettered');
        const followUps = this.onDead(item, e);
        await this.enqueue(followUps, [
          { del: `q:${item.seq}` },
          { put: `dead:${item.seq}`, value: { ...item, error: e.message, at: Date.now() } },
          { put: `seen:${item.key}`, value: Date.now() },
        ]);
        this.queuedKeys.delete(item.key);
        return true;
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}
