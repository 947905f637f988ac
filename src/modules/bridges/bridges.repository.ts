/** SQL for bridges: ghost users, portal rooms and the per-bridge transaction cursor. */
import type { Queryable } from '../../db/database.js';
import type { StreamEvent } from '../../events/stream.js';

export interface GhostRow {
  id: string;
  name: string;
  avatar_url: string | null;
  bridge_id: string;
  ghost_localpart: string;
  created_at: Date;
  /** True when this upsert created the row (PostgreSQL: xmax is 0 for a fresh insert). */
  inserted: boolean;
}

export interface BridgeStateRow {
  bridge_id: string;
  last_position: number;
  txn_seq: number;
  pending_txn_id: string | null;
  pending_upto: number | null;
  pending_body: { events: unknown[]; ephemeral: unknown[] } | null;
}

export const bridgesRepository = {
  /**
   * Creates a ghost or updates its name and avatar. A localpart owned by another bridge is left alone.
   * @returns the ghost, or null when the localpart belongs to another bridge.
   */
  async upsertGhost(q: Queryable, g: { bridgeId: string; localpart: string; name: string; avatarUrl: string | null | undefined }): Promise<GhostRow | null> {
    const { rows } = await q.query<GhostRow>(
      `INSERT INTO users (name, avatar_url, bridge_id, ghost_localpart) VALUES ($1, $2, $3, $4)
       ON CONFLICT (ghost_localpart) WHERE ghost_localpart IS NOT NULL DO UPDATE
         SET name = EXCLUDED.name, avatar_url = CASE WHEN $5 THEN EXCLUDED.avatar_url ELSE users.avatar_url END
         WHERE users.bridge_id = EXCLUDED.bridge_id
       RETURNING id, name, avatar_url, bridge_id, ghost_localpart, created_at, (xmax = 0) AS inserted`,
      [g.name, g.avatarUrl ?? null, g.bridgeId, g.localpart, g.avatarUrl !== undefined],
    );
    return rows[0] ?? null;
  },

  /** The bridge a user is a ghost of (null for ordinary users); undefined when the user does not exist. */
  async bridgeOfUser(q: Queryable, userId: string): Promise<{ bridge_id: string | null; name: string } | undefined> {
    const { rows } = await q.query('SELECT bridge_id, name FROM users WHERE id = $1 AND deactivated_at IS NULL', [userId]);
    return rows[0];
  },

  async findPortal(q: Queryable, bridgeId: string, remoteId: string): Promise<string | null> {
    const { rows } = await q.query<{ room_id: string }>('SELECT room_id FROM bridge_portals WHERE bridge_id = $1 AND remote_id = $2', [bridgeId, remoteId]);
    return rows[0]?.room_id ?? null;
  },

  async insertPortal(q: Queryable, bridgeId: string, remoteId: string, roomId: string): Promise<void> {
    await q.query('INSERT INTO bridge_portals (bridge_id, remote_id, room_id) VALUES ($1, $2, $3)', [bridgeId, remoteId, roomId]);
  },

  /** Ids of the rooms where one of the bridge's users (bot or ghost) is a member. */
  async roomIds(q: Queryable, bridgeId: string): Promise<string[]> {
    const { rows } = await q.query<{ room_id: string }>(
      'SELECT DISTINCT m.room_id FROM room_members m JOIN users u ON u.id = m.user_id WHERE u.bridge_id = $1',
      [bridgeId],
    );
    return rows.map((r) => r.room_id);
  },

  /** Creates the cursor at `position` when the bridge has none yet. @returns the state. */
  async ensureState(q: Queryable, bridgeId: string, position: number): Promise<BridgeStateRow> {
    await q.query('INSERT INTO bridge_state (bridge_id, last_position) VALUES ($1, $2) ON CONFLICT DO NOTHING', [bridgeId, position]);
    return (await this.state(q, bridgeId))!;
  },

  async state(q: Queryable, bridgeId: string): Promise<BridgeStateRow | null> {
    const { rows } = await q.query<BridgeStateRow>('SELECT * FROM bridge_state WHERE bridge_id = $1', [bridgeId]);
    return rows[0] ?? null;
  },

  /**
   * Room events after `after`, each flagged `relevant` when it belongs to a room where one of the
   * bridge's users is a member, or names one of them in `notify_user_ids`.
   */
  async eventsAfter(q: Queryable, bridgeId: string, after: number, limit: number): Promise<(StreamEvent & { relevant: boolean })[]> {
    const { rows } = await q.query(
      `SELECT e.stream_position, e.room_id, e.type, e.payload, e.notify_user_ids,
              (EXISTS (SELECT 1 FROM room_members m JOIN users u ON u.id = m.user_id WHERE m.room_id = e.room_id AND u.bridge_id = $2)
               OR EXISTS (SELECT 1 FROM users u WHERE u.id = ANY(e.notify_user_ids) AND u.bridge_id = $2)) AS relevant
       FROM room_events e WHERE e.stream_position > $1 ORDER BY e.stream_position LIMIT $3`,
      [after, bridgeId, limit],
    );
    return rows;
  },

  /** Moves the cursor past events none of which concern the bridge (only when nothing is pending). */
  async advance(q: Queryable, bridgeId: string, position: number): Promise<void> {
    await q.query('UPDATE bridge_state SET last_position = $2, updated_at = now() WHERE bridge_id = $1 AND pending_txn_id IS NULL AND last_position < $2', [bridgeId, position]);
  },

  /**
   * Opens the next transaction, unless another node opened one first (optimistic on `txn_seq`).
   * @returns true when this call opened it.
   */
  async openTxn(q: Queryable, bridgeId: string, expectedSeq: number, txnId: string, upto: number, body: unknown): Promise<boolean> {
    const { rowCount } = await q.query(
      `UPDATE bridge_state SET txn_seq = $2 + 1, pending_txn_id = $3, pending_upto = $4, pending_body = $5, updated_at = now()
       WHERE bridge_id = $1 AND txn_seq = $2 AND pending_txn_id IS NULL`,
      [bridgeId, expectedSeq, txnId, upto, body],
    );
    return rowCount === 1;
  },

  /** The bridge accepted transaction `txnId`: the cursor moves to its end. */
  async closeTxn(q: Queryable, bridgeId: string, txnId: string): Promise<void> {
    await q.query(
      `UPDATE bridge_state SET last_position = GREATEST(last_position, pending_upto), pending_txn_id = NULL, pending_upto = NULL,
         pending_body = NULL, updated_at = now()
       WHERE bridge_id = $1 AND pending_txn_id = $2`,
      [bridgeId, txnId],
    );
  },
};
