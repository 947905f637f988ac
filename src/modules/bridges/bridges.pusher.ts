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
 * Durability: the pusher is a follower of the log (events/follower.ts) with a cursor persisted per
 * bridge (`bridge_state`).
 * A transaction is written whole into `bridge_state.pending_*` before it is sent and retried as it is
 * (exponential backoff from 250 ms up to `retry_max_ms`, across hub restarts too) until the bridge
 * answers 2xx; only then does the cursor move. So events reach the bridge in order, at least once,
 * and a retried transaction never gains or loses events; the bridge dedupes by txn_id.
 */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../../config/schema.js';
import type { Database } from '../../db/database.js';
import { forDevice, type BridgeTransaction, type TypingEvent } from '../../events/catalog.js';
import { Follower } from '../../events/follower.js';
import type { PubSub } from '../../events/pubsub.js';
import type { EventStream, StreamEvent } from '../../events/stream.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import type { UsersService } from '../users/users.service.js';
import { bridgesRepository as repo, type BridgeStateRow } from './bridges.repository.js';

const BATCH = 200;
const MAX_EPHEMERAL = 200;
const PUT_TIMEOUT_MS = 30_000;

export class TransactionPusher {
  private readonly follower: Follower;
  private ephemeral: TypingEvent[] = [];
  private readonly roomSubs = new Map<string, () => void>();
  private unsubscribeStream?: () => void;
  private readonly abort = new AbortController();

  constructor(
    private readonly db: Database,
    private readonly stream: EventStream,
    private readonly pubsub: PubSub,
    private readonly rooms: RoomsService,
    private readonly users: UsersService,
    private readonly log: Logger,
    private readonly bridge: BridgeConfig,
    private readonly botId: string,
  ) {
    this.follower = new Follower({ name: `bridge pusher ${bridge.id}`, log, step: () => this.step(), retry: { baseMs: 250, maxMs: bridge.retry_max_ms } });
  }

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
    void this.follower.stop();
    this.abort.abort();
    this.unsubscribeStream?.();
    for (const unsubscribe of this.roomSubs.values()) unsubscribe();
    this.roomSubs.clear();
  }

  /** Follows typing in the rooms the bridge is in. */
  private async refreshRooms(): Promise<void> {
    try {
      const ids = new Set(await this.rooms.roomIdsWithBridgeMembers(this.bridge.id));
      for (const [roomId, unsubscribe] of this.roomSubs) if (!ids.has(roomId)) (unsubscribe(), this.roomSubs.delete(roomId));
      for (const roomId of ids) {
        if (this.roomSubs.has(roomId) || this.follower.isStopped) continue;
        this.roomSubs.set(roomId, this.pubsub.subscribe(`room:${roomId}`, (m) => this.onEphemeral(m)));
      }
    } catch (err) {
      if (!this.follower.isStopped) this.log.error({ err }, 'bridge room list failed');
    }
  }

  private onEphemeral(message: TypingEvent): void {
    if (message?.type !== 'typing' || message.user_id === this.botId) return;
    this.ephemeral.push({ ...message, ts: Date.now() });
    if (this.ephemeral.length > MAX_EPHEMERAL) this.ephemeral.shift();
    this.wake();
  }

  private wake(): void {
    this.follower.wake();
  }

  /**
   * One unit of work: open the next transaction when none is pending, then send the pending one.
   * @returns true when there may be more to do right away.
   * @throws when the bridge did not accept it (the follower retries after a backoff).
   */
  private async step(): Promise<boolean> {
    let state = (await repo.state(this.db, this.bridge.id))!;
    if (!state.pending_txn_id) {
      const opened = await this.openNext(state);
      if (opened !== 'opened') return opened === 'more';
      state = (await repo.state(this.db, this.bridge.id))!;
      if (!state.pending_txn_id) return true; // another node opened it first
    }
    await this.put(state);
    await repo.closeTxn(this.db, this.bridge.id, state.pending_txn_id!);
    return true;
  }

  /** Reads what follows the cursor and opens a transaction when something concerns the bridge. */
  private async openNext(state: BridgeStateRow): Promise<'opened' | 'more' | 'idle'> {
    const rows = await this.stream.readAfter(state.last_position, BATCH);
    const relevant = await this.relevance(rows);
    const body: BridgeTransaction = { events: [], ephemeral: this.ephemeral.splice(0) };
    for (const row of rows) {
      if (!relevant(row)) continue;
      // Encrypted messages: no device's envelopes (a bridge bot is no E2EE device; docs/E2EE.md).
      (row.type === 'message.read' ? body.ephemeral : body.events).push({ ...forDevice(row.payload, undefined), room_id: row.room_id, stream_position: row.stream_position });
    }
    const upto = rows.length ? rows[rows.length - 1].stream_position : state.last_position;
    if (body.events.length === 0 && body.ephemeral.length === 0) {
      if (rows.length) await repo.advance(this.db, this.bridge.id, upto);
      return rows.length === BATCH ? 'more' : 'idle';
    }
    await repo.openTxn(this.db, this.bridge.id, state.txn_seq, String(state.txn_seq + 1), upto, body);
    return 'opened';
  }

  /**
   * Which of `rows` concern the bridge: events of rooms where one of its users (bot or ghost) is a
   * member now, and events naming one of them in `notify_user_ids` (a removal, a deletion).
   */
  private async relevance(rows: StreamEvent[]): Promise<(row: StreamEvent) => boolean> {
    if (rows.length === 0) return () => false;
    const rooms = new Set(await this.rooms.roomIdsWithBridgeMembers(this.bridge.id));
    const named = [...new Set(rows.flatMap((r) => (rooms.has(r.room_id) ? [] : r.notify_user_ids)))];
    const ours = new Set(named.length ? await this.users.bridgeUsersAmong(this.bridge.id, named) : []);
    return (row) => rooms.has(row.room_id) || row.notify_user_ids.some((id) => ours.has(id));
  }

  /** Sends the pending transaction. @throws unless the bridge accepted it (2xx). */
  private async put(state: BridgeStateRow): Promise<void> {
    const url = `${this.bridge.url.replace(/\/$/, '')}/transactions/${encodeURIComponent(state.pending_txn_id!)}`;
    const res = await fetch(url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${this.bridge.hs_token}`, 'content-type': 'application/json' },
      body: JSON.stringify(state.pending_body),
      signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(PUT_TIMEOUT_MS)]),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`bridge refused transaction ${state.pending_txn_id} with ${res.status}`);
  }
}
