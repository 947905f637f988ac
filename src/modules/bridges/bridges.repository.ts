/** SQL for bridges: portal rooms and the per-bridge transaction cursor (ghosts are users: users.repository.ts). */
import type { Queryable } from '../../db/database.js';
import type { BridgeTransaction } from '../../events/catalog.js';

export interface BridgeStateRow {
  bridge_id: string;
  last_position: number;
  txn_seq: number;
  pending_txn_id: string | null;
  pending_upto: number | null;
  pending_body: BridgeTransaction | null;
}

export const bridgesRepository = {
  /** Serialises portal creation per remote chat until the transaction ends. */
  async lockPortal(q: Queryable, bridgeId: string, remoteId: string): Promise<void> {
    await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bridge-portal:${bridgeId}:${remoteId}`]);
  },

  async findPortal(q: Queryable, bridgeId: string, remoteId: string): Promise<string | null> {
    const { rows } = await q.query<{ room_id: string }>('SELECT room_id FROM bridge_portals WHERE bridge_id = $1 AND remote_id = $2', [bridgeId, remoteId]);
    return rows[0]?.room_id ?? null;
  },

  async insertPortal(q: Queryable, bridgeId: string, remoteId: string, roomId: string): Promise<void> {
    await q.query('INSERT INTO bridge_portals (bridge_id, remote_id, room_id) VALUES ($1, $2, $3)', [bridgeId, remoteId, roomId]);
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

  /** Moves the cursor past events none of which concern the bridge (only when nothing is pending). */
  async advance(q: Queryable, bridgeId: string, position: number): Promise<void> {
    await q.query('UPDATE bridge_state SET last_position = $2, updated_at = now() WHERE bridge_id = $1 AND pending_txn_id IS NULL AND last_position < $2', [bridgeId, position]);
  },

  /**
   * Opens the next transaction, unless another node opened one first (optimistic on `txn_seq`):
   * either way, a transaction is pending afterwards; read the state to send it.
   */
  async openTxn(q: Queryable, bridgeId: string, expectedSeq: number, txnId: string, upto: number, body: unknown): Promise<void> {
    await q.query(
      `UPDATE bridge_state SET txn_seq = $2 + 1, pending_txn_id = $3, pending_upto = $4, pending_body = $5, updated_at = now()
       WHERE bridge_id = $1 AND txn_seq = $2 AND pending_txn_id IS NULL`,
      [bridgeId, expectedSeq, txnId, upto, body],
    );
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
