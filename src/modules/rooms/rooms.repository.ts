/** SQL for rooms and their members. */
import type { Queryable } from '../../db/database.js';
import { containsPattern } from '../../db/like.js';
import type { Role, RoomType } from './rooms.policy.js';

export interface RoomRow {
  id: string;
  type: RoomType;
  name: string;
  topic: string;
  visibility: 'public' | 'private';
  /** Senders may edit their messages (otherwise only delete and resend). */
  allow_edits: boolean;
  /** End-to-end encrypted (docs/E2EE.md); never turned off. */
  encrypted: boolean;
  direct_key: string | null;
  created_by: string | null;
  created_at: Date;
  deleted_at: Date | null;
}

/** A room in the admins' list, with its member and message counts. */
export type RoomPageRow = RoomRow & { member_count: number; message_count: number };

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
    r: { type: RoomType; name: string; topic: string; visibility: string; directKey: string | null; createdBy: string; encrypted: boolean },
  ): Promise<RoomRow | null> {
    const { rows } = await q.query<RoomRow>(
      `INSERT INTO rooms (type, name, topic, visibility, direct_key, created_by, encrypted) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (direct_key) DO NOTHING RETURNING *`,
      [r.type, r.name, r.topic, r.visibility, r.directKey, r.createdBy, r.encrypted],
    );
    return rows[0] ?? null;
  },

  /** Creates or updates the copy of a room another hub hosts (federation), under the host's room id. */
  async upsertReplica(
    q: Queryable,
    r: { id: string; type: RoomType; name: string; topic: string; visibility: string; allow_edits: boolean; directKey: string | null },
  ): Promise<void> {
    await q.query(
      `INSERT INTO rooms (id, type, name, topic, visibility, allow_edits, direct_key) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, topic = EXCLUDED.topic, visibility = EXCLUDED.visibility, allow_edits = EXCLUDED.allow_edits`,
      [r.id, r.type, r.name, r.topic, r.visibility, r.allow_edits, r.directKey],
    );
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

  async updateRoom(q: Queryable, id: string, patch: { name?: string; topic?: string; visibility?: string; allow_edits?: boolean; encrypted?: boolean }): Promise<void> {
    await q.query(
      `UPDATE rooms SET name = COALESCE($2, name), topic = COALESCE($3, topic), visibility = COALESCE($4, visibility),
         allow_edits = COALESCE($5, allow_edits), encrypted = encrypted OR COALESCE($6, false) WHERE id = $1`,
      [id, patch.name ?? null, patch.topic ?? null, patch.visibility ?? null, patch.allow_edits ?? null, patch.encrypted ?? null],
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

  /** @param unencrypted only rooms that are not end-to-end encrypted (search). */
  async roomIdsForUser(q: Queryable, userId: string, unencrypted = false): Promise<string[]> {
    const { rows } = await q.query<{ room_id: string }>(
      unencrypted
        ? 'SELECT m.room_id FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1 AND NOT r.encrypted'
        : 'SELECT room_id FROM room_members WHERE user_id = $1',
      [userId],
    );
    return rows.map((r) => r.room_id);
  },

  /**
   * Rooms `ids` as the group commit checks sends against them (the membership cache's entries):
   * whether each is live and encrypted, and its members with their names. Unknown ids are absent.
   */
  async roomsForSends(q: Queryable, ids: string[]): Promise<{ id: string; live: boolean; encrypted: boolean; members: [string, string][] }[]> {
    const { rows } = await q.query<{ id: string; live: boolean; encrypted: boolean; members: [string, string][] }>(
      `SELECT r.id, r.deleted_at IS NULL AS live, r.encrypted,
         coalesce(json_agg(json_build_array(m.user_id, u.name)) FILTER (WHERE m.user_id IS NOT NULL), '[]') AS members
       FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id LEFT JOIN users u ON u.id = m.user_id
       WHERE r.id = ANY($1::uuid[]) GROUP BY r.id`,
      [ids],
    );
    return rows;
  },

  /** The member ids of each of `roomIds`: room id -> user ids. */
  async memberIdsOf(q: Queryable, roomIds: string[]): Promise<Map<string, string[]>> {
    const { rows } = await q.query<{ room_id: string; ids: string[] }>(
      'SELECT room_id, array_agg(user_id) AS ids FROM room_members WHERE room_id = ANY($1::uuid[]) GROUP BY room_id',
      [roomIds],
    );
    return new Map(rows.map((r) => [r.room_id, r.ids]));
  },

  async memberIds(q: Queryable, roomId: string): Promise<string[]> {
    const { rows } = await q.query<{ user_id: string }>('SELECT user_id FROM room_members WHERE room_id = $1', [roomId]);
    return rows.map((r) => r.user_id);
  },

  /** Everyone who shares a room with `userId`, and `userId`. */
  async coMemberIds(q: Queryable, userId: string): Promise<string[]> {
    const { rows } = await q.query<{ user_id: string }>(
      `SELECT DISTINCT b.user_id FROM room_members a JOIN room_members b ON a.room_id = b.room_id WHERE a.user_id = $1
       UNION SELECT $1::uuid`,
      [userId],
    );
    return rows.map((r) => r.user_id);
  },

  /** Those of `ids` that are `viewerId` or share a room with them. */
  async sharingARoomWith(q: Queryable, viewerId: string, ids: string[]): Promise<string[]> {
    const { rows } = await q.query<{ user_id: string }>(
      `SELECT DISTINCT b.user_id FROM room_members a JOIN room_members b ON a.room_id = b.room_id
       WHERE a.user_id = $1 AND b.user_id = ANY($2::uuid[])
       UNION SELECT $1::uuid WHERE $1::uuid = ANY($2::uuid[])`,
      [viewerId, ids],
    );
    return rows.map((r) => r.user_id);
  },

  /** Ids of the rooms where one of bridge `bridgeId`'s users (bot or ghost) is a member. */
  async roomIdsWithBridgeMembers(q: Queryable, bridgeId: string): Promise<string[]> {
    const { rows } = await q.query<{ room_id: string }>(
      'SELECT DISTINCT m.room_id FROM room_members m JOIN users u ON u.id = m.user_id WHERE u.bridge_id = $1',
      [bridgeId],
    );
    return rows.map((r) => r.room_id);
  },

  /** True when `userId` is a member of one of `roomIds`. */
  async isMemberOfAny(q: Queryable, userId: string, roomIds: string[]): Promise<boolean> {
    const { rows } = await q.query('SELECT 1 FROM room_members WHERE user_id = $1 AND room_id = ANY($2::uuid[]) LIMIT 1', [userId, roomIds]);
    return rows.length > 0;
  },

  /** Moves a member's read receipt forward to `position`. @returns the time when it moved, null when it was already there. */
  async advanceReadReceipt(q: Queryable, roomId: string, userId: string, messageId: string, position: number): Promise<Date | null> {
    const { rows } = await q.query<{ read_at: Date }>(
      `UPDATE room_members SET read_position = $4, read_message_id = $3, read_at = now()
       WHERE room_id = $1 AND user_id = $2 AND read_position < $4 RETURNING read_at`,
      [roomId, userId, messageId, position],
    );
    return rows[0]?.read_at ?? null;
  },

  /** A member's read receipt as it stands; both null when nothing was marked read yet. */
  async readReceipt(q: Queryable, roomId: string, userId: string): Promise<{ read_message_id: string | null; read_at: Date | null }> {
    const { rows } = await q.query('SELECT read_message_id, read_at FROM room_members WHERE room_id = $1 AND user_id = $2', [roomId, userId]);
    return rows[0];
  },

  /** The read receipts of a room's members who have read something, by stream position. */
  async readReceipts(q: Queryable, roomId: string): Promise<{ user_id: string; message_id: string; stream_position: number; read_at: Date }[]> {
    const { rows } = await q.query(
      `SELECT user_id, read_message_id AS message_id, read_position AS stream_position, read_at FROM room_members
       WHERE room_id = $1 AND read_message_id IS NOT NULL ORDER BY read_position`,
      [roomId],
    );
    return rows;
  },

  /** A page of live (not deleted) rooms for admins, newest first, optionally matching `q` in the name. */
  async page(q: Queryable, f: { q?: string; limit: number; offset: number }): Promise<{ rows: RoomPageRow[]; total: number }> {
    const where = `r.deleted_at IS NULL AND ($1::text IS NULL OR lower(r.name) LIKE $1)`;
    const pattern = f.q ? containsPattern(f.q) : null;
    const { rows } = await q.query<RoomPageRow>(
      `SELECT r.*,
         (SELECT count(*)::int FROM room_members m WHERE m.room_id = r.id) AS member_count,
         (SELECT count(*)::int FROM messages g WHERE g.room_id = r.id) AS message_count
       FROM rooms r WHERE ${where} ORDER BY r.created_at DESC, r.id LIMIT $2 OFFSET $3`,
      [pattern, f.limit, f.offset],
    );
    const count = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM rooms r WHERE ${where}`, [pattern]);
    return { rows, total: count.rows[0].n };
  },

  /** Rooms not deleted. */
  async count(q: Queryable): Promise<number> {
    const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM rooms WHERE deleted_at IS NULL');
    return rows[0].n;
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
