/** SQL for messages, reactions, edit history and delivery receipts: the only module that writes them. */
import type { Queryable } from '../../db/database.js';
import type { StoredEnvelopes } from '../../events/catalog.js';
import type { FollowingWrite } from '../../events/events.repository.js';
import { MESSAGE_ATTACHMENTS_SQL, type AttachmentRef } from '../attachments/attachments.repository.js';

export interface MessageRow {
  id: string;
  room_id: string;
  user_id: string;
  user_name: string;
  content: string;
  reply_to: string | null;
  mentions: string[];
  txn_id: string | null;
  /** Bridges: the remote network's message id. */
  remote_id: string | null;
  stream_position: number;
  created_at: Date;
  delivered_at: Date | null;
  deleted_at: Date | null;
  deleted_by: string | null;
  /** Last edit; null when never edited. Absent from queries that do not select it. */
  edited_at?: Date | null;
  reactions: { key: string; count: number; user_ids: string[] }[];
  /** In order. Absent from queries that do not select them. */
  attachments?: AttachmentRef[];
  /** Encrypted rooms: the envelopes by recipient session id (`"*"`: a sender-key ciphertext); null otherwise. */
  envelopes?: StoredEnvelopes | null;
}

/** One replaced version of a message (see `message_edits`). */
export interface EditRow {
  content: string;
  /** When this version was replaced. */
  edited_at: string;
  editor_id: string;
}

/**
 * The one projection of a message row (over `messages m JOIN users u`), in the shape `messageView`
 * takes: history, single reads, PostgreSQL search hits and the Meilisearch documents all select it.
 */
export const MESSAGE_COLUMNS = `m.id, m.room_id, m.user_id, u.name AS user_name, m.content, m.reply_to, m.mentions, m.txn_id, m.remote_id,
         m.stream_position, m.created_at, (SELECT d.delivered_at FROM message_deliveries d WHERE d.message_id = m.id) AS delivered_at, m.deleted_at, m.deleted_by, m.edited_at, m.envelopes,
         ${MESSAGE_ATTACHMENTS_SQL} AS attachments,
         COALESCE((SELECT json_agg(json_build_object('key', r.key, 'count', r.count, 'user_ids', r.user_ids) ORDER BY r.first)
                   FROM (SELECT key, count(*)::int AS count, array_agg(user_id ORDER BY created_at) AS user_ids, min(created_at) AS first
                         FROM reactions WHERE message_id = m.id GROUP BY key) r), '[]'::json) AS reactions`;

const SELECT_MESSAGE = `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id`;

/** A new message row (`created_at` ISO 8601), stored with its `message.new` event (`messagesAfter`). */
export interface MessageInsert {
  id: string;
  room_id: string;
  user_id: string;
  content: string;
  reply_to: string | null;
  mentions: string[];
  txn_id: string | null;
  /** Which of the events appended with it is its `message.new` (0: the first): its stream position is that event's. */
  event_index: number;
  created_at: string;
  remote_id: string | null;
  /** Encrypted rooms: the envelopes to store (`messages.envelopes`). */
  envelopes?: StoredEnvelopes | null;
}

