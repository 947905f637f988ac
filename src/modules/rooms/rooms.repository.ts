/** SQL for rooms and their members. */
import type { Queryable } from '../../db/database.js';
import type { Role, RoomType } from './rooms.policy.js';

export interface RoomRow {
  id: string;
  type: RoomType;
  name: string;
  topic: string;
  visibility: 'public' | 'private';
  /** Senders may edit their messages (otherwise only delete and resend). */
  allow_edits: boolean;
  direct_key: string | null;
  created_by: string | null;
  created_at: Date;
  deleted_at: Date | null;
}

export interface MemberRow {
  user_id: string;
  name: string;
  avatar_url: string | null;
  role: Role;
  joined_at: Date;
}

export const roomsRepository = {
  /** @returns the new room, or null when a direct room with this key already exists. */
  async insertRoom(
    q: Queryable,
    r: { type: RoomType; name: string; topic: string; visibility: string; directKey: string | null; createdBy: string },
  ): Promise<RoomRow | null> {
    const { rows } = await q.query<RoomRow>(
      `INSERT INTO rooms (type, name, topic, visibility, direct_key, created_by) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (direct_key) DO NOTHING RETURNING *`,
      [r.type, r.name, r.topic, r.visibility, r.directKey, r.createdBy],
    );
    return rows[0] ?? null;
  },

  async findRoom(q: Queryable, id: string): Promise<RoomRow | null> {
    const { rows } = await q.query<RoomRow>('SELECT * FROM rooms WHERE id = $1 AND deleted_at IS NULL', [id]);
    return rows[0] ?? null;
  },

  /**
   * Locks a room row until the transaction ends, so changes to the room and its membership run one at
   * a time (sends and other member actions only share-lock their member row, see `getRole`).
   */
  async lockRoom(q: Queryable, id: string): Promise<void> {
    await q.query('SELECT 1 FROM rooms WHERE id = $1 FOR NO KEY UPDATE', [id]);
  },

  async findDirect(q: Queryable, key: string): Promise<RoomRow | null> {
    const { rows } = await q.query<RoomRow>('SELECT * FROM rooms WHERE direct_key = $1 AND deleted_at IS NULL', [key]);
    return rows[0] ?? null;
  },

  async updateRoom(q: Queryable, id: string, patch: { name?: string; topic?: string; visibility?: string; allow_edits?: boolean }): Promise<void> {
    await q.query(
      `UPDATE rooms SET name = COALESCE($2, name), topic = COALESCE($3, topic), visibility = COALESCE($4, visibility),
         allow_edits = COALESCE($5, allow_edits) WHERE id = $1`,
      [id, patch.name ?? null, patch.topic ?? null, patch.visibility ?? null, patch.allow_edits ?? null],
    );
  },

  /** Marks the room deleted and removes its members; a direct room frees its pair's key for a new one. */
  async softDeleteRoom(q: Queryable, id: string): Promise<void> {
    await q.query('UPDATE rooms SET deleted_at = now(), direct_key = NULL WHERE id = $1', [id]);
    await q.query('DELETE FROM room_members WHERE room_id = $1', [id]);
  },

  /** @returns true when the user was not yet a member. */
  async insertMember(q: Queryable, roomId: string, userId: string, role: Role): Promise<boolean> {
    const { rowCount } = await q.query(
      `INSERT INTO room_members (room_id, user_id, role, read_position)
       VALUES ($1, $2, $3, (SELECT COALESCE(max(stream_position), 0) FROM messages WHERE room_id = $1))
       ON CONFLICT DO NOTHING`,
      [roomId, userId, role],
    );
    return rowCount === 1;
  },

  async deleteMember(q: Queryable, roomId: string, userId: string): Promise<boolean> {
    const { rowCount } = await q.query('DELETE FROM room_members WHERE room_id = $1 AND user_id = $2', [roomId, userId]);
    return rowCount === 1;
  },

  async setRole(q: Queryable, roomId: string, userId: string, role: Role): Promise<void> {
    await q.query('UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2', [roomId, userId, role]);
  },

  /**
   * The member's role. Inside a transaction the member row stays key-share locked until it ends, so
   * a concurrent leave or removal waits for what the member is doing (a send, say), and a member
   * removed meanwhile reads as no member at all.
   */
  async getRole(q: Queryable, roomId: string, userId: string): Promise<Role | null> {
    const { rows } = await q.query<{ role: Role }>('SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2 FOR KEY SHARE', [roomId, userId]);
    return rows[0]?.role ?? null;
  },

  async listMembers(q: Queryable, roomId: string): Promise<MemberRow[]> {
    const { rows } = await q.query<MemberRow>(
      `SELECT m.user_id, u.name, u.avatar_url, m.role, m.joined_at FROM room_members m JOIN users u ON u.id = m.user_id
       WHERE m.room_id = $1 ORDER BY m.joined_at, m.user_id`,
      [roomId],
    );
    return rows;
  },

  async roomIdsForUser(q: Queryable, userId: string): Promise<string[]> {
    const { rows } = await q.query<{ room_id: string }>('SELECT room_id FROM room_members WHERE user_id = $1', [userId]);
    return rows.map((r) => r.room_id);
  },

  async existingUserIds(q: Queryable, ids: string[]): Promise<string[]> {
    const { rows } = await q.query<{ id: string }>('SELECT id FROM users WHERE id = ANY($1::uuid[]) AND deactivated_at IS NULL', [ids]);
    return rows.map((r) => r.id);
  },

  /** The caller's rooms with their last message and unread count, most recently active first. */
  async listRoomsForUser(q: Queryable, userId: string) {
    const { rows } = await q.query(
      `SELECT r.*, me.role, me.read_position,
         (SELECT count(*)::int FROM room_members c WHERE c.room_id = r.id) AS member_count,
         (SELECT count(*)::int FROM messages m
            WHERE m.room_id = r.id AND m.stream_position > me.read_position AND m.user_id <> $1 AND m.deleted_at IS NULL) AS unread_count,
         lm.id AS lm_id, lm.user_id AS lm_user_id, lu.name AS lm_user_name, lm.content AS lm_content,
         lm.created_at AS lm_created_at, lm.stream_position AS lm_stream_position, lm.deleted_at AS lm_deleted_at
       FROM room_members me
       JOIN rooms r ON r.id = me.room_id AND r.deleted_at IS NULL
       LEFT JOIN LATERAL (SELECT * FROM messages m WHERE m.room_id = r.id ORDER BY m.stream_position DESC LIMIT 1) lm ON true
       LEFT JOIN users lu ON lu.id = lm.user_id
       WHERE me.user_id = $1
       ORDER BY COALESCE(lm.created_at, r.created_at) DESC`,
      [userId],
    );
    return rows;
  },

  async listPublicChannels(q: Queryable, limit: number) {
    const { rows } = await q.query<RoomRow & { member_count: number }>(
      `SELECT r.*, (SELECT count(*)::int FROM room_members c WHERE c.room_id = r.id) AS member_count
       FROM rooms r WHERE r.type = 'channel' AND r.visibility = 'public' AND r.deleted_at IS NULL
       ORDER BY r.created_at DESC LIMIT $1`,
      [limit],
    );
    return rows;
  },
};
