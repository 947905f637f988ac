/** SQL for the operator's side: users and rooms seen server-wide, deactivation, invite codes, counts. */
import type { Queryable } from '../../db/database.js';
import type { UserRow } from '../auth/auth.repository.js';
import type { RoomRow } from '../rooms/rooms.repository.js';

export interface InviteRow {
  code: string;
  created_by: string | null;
  max_uses: number;
  uses: number;
  expires_at: Date | null;
  created_at: Date;
}

export type AdminRoomRow = RoomRow & { member_count: number; message_count: number };

/** `%`-pattern for a case-insensitive substring match of `q` (LIKE wildcards in `q` escaped). */
function containsPattern(q: string): string {
  return `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export const adminRepository = {
  /** A page of users, newest first, optionally matching `q` in name or email; `total` counts all matches. */
  async listUsers(q: Queryable, f: { q?: string; limit: number; offset: number }): Promise<{ rows: UserRow[]; total: number }> {
    const where = `($1::text IS NULL OR lower(name) LIKE $1 OR email LIKE $1)`;
    const pattern = f.q ? containsPattern(f.q) : null;
    const { rows } = await q.query<UserRow>(`SELECT * FROM users WHERE ${where} ORDER BY created_at DESC, id LIMIT $2 OFFSET $3`, [pattern, f.limit, f.offset]);
    const count = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE ${where}`, [pattern]);
    return { rows, total: count.rows[0].n };
  },

  async findUser(q: Queryable, id: string): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
    return rows[0] ?? null;
  },

  async setAdmin(q: Queryable, id: string): Promise<UserRow> {
    const { rows } = await q.query<UserRow>('UPDATE users SET is_admin = true WHERE id = $1 RETURNING *', [id]);
    return rows[0];
  },

  /** Sets `deactivated_at` (kept when already set). @returns the user, or null when unknown. */
  async deactivateUser(q: Queryable, id: string): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>('UPDATE users SET deactivated_at = COALESCE(deactivated_at, now()) WHERE id = $1 RETURNING *', [id]);
    return rows[0] ?? null;
  },

  /** Revokes every active device session of a user and deletes their refresh tokens. */
  async revokeAllDevices(q: Queryable, userId: string): Promise<void> {
    await q.query('UPDATE devices SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL', [userId]);
    await q.query('DELETE FROM refresh_tokens WHERE device_id IN (SELECT id FROM devices WHERE user_id = $1)', [userId]);
  },

  /** A page of live (not deleted) rooms, newest first, optionally matching `q` in the name. */
  async listRooms(q: Queryable, f: { q?: string; limit: number; offset: number }): Promise<{ rows: AdminRoomRow[]; total: number }> {
    const where = `r.deleted_at IS NULL AND ($1::text IS NULL OR lower(r.name) LIKE $1)`;
    const pattern = f.q ? containsPattern(f.q) : null;
    const { rows } = await q.query<AdminRoomRow>(
      `SELECT r.*,
         (SELECT count(*)::int FROM room_members m WHERE m.room_id = r.id) AS member_count,
         (SELECT count(*)::int FROM messages g WHERE g.room_id = r.id) AS message_count
       FROM rooms r WHERE ${where} ORDER BY r.created_at DESC, r.id LIMIT $2 OFFSET $3`,
      [pattern, f.limit, f.offset],
    );
    const count = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM rooms r WHERE ${where}`, [pattern]);
    return { rows, total: count.rows[0].n };
  },

  /** Server-wide counts. */
  async counts(q: Queryable): Promise<{ users: number; deactivated_users: number; rooms: number; messages: number }> {
    const { rows } = await q.query(
      `SELECT (SELECT count(*)::int FROM users) AS users,
              (SELECT count(*)::int FROM users WHERE deactivated_at IS NOT NULL) AS deactivated_users,
              (SELECT count(*)::int FROM rooms WHERE deleted_at IS NULL) AS rooms,
              (SELECT count(*)::int FROM messages) AS messages`,
    );
    return rows[0];
  },

  async insertInvite(q: Queryable, i: { code: string; createdBy: string; maxUses: number; expiresInS: number | null }): Promise<InviteRow> {
    const { rows } = await q.query<InviteRow>(
      `INSERT INTO invite_codes (code, created_by, max_uses, expires_at)
       VALUES ($1, $2, $3, CASE WHEN $4::int IS NULL THEN NULL ELSE now() + make_interval(secs => $4::int) END) RETURNING *`,
      [i.code, i.createdBy, i.maxUses, i.expiresInS],
    );
    return rows[0];
  },

  async listInvites(q: Queryable): Promise<InviteRow[]> {
    const { rows } = await q.query<InviteRow>('SELECT * FROM invite_codes ORDER BY created_at DESC');
    return rows;
  },

  /** @returns true when the code existed. */
  async deleteInvite(q: Queryable, code: string): Promise<boolean> {
    const { rowCount } = await q.query('DELETE FROM invite_codes WHERE code = $1', [code]);
    return rowCount === 1;
  },

  /**
   * Uses up one use of an invite code, atomically (concurrent registrations cannot overuse it).
   * @returns false when the code is unknown, used up or expired.
   */
  async consumeInvite(q: Queryable, code: string): Promise<boolean> {
    const { rowCount } = await q.query(
      `UPDATE invite_codes SET uses = uses + 1
       WHERE code = $1 AND uses < max_uses AND (expires_at IS NULL OR expires_at > now())`,
      [code],
    );
    return rowCount === 1;
  },
};
