/**
 * SQL for `search_index_cursor`: the Meilisearch indexer's persisted stream position per index, and
 * the lease (`leader`, `lease_until`) that lets one indexer at a time work across nodes.
 */
import type { Queryable } from '../../db/database.js';

export const searchRepository = {
  async position(q: Queryable, index: string): Promise<number> {
    const { rows } = await q.query<{ position: number }>('SELECT position FROM search_index_cursor WHERE index_name = $1', [index]);
    return rows[0]?.position ?? 0;
  },

  /**
   * Claims or renews the lease for `leaseS` seconds (the row is created at position 0 when missing).
   * @returns the shared cursor when `leader` now holds it, null when another holder's lease has not
   *   expired (`force` takes it regardless).
   */
  async lease(q: Queryable, index: string, leader: string, leaseS: number, force: boolean): Promise<number | null> {
    const { rows } = await q.query<{ position: number }>(
      `INSERT INTO search_index_cursor (index_name, position, leader, lease_until) VALUES ($1, 0, $2, now() + make_interval(secs => $3))
       ON CONFLICT (index_name) DO UPDATE SET leader = $2, lease_until = now() + make_interval(secs => $3)
         WHERE $4 OR search_index_cursor.leader IS NULL OR search_index_cursor.leader = $2 OR search_index_cursor.lease_until < now()
       RETURNING position`,
      [index, leader, leaseS, force],
    );
    return rows[0]?.position ?? null;
  },

  async release(q: Queryable, index: string, leader: string): Promise<void> {
    await q.query('UPDATE search_index_cursor SET leader = NULL, lease_until = NULL WHERE index_name = $1 AND leader = $2', [index, leader]);
  },

  async reset(q: Queryable, index: string): Promise<void> {
    await q.query('UPDATE search_index_cursor SET position = 0, updated_at = now() WHERE index_name = $1', [index]);
  },

  /**
   * Moves the cursor forward to `position`, only while `leader` holds the lease.
   * @returns false when it no longer does.
   */
  async advance(q: Queryable, index: string, position: number, leader: string): Promise<boolean> {
    const { rowCount } = await q.query(
      'UPDATE search_index_cursor SET position = GREATEST(position, $2), updated_at = now() WHERE index_name = $1 AND leader = $3',
      [index, position, leader],
    );
    return rowCount === 1;
  },
};
