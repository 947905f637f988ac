/** SQL for `presence`: each user's status, status text and last-seen time. */
import type { Queryable } from '../../db/database.js';
import type { PresenceStatus } from './presence.service.js';

export interface PresenceRow {
  user_id: string;
  status: PresenceStatus;
  status_text: string;
  last_seen: Date | null;
}

export const presenceRepository = {
  /**
   * Sets a user's status (and status text when given; `last_seen` becomes now). With `onlyIfOffline`,
   * only when they are offline now (or have no row yet).
   * @returns the row, or null when `onlyIfOffline` left it alone.
   */
  async set(q: Queryable, userId: string, status: PresenceStatus, statusText: string | undefined, onlyIfOffline: boolean): Promise<PresenceRow | null> {
    const { rows } = await q.query<PresenceRow>(
      `INSERT INTO presence (user_id, status, status_text, last_seen) VALUES ($1, $2, COALESCE($3, ''), now())
       ON CONFLICT (user_id) DO UPDATE SET status = $2, status_text = COALESCE($3, presence.status_text), last_seen = now()
         WHERE NOT $4 OR presence.status = 'offline'
       RETURNING user_id, status, status_text, last_seen`,
      [userId, status, statusText ?? null, onlyIfOffline],
    );
    return rows[0] ?? null;
  },

  /** The presence of `userIds` (offline, with no status text, for those without a row), in no order. */
  async get(q: Queryable, userIds: string[]): Promise<PresenceRow[]> {
    const { rows } = await q.query<PresenceRow>(
      `SELECT u.id AS user_id, COALESCE(p.status, 'offline') AS status, COALESCE(p.status_text, '') AS status_text, p.last_seen
       FROM unnest($1::uuid[]) AS u(id) LEFT JOIN presence p ON p.user_id = u.id`,
      [userIds],
    );
    return rows;
  },

  /** Sets everyone offline who is not (last_seen kept). @returns how many were reset. */
  async resetAll(q: Queryable): Promise<number> {
    const { rowCount } = await q.query(`UPDATE presence SET status = 'offline' WHERE status <> 'offline'`);
    return rowCount ?? 0;
  },
};
