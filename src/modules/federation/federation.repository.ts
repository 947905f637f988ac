/** SQL for the federation tables (migrations/0012_federation.sql). The only writer of them. */
import type { Queryable } from '../../db/database.js';
import type { SenderState } from '../../events/transaction-sender.js';

export interface FedRoomRow {
  room_id: string;
  host: string;
  seq: number;
  last_hash: string;
  deny: string[];
  servers: string[];
}

export interface OutState<B> extends SenderState<B> {
  peer: string;
  pending_upto: number | null;
  last_success_at: Date | null;
}

const num = (v: unknown) => Number(v);

export const federationRepository = {
  /** The federated room, row-locked until the transaction ends when `lock`. */
  async room(q: Queryable, roomId: string, lock = false): Promise<FedRoomRow | null> {
    const { rows } = await q.query<FedRoomRow>(`SELECT * FROM federation_rooms WHERE room_id = $1${lock ? ' FOR UPDATE' : ''}`, [roomId]);
    return rows[0] ? { ...rows[0], seq: num(rows[0].seq) } : null;
  },

  /** The federated rooms among `roomIds` (the others are left out). */
  async rooms(q: Queryable, roomIds: string[]): Promise<FedRoomRow[]> {
    const { rows } = await q.query<FedRoomRow>('SELECT * FROM federation_rooms WHERE room_id = ANY($1::uuid[])', [roomIds]);
    return rows.map((r) => ({ ...r, seq: num(r.seq) }));
  },

  async roomIds(q: Queryable): Promise<string[]> {
    const { rows } = await q.query<{ room_id: string }>('SELECT room_id FROM federation_rooms');
    return rows.map((r) => r.room_id);
  },

  async insertRoom(q: Queryable, roomId: string, host: string): Promise<void> {
    await q.query('INSERT INTO federation_rooms (room_id, host) VALUES ($1, $2) ON CONFLICT DO NOTHING', [roomId, host]);
  },

  async setRoomLog(q: Queryable, roomId: string, seq: number, lastHash: string, servers?: string[]): Promise<void> {
    await q.query('UPDATE federation_rooms SET seq = $2, last_hash = $3, servers = COALESCE($4, servers) WHERE room_id = $1', [roomId, seq, lastHash, servers ?? null]);
  },

  async setDeny(q: Queryable, roomId: string, deny: string[]): Promise<void> {
    await q.query('UPDATE federation_rooms SET deny = $2 WHERE room_id = $1', [roomId, deny]);
  },

  /** Stores a sequenced event. @returns false when its id or seq is already stored. */
  async insertEvent(q: Queryable, roomId: string, seq: number, eventId: string, pdu: unknown): Promise<boolean> {
    const { rowCount } = await q.query('INSERT INTO federation_events (room_id, room_seq, event_id, pdu) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
      roomId,
      seq,
      eventId,
      pdu,
    ]);
    return rowCount === 1;
  },

  /** Sequenced events after `afterSeq`, oldest first. */
  async eventsAfter(q: Queryable, roomId: string, afterSeq: number, limit: number): Promise<unknown[]> {
    const { rows } = await q.query<{ pdu: unknown }>('SELECT pdu FROM federation_events WHERE room_id = $1 AND room_seq > $2 ORDER BY room_seq LIMIT $3', [
      roomId,
      afterSeq,
      limit,
    ]);
    return rows.map((r) => r.pdu);
  },

  /** The last `limit` sequenced events, oldest first. */
  async lastEvents(q: Queryable, roomId: string, limit: number): Promise<unknown[]> {
    const { rows } = await q.query<{ pdu: unknown }>(
      'SELECT pdu FROM (SELECT pdu, room_seq FROM federation_events WHERE room_id = $1 ORDER BY room_seq DESC LIMIT $2) t ORDER BY room_seq',
      [roomId, limit],
    );
    return rows.map((r) => r.pdu);
  },

  async txnSeen(q: Queryable, origin: string, txnId: string): Promise<boolean> {
    const { rowCount } = await q.query('SELECT 1 FROM federation_txns WHERE origin = $1 AND txn_id = $2', [origin, txnId]);
    return rowCount === 1;
  },

  async recordTxn(q: Queryable, origin: string, txnId: string): Promise<void> {
    await q.query('INSERT INTO federation_txns (origin, txn_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [origin, txnId]);
  },

  /** Deletes received transaction ids older than `maxAgeS` seconds. @returns how many. */
  async pruneTxns(q: Queryable, maxAgeS: number): Promise<number> {
    const { rowCount } = await q.query("DELETE FROM federation_txns WHERE received_at < now() - make_interval(secs => $1)", [maxAgeS]);
    return rowCount ?? 0;
  },

  async pinnedKey(q: Queryable, server: string): Promise<string | null> {
    const { rows } = await q.query<{ public_key: string }>('SELECT public_key FROM federation_peer_keys WHERE server_name = $1', [server]);
    return rows[0]?.public_key ?? null;
  },

  /** Pins a key on first use; an already pinned key is kept. @returns the pinned key. */
  async pinKey(q: Queryable, server: string, publicKey: string): Promise<string> {
    await q.query('INSERT INTO federation_peer_keys (server_name, public_key) VALUES ($1, $2) ON CONFLICT DO NOTHING', [server, publicKey]);
    return (await this.pinnedKey(q, server))!;
  },

  async enqueue(q: Queryable, peer: string, kind: 'event' | 'snapshot' | 'ephemeral', item: unknown): Promise<void> {
    await q.query('INSERT INTO federation_outbox (peer, kind, item) VALUES ($1, $2, $3)', [peer, kind, item]);
  },

  /** Queue items of `peer` after `after`, oldest first. */
  async outboxAfter(q: Queryable, peer: string, after: number, limit: number): Promise<{ id: number; kind: string; item: any }[]> {
    const { rows } = await q.query('SELECT id, kind, item FROM federation_outbox WHERE peer = $1 AND id > $2 ORDER BY id LIMIT $3', [peer, after, limit]);
    return rows.map((r: any) => ({ ...r, id: num(r.id) }));
  },

  /** Queue depth and the oldest undelivered item's time, per peer. */
  async queueStats(q: Queryable): Promise<Map<string, { depth: number; oldest: Date | null }>> {
    const { rows } = await q.query(
      `SELECT o.peer, count(*)::int AS depth, min(o.created_at) AS oldest FROM federation_outbox o
         LEFT JOIN federation_out_state s ON s.peer = o.peer
        WHERE o.id > COALESCE(s.last_position, 0) GROUP BY o.peer`,
    );
    return new Map(rows.map((r: any) => [r.peer, { depth: r.depth, oldest: r.oldest }]));
  },

  async ensureOutState(q: Queryable, peer: string): Promise<void> {
    await q.query('INSERT INTO federation_out_state (peer) VALUES ($1) ON CONFLICT DO NOTHING', [peer]);
  },

  async outState<B>(q: Queryable, peer: string): Promise<OutState<B>> {
    const { rows } = await q.query('SELECT * FROM federation_out_state WHERE peer = $1', [peer]);
    const r: any = rows[0];
    return { ...r, last_position: num(r.last_position), txn_seq: num(r.txn_seq), pending_upto: r.pending_upto === null ? null : num(r.pending_upto) };
  },

  async outStates(q: Queryable): Promise<OutState<unknown>[]> {
    const { rows } = await q.query('SELECT * FROM federation_out_state ORDER BY peer');
    return rows.map((r: any) => ({ ...r, last_position: num(r.last_position), txn_seq: num(r.txn_seq) }));
  },

  async advanceOut(q: Queryable, peer: string, upto: number): Promise<void> {
    await q.query('UPDATE federation_out_state SET last_position = $2 WHERE peer = $1 AND pending_txn_id IS NULL AND last_position < $2', [peer, upto]);
  },

  /** Opens the next transaction unless another node did (optimistic on `txn_seq`). */
  async openOut(q: Queryable, peer: string, prevSeq: number, txnId: string, upto: number, body: unknown): Promise<void> {
    await q.query(
      `UPDATE federation_out_state SET txn_seq = $2 + 1, pending_txn_id = $3, pending_upto = $4, pending_body = $5
        WHERE peer = $1 AND txn_seq = $2 AND pending_txn_id IS NULL`,
      [peer, prevSeq, txnId, upto, body],
    );
  },

  /** The peer accepted `txnId`: the cursor moves past it and the delivered items are dropped. */
  async closeOut(q: Queryable, peer: string, txnId: string): Promise<void> {
    const { rows } = await q.query<{ upto: string }>(
      `UPDATE federation_out_state SET last_position = GREATEST(last_position, pending_upto), pending_txn_id = NULL, pending_upto = NULL,
         pending_body = NULL, last_success_at = now()
        WHERE peer = $1 AND pending_txn_id = $2 RETURNING last_position AS upto`,
      [peer, txnId],
    );
    if (rows[0]) await q.query('DELETE FROM federation_outbox WHERE peer = $1 AND id <= $2', [peer, rows[0].upto]);
  },

  /** Gives up the pending transaction `txnId` without moving the cursor: its items go again, in other transactions. */
  async abandonOut(q: Queryable, peer: string, txnId: string): Promise<void> {
    await q.query('UPDATE federation_out_state SET pending_txn_id = NULL, pending_upto = NULL, pending_body = NULL WHERE peer = $1 AND pending_txn_id = $2', [peer, txnId]);
  },

  /**
   * The peer refused `txnId` for good: it is kept in `federation_dead_letters` with the peer's
   * status and answer, the cursor moves past it and its items are dropped from the queue.
   */
  async deadLetterOut(q: Queryable, peer: string, txnId: string, status: number, error: string): Promise<void> {
    await q.query(
      `INSERT INTO federation_dead_letters (peer, txn_id, status, error, body)
       SELECT peer, pending_txn_id, $3, $4, pending_body FROM federation_out_state WHERE peer = $1 AND pending_txn_id = $2`,
      [peer, txnId, status, error],
    );
    const { rows } = await q.query<{ upto: string }>(
      `UPDATE federation_out_state SET last_position = GREATEST(last_position, pending_upto), pending_txn_id = NULL, pending_upto = NULL, pending_body = NULL
        WHERE peer = $1 AND pending_txn_id = $2 RETURNING last_position AS upto`,
      [peer, txnId],
    );
    if (rows[0]) await q.query('DELETE FROM federation_outbox WHERE peer = $1 AND id <= $2', [peer, rows[0].upto]);
  },

  /** Dead-lettered transactions per peer. */
  async deadLetterCounts(q: Queryable): Promise<Map<string, number>> {
    const { rows } = await q.query<{ peer: string; n: number }>('SELECT peer, count(*)::int AS n FROM federation_dead_letters GROUP BY peer');
    return new Map(rows.map((r) => [r.peer, r.n]));
  },

  async cursor(q: Queryable): Promise<number | null> {
    const { rows } = await q.query<{ last_position: string }>('SELECT last_position FROM federation_cursor');
    return rows[0] ? num(rows[0].last_position) : null;
  },

  async initCursor(q: Queryable, position: number): Promise<void> {
    await q.query('INSERT INTO federation_cursor (last_position) VALUES ($1) ON CONFLICT DO NOTHING', [position]);
  },

  async setCursor(q: Queryable, position: number): Promise<void> {
    await q.query('UPDATE federation_cursor SET last_position = $1', [position]);
  },
};
