/**
 * The hub -> bridge push (Matrix AS transactions, https://spec.matrix.org/v1.11/application-service-api/#pushing-events):
 * `PUT {url}/transactions/{txn_id}` with `Authorization: Bearer <hs_token>` and body
 * `{"events":[...], "ephemeral":[...]}`.
 *
 * - `events`: the room events (as clients receive them, with `room_id` and `stream_position`) of rooms
 *   where one of the bridge's users is a member, in stream order: message.new/edited/deleted,
 *   reaction.added/removed, room.updated/deleted.
 * - `ephemeral`: read receipts (`message.read`, durable: they come from the stream too) and typing
 *   (`{"type":"typing",room_id,user_id,user_name,typing,ts}`, `ts` in ms since the epoch; best effort:
 *   only while the hub runs; a bridge should ignore stale ones after an outage).
 *
 * Durability: the pusher follows `room_events` with a cursor persisted per bridge (`bridge_state`).
 * A transaction is written whole into `bridge_state.pending_*` before it is sent and retried as it is
 * (exponential backoff from 250 ms up to `retry_max_ms`, across hub restarts too) until the bridge
 * answers 2xx; only then does the cursor move. So events reach the bridge in order, at least once,
 * and a retried transaction never gains or loses events; the bridge dedupes by txn_id.
 */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../../config/schema.js';
import type { Database } from '../../db/database.js';
import { CoalescingRunner } from '../../events/coalescing-runner.js';
import type { PubSub } from '../../events/pubsub.js';
import { toWire, type EventStream } from '../../events/stream.js';
import { bridgesRepository as repo, type BridgeStateRow } from './bridges.repository.js';

const BATCH = 200;
const MAX_EPHEMERAL = 200;
const FIRST_RETRY_MS = 250;
const PUT_TIMEOUT_MS = 30_000;

export class TransactionPusher {
  private readonly runner = new CoalescingRunner(() => this.run());
  private stopped = false;
  private attempts = 0;
  private retryAt = 0;
  private retryTimer?: NodeJS.Timeout;
  private ephemeral: Record<string, unknown>[] = [];
  private readonly roomSubs = new Map<string, () => void>();
  private unsubscribeStream?: () => void;
  private readonly abort = new AbortController();

  constructor(
    private readonly db: Database,
    private readonly stream: EventStream,
    private readonly pubsub: PubSub,
    private readonly log: Logger,
    private readonly bridge: BridgeConfig,
    private readonly botId: string,
  ) {}

  /** Creates the cursor at the stream's end on first start (no history replay), then starts pushing. */
  async start(): Promise<void> {
    await repo.ensureState(this.db, this.bridge.id, await this.stream.maxPosition());
    this.unsubscribeStream = this.stream.onEvents((events) => {
      if (events.some((e) => e.type === 'room.updated' || e.type === 'room.deleted')) void this.refreshRooms();
      this.wake();
    });
    await this.refreshRooms();
    this.wake();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.abort.abort();
    this.unsubscribeStream?.();
    for (const unsubscribe of this.roomSubs.values()) unsubscribe();
    this.roomSubs.clear();
  }

  /** Follows typing in the rooms the bridge is in. */
  private async refreshRooms(): Promise<void> {
    try {
      const ids = new Set(await repo.roomIds(this.db, this.bridge.id));
      for (const [roomId, unsubscribe] of this.roomSubs) if (!ids.has(roomId)) (unsubscribe(), this.roomSubs.delete(roomId));
      for (const roomId of ids) {
        if (this.roomSubs.has(roomId) || this.stopped) continue;
        this.roomSubs.set(roomId, this.pubsub.subscribe(`room:${roomId}`, (m) => this.onEphemeral(m)));
      }
    } catch (err) {
      if (!this.stopped) this.log.error({ err }, 'bridge room list failed');
    }
  }

  private onEphemeral(message: any): void {
    if (message?.type !== 'typing' || message.user_id === this.botId) return;
    this.ephemeral.push({ ...message, ts: Date.now() });
    if (this.ephemeral.length > MAX_EPHEMERAL) this.ephemeral.shift();
    this.wake();
  }

  private wake(): void {
    if (!this.stopped) this.runner.wake();
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped && (await this.step()));
    } catch (err) {
      if (!this.stopped) {
        this.log.error({ err }, 'bridge push failed; retrying');
        this.scheduleRetry();
      }
    }
  }

  /** One unit of work. @returns true when there may be more to do right away. */
  private async step(): Promise<boolean> {
    let state = (await repo.state(this.db, this.bridge.id))!;
    if (!state.pending_txn_id) {
      const opened = await this.openNext(state);
      if (opened !== 'opened') return opened === 'more';
      state = (await repo.state(this.db, this.bridge.id))!;
      if (!state.pending_txn_id) return true;
    }
    if (Date.now() < this.retryAt) return false;
    if (await this.put(state)) {
      await repo.closeTxn(this.db, this.bridge.id, state.pending_txn_id!);
      this.attempts = 0;
      this.retryAt = 0;
      return true;
    }
    this.scheduleRetry();
    return false;
  }

  /** Reads what follows the cursor and opens a transaction when something concerns the bridge. */
  private async openNext(state: BridgeStateRow): Promise<'opened' | 'more' | 'idle'> {
    const rows = await repo.eventsAfter(this.db, this.bridge.id, state.last_position, BATCH);
    const ephemeral = this.ephemeral.splice(0);
    const events: Record<string, unknown>[] = [];
    for (const row of rows) {
      if (!row.relevant) continue;
      (row.type === 'message.read' ? ephemeral : events).push(toWire(row));
    }
    const upto = rows.length ? rows[rows.length - 1].stream_position : state.last_position;
    if (events.length === 0 && ephemeral.length === 0) {
      if (rows.length) await repo.advance(this.db, this.bridge.id, upto);
      return rows.length === BATCH ? 'more' : 'idle';
    }
    await repo.openTxn(this.db, this.bridge.id, state.txn_seq, String(state.txn_seq + 1), upto, { events, ephemeral });
    return 'opened';
  }

  /** @returns true when the bridge accepted the transaction (2xx). */
  private async put(state: BridgeStateRow): Promise<boolean> {
    const url = `${this.bridge.url.replace(/\/$/, '')}/transactions/${encodeURIComponent(state.pending_txn_id!)}`;
    try {
      const res = await fetch(url, {
        method: 'PUT',
        headers: { authorization: `Bearer ${this.bridge.hs_token}`, 'content-type': 'application/json' },
        body: JSON.stringify(state.pending_body),
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(PUT_TIMEOUT_MS)]),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
      this.log.warn({ txn_id: state.pending_txn_id, status: res.status, attempts: this.attempts + 1 }, 'bridge refused transaction');
    } catch (err) {
      if (!this.stopped) this.log.warn({ txn_id: state.pending_txn_id, err: (err as Error).message, attempts: this.attempts + 1 }, 'bridge unreachable');
    }
    return false;
  }

  private scheduleRetry(): void {
    this.attempts++;
    const base = Math.min(this.bridge.retry_max_ms, FIRST_RETRY_MS * 2 ** Math.min(this.attempts - 1, 20));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.retryAt = Date.now() + delay;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.wake(), delay);
    this.retryTimer.unref();
  }
}