export const messagesRepository = {
  /**
   * The INSERT of messages rows to run in the statement that appends their events
   * (`appendRoomEvents(tx, events, messagesRepository.messagesAfter(rows))`): one round trip for both.
   */
  messagesAfter(rows: MessageInsert[]): FollowingWrite {
    return (p) => ({
      sql: `INSERT INTO messages (id, room_id, user_id, content, reply_to, mentions, txn_id, stream_position, created_at, remote_id, envelopes)
       SELECT id, room_id, user_id, content, reply_to, mentions, txn_id, (SELECT min(stream_position) FROM appended) + event_index, created_at, remote_id, envelopes
       FROM jsonb_to_recordset($${p}::jsonb) AS t(id uuid, room_id uuid, user_id uuid, content text, reply_to uuid, mentions uuid[],
         txn_id text, event_index int, created_at timestamptz, remote_id text, envelopes jsonb)`,
      params: [JSON.stringify(rows)],
    });
  },

  /** Messages a user already sent with one of these `txn_id`s or `remote_id`s (nulls match nothing). */
  async findEarlier(q: Queryable, keys: { user_id: string; txn_id: string | null; remote_id: string | null }[]): Promise<MessageRow[]> {
    // One index look-up per key and kind (an OR in the join would scan the table).
    const { rows } = await q.query<MessageRow>(
      `${SELECT_MESSAGE}
       WHERE m.id IN (
         SELECT x.id FROM jsonb_to_recordset($1::jsonb) AS k(user_id uuid, txn_id text, remote_id text)
         CROSS JOIN LATERAL (
           SELECT id FROM messages WHERE user_id = k.user_id AND txn_id = k.txn_id
           UNION ALL SELECT id FROM messages WHERE user_id = k.user_id AND remote_id = k.remote_id
         ) x)`,
      [JSON.stringify(keys)],
    );
    return rows;
  },

  /** The room of each of these messages that exists: message id -> room id. */
  async roomsOf(q: Queryable, ids: string[]): Promise<Map<string, string>> {
    const { rows } = await q.query<{ id: string; room_id: string }>('SELECT id, room_id FROM messages WHERE id = ANY($1::uuid[])', [ids]);
    return new Map(rows.map((r) => [r.id, r.room_id]));
  },

  async findById(q: Queryable, id: string): Promise<MessageRow | null> {
    const { rows } = await q.query<MessageRow>(`${SELECT_MESSAGE} WHERE m.id = $1`, [id]);
    return rows[0] ?? null;
  },

  /** A message posted by any user (bot or ghost) of bridge `bridgeId` with this remote id. */
  async findBridgedByRemoteId(q: Queryable, bridgeId: string, remoteId: string): Promise<MessageRow | null> {
    const { rows } = await q.query<MessageRow>(`${SELECT_MESSAGE} WHERE u.bridge_id = $1 AND m.remote_id = $2 ORDER BY m.stream_position LIMIT 1`, [bridgeId, remoteId]);
    return rows[0] ?? null;
  },

  /**
   * A page of a room's history in stream order. `before`/`after` are stream positions (exclusive).
   * With `after` the page starts right after it; otherwise it ends right before `before` (or at the end).
   */
  async page(q: Queryable, roomId: string, opts: { before?: number; after?: number; limit: number }): Promise<MessageRow[]> {
    const ascending = opts.after !== undefined;
    const { rows } = await q.query<MessageRow>(
      `${SELECT_MESSAGE}
       WHERE m.room_id = $1 AND ($2::bigint IS NULL OR m.stream_position < $2) AND ($3::bigint IS NULL OR m.stream_position > $3)
       ORDER BY m.stream_position ${ascending ? 'ASC' : 'DESC'} LIMIT $4`,
      [roomId, opts.before ?? null, opts.after ?? null, opts.limit],
    );
    return ascending ? rows : rows.reverse();
  },

  /** Empties a message: content, mentions, reactions and edit history go (attachment links: attachments module). */
  async redact(q: Queryable, id: string, by: string): Promise<void> {
    // An encrypted message keeps `encrypted` (an empty envelope map) but loses its ciphertext.
    await q.query(
      `UPDATE messages SET content = '', mentions = '{}', edited_at = NULL, deleted_at = now(), deleted_by = $2,
         envelopes = CASE WHEN envelopes IS NULL THEN NULL ELSE '{}'::jsonb END WHERE id = $1`,
      [id, by],
    );
    await q.query('DELETE FROM reactions WHERE message_id = $1', [id]);
    await q.query('DELETE FROM message_edits WHERE message_id = $1', [id]);
  },

  /** Locks a message row until the transaction ends, so edits, redactions and reactions of it run one at a time. */
  async lockMessage(q: Queryable, id: string): Promise<void> {
    await q.query('SELECT 1 FROM messages WHERE id = $1 FOR NO KEY UPDATE', [id]);
  },

  /** Replaces the content: the old version goes to `message_edits`, the new one into the message. */
  /** `envelopes`: an encrypted message's new envelopes (the old ones are not kept: `message_edits` gets empty content). */
  async edit(q: Queryable, e: { id: string; previous: string; content: string; mentions: string[]; editorId: string; editedAt: Date; envelopes?: StoredEnvelopes }): Promise<void> {
    await q.query('INSERT INTO message_edits (message_id, content, edited_at, editor_id) VALUES ($1, $2, $3, $4)', [e.id, e.previous, e.editedAt, e.editorId]);
    await q.query('UPDATE messages SET content = $2, mentions = $3, edited_at = $4, envelopes = COALESCE($5::jsonb, envelopes) WHERE id = $1', [
      e.id, e.content, e.mentions, e.editedAt, e.envelopes ? JSON.stringify(e.envelopes) : null,
    ]);
  },

  /** The message's content now and its replaced versions, oldest first, read in one snapshot. */
  async editHistory(q: Queryable, id: string): Promise<{ content: string; edits: EditRow[] }> {
    const { rows } = await q.query(
      `SELECT m.content, COALESCE((SELECT json_agg(json_build_object('content', e.content, 'edited_at', e.edited_at, 'editor_id', e.editor_id) ORDER BY e.id)
                                   FROM message_edits e WHERE e.message_id = m.id), '[]'::json) AS edits
       FROM messages m WHERE m.id = $1`,
      [id],
    );
    return rows[0];
  },

  /** @returns true when the reaction was added (false: it was already there). */
  async addReaction(q: Queryable, messageId: string, userId: string, key: string): Promise<boolean> {
    const { rowCount } = await q.query('INSERT INTO reactions (message_id, user_id, key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [messageId, userId, key]);
    return rowCount === 1;
  },

  /** @returns true when a reaction was removed. */
  async removeReaction(q: Queryable, messageId: string, userId: string, key: string): Promise<boolean> {
    const { rowCount } = await q.query('DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND key = $3', [messageId, userId, key]);
    return rowCount === 1;
  },

  async reactionCount(q: Queryable, messageId: string, key: string): Promise<number> {
    const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM reactions WHERE message_id = $1 AND key = $2', [messageId, key]);
    return rows[0].n;
  },

  /**
   * Records first deliveries (`message_deliveries`, one narrow row per message, migration 0016), all
   * at the transaction's time. @param ids ids of stored messages, distinct.
   * @returns those of `ids` that were delivered before (usually none: the rest are firsts), and that
   *   time; one row, however many ids.
   */
  async markDelivered(q: Queryable, ids: string[]): Promise<{ repeats: string[]; delivered_at: Date }> {
    const { rows } = await q.query(
      `WITH firsts AS (
         INSERT INTO message_deliveries (message_id, delivered_at) SELECT id, now() FROM unnest($1::uuid[]) AS id
         ON CONFLICT DO NOTHING RETURNING message_id
       )
       SELECT coalesce((SELECT array_agg(id) FROM unnest($1::uuid[]) AS id WHERE id NOT IN (SELECT message_id FROM firsts)), '{}') AS repeats,
              now() AS delivered_at`,
      [ids],
    );
    return rows[0];
  },

  async latestMessage(q: Queryable, roomId: string): Promise<{ id: string; stream_position: number } | null> {
    const { rows } = await q.query('SELECT id, stream_position FROM messages WHERE room_id = $1 ORDER BY stream_position DESC LIMIT 1', [roomId]);
    return rows[0] ?? null;
  },

  /** Live (not redacted) messages by id, in no order (the search backends' documents and hits). */
  async findLiveByIds(q: Queryable, ids: string[]): Promise<MessageRow[]> {
    const { rows } = await q.query<MessageRow>(`${SELECT_MESSAGE} WHERE m.id = ANY($1::uuid[]) AND m.deleted_at IS NULL`, [ids]);
    return rows;
  },

  async count(q: Queryable): Promise<number> {
    const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM messages');
    return rows[0].n;
  },
};
