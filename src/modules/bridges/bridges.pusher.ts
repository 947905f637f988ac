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
 * Encrypted rooms: an E2EE bridge (`e2ee = true`) gets, in each encrypted message and edit, the
 * envelope addressed to its bot's device (`message.envelope`, as that device's sockets would); any
 * other bridge gets `envelope: null` and skips them (docs/BRIDGES.md).
 *
 * Durability: the pusher is a `TransactionSender` (events/transaction-sender.ts, shared with
 * federation) reading the log, with a cursor persisted per bridge (`bridge_state`).
 * A transaction is written whole into `bridge_state.pending_*` before it is sent and retried as it is
 * (exponential backoff from 250 ms up to `retry_max_ms`, across hub restarts too) until the bridge
 * answers 2xx; only then does the cursor move. So events reach the bridge in order, at least once,
 * and a retried transaction never gains or loses events; the bridge dedupes by txn_id.
 */
import type { Logger } from 'pino';
import type { BridgeConfig } from '../../config/schema.js';
import type { Database } from '../../db/database.js';
import { forDevice, type BridgeTransaction, type TypingEvent } from '../../events/catalog.js';
import { TransactionSender } from '../../events/transaction-sender.js';
import type { PubSub } from '../../events/pubsub.js';
import type { EventStream, StreamEvent } from '../../events/stream.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import type { UsersService } from '../users/users.service.js';
import { bridgesRepository as repo } from './bridges.repository.js';

const BATCH = 200;
const MAX_EPHEMERAL = 200;
const PUT_TIMEOUT_MS = 30_000;

export class TransactionPusher {
  private readonly sender: TransactionSender<BridgeTransaction>;
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
    /** The bot's device session when the bridge has `e2ee = true`: whose envelopes it gets. */
    private readonly botDeviceId: string | undefined,
  ) {
    this.sender = new TransactionSender<BridgeTransaction>({
      name: `bridge pusher ${bridge.id}`,
      log,
      retry: { baseMs: 250, maxMs: bridge.retry_max_ms },
      deliver: (txnId, body) => this.put(txnId, body),
      store: {
        state: async () => (await repo.state(this.db, this.bridge.id))!,
        collect: (after) => this.collect(after),
        open: (prevSeq, txnId, upto, body) => repo.openTxn(this.db, this.bridge.id, prevSeq, txnId, upto, body),
        advance: (upto) => repo.advance(this.db, this.bridge.id, upto),
        close: (txnId) => repo.closeTxn(this.db, this.bridge.id, txnId),
      },
    });
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
    void this.sender.stop();
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
        if (this.roomSubs.has(roomId) || this.sender.isStopped) continue;
        this.roomSubs.set(roomId, this.pubsub.subscribe(`room:${roomId}`, (m) => this.onEphemeral(m)));
      }
    } catch (err) {
      if (!this.sender.isStopped) this.log.error({ err }, 'bridge room list failed');
    }
  }

  private onEphemeral(message: TypingEvent): void {
    if (message?.type !== 'typing' || message.user_id === this.botId) return;
    this.ephemeral.push({ ...message, ts: Date.now() });
    if (this.ephemeral.length > MAX_EPHEMERAL) this.ephemeral.shift();
    this.wake();
  }

  private wake(): void {
    this.sender.wake();
  }

  /** What follows the cursor for the bridge: its events and receipts, and the typing seen meanwhile. */
  private async collect(after: number): Promise<{ body: BridgeTransaction | null; upto: number; more: boolean }> {
    const rows = await this.stream.readAfter(after, BATCH);
    const relevant = await this.relevance(rows);
    const body: BridgeTransaction = { events: [], ephemeral: this.ephemeral.splice(0) };
    for (const row of rows) {
      if (!relevant(row)) continue;
      // Encrypted messages: the envelope of the bot's device (E2EE bridges), else none (docs/E2EE.md).
      (row.type === 'message.read' ? body.ephemeral : body.events).push({ ...forDevice(row.payload, this.botDeviceId), room_id: row.room_id, stream_position: row.stream_position });
    }
    const upto = rows.length ? rows[rows.length - 1].stream_position : after;
    const empty = body.events.length === 0 && body.ephemeral.length === 0;
    return { body: empty ? null : body, upto, more: rows.length === BATCH };
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
  private async put(txnId: string, body: BridgeTransaction): Promise<void> {
    const url = `${this.bridge.url.replace(/\/$/, '')}/transactions/${encodeURIComponent(txnId)}`;
    const res = await fetch(url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${this.bridge.hs_token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(PUT_TIMEOUT_MS)]),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`bridge refused transaction ${txnId} with ${res.status}`);
  }
}
