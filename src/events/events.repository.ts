/**
 * SQL for `room_events`, the persisted event log: the only module that writes it. Positions come
 * from the table's sequence under one transaction-scoped advisory lock (see stream.ts for why).
 */
import type { StoredEnvelopes } from './catalog.js';
import type { Queryable } from '../db/database.js';
import type { NewRoomEvent } from './catalog.js';
import type { StreamEvent } from './stream.js';
import { streamEvent } from './wire.js';

/**
 * A write to run in the same statement as an append (`eventsRepository.append`): given the number
 * of its first parameter, its SQL and parameters.
 */
export type FollowingWrite = (firstParam: number) => { sql: string; params: unknown[] };

/** Any constant shared by all writers: the advisory lock that orders stream positions. */
export const STREAM_LOCK_KEY = 0x53574244;

/**
 * Membership events: `room.updated` (a room's members, their names and the room's settings, as they
 * now are) and `room.deleted`. Every change to `rooms` or `room_members`, and every rename of a
 * member, appends one in its transaction.
 */
export const MEMBERSHIP_EVENT_TYPES = ['room.updated', 'room.deleted'] as const;

/**
 * Two statements for `Database.transaction`'s `first`: take the stream lock, then (a statement of
 * its own, so its snapshot shows everything committed before the lock was granted) read the position
 * of the latest membership event, as `membership_position` (0 when there is none). Under the lock no
 * other event can commit until this transaction ends.
 */
export const LOCK_THEN_MEMBERSHIP_POSITION =
  `SELECT pg_advisory_xact_lock(${STREAM_LOCK_KEY}); ` +
  `SELECT coalesce(max(stream_position), 0) AS membership_position FROM room_events WHERE type IN (${MEMBERSHIP_EVENT_TYPES.map((t) => `'${t}'`).join(', ')})`;

/**
 * The columns of a `StreamEvent` of `room_events e` (an `EventRow`): the payload as its JSON text, so
 * that the wire form is made from it (events/wire.ts) rather than serialized again; `written_ms` is
 * a number, cheaper to read than a timestamp (a resume reads thousands).
 */
const COLUMNS = 'e.stream_position, e.room_id, e.type, e.payload::text AS payload_json, e.notify_user_ids, (extract(epoch FROM e.created_at) * 1000)::bigint AS written_ms';

type EventRow = Omit<StreamEvent, 'payload'> & { payload_json: string };

/** Stream events from `EventRow`s: each payload parsed, its text kept for the wire form. */
function fromRows(rows: EventRow[]): StreamEvent[] {
  return rows.map((r) => streamEvent(r, JSON.parse(r.payload_json), r.payload_json));
}

export const eventsRepository = {
  /**
   * Takes the stream lock (until the transaction ends) and inserts the events in one statement;
   * `then`, when given, is a second write run in that same statement (one round trip for both).
   * @param then builds the second write from the number of its first parameter: an
   *   `INSERT … SELECT` (or other data-modifying statement) that may read the positions just drawn
   *   as `SELECT min(stream_position) FROM appended` (they are consecutive).
   * @returns their positions, in the order of `events` (consecutive, increasing: under the lock no
   *   other writer draws from the sequence).
   * @throws Error when the positions drawn are not consecutive (the transaction must not commit).
   */
  async append(tx: Queryable, events: NewRoomEvent[], then?: FollowingWrite): Promise<number[]> {
    const rows = events.map((e) => ({ room_id: e.room_id, type: e.payload.type, payload: e.payload, notify_user_ids: e.notify_user_ids ?? [] }));
    const following = then?.(3);
    // The lock is a materialized CTE joined to the rows, so it is taken before the first row is
    // formed, and so before any position is drawn from the sequence. A data-modifying CTE runs to
    // completion whether or not the main query reads it.
    const { rows: inserted } = await tx.query<{ stream_position: number }>(
      `WITH stream_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock($2)),
       appended AS (
         INSERT INTO room_events (room_id, type, payload, notify_user_ids)
         SELECT t.room_id, t.type, t.payload, t.notify_user_ids
         FROM stream_lock, jsonb_to_recordset($1::jsonb) AS t(room_id uuid, type text, payload jsonb, notify_user_ids uuid[])
         RETURNING stream_position
       )${following ? `, following AS (${following.sql})` : ''}
       SELECT stream_position FROM appended`,
      [JSON.stringify(rows), STREAM_LOCK_KEY, ...(following?.params ?? [])],
    );
    // The sequence is drawn in the order of the rows scanned, so sorting restores the input order
    // whatever order RETURNING lists them in.
    const positions = inserted.map((r) => r.stream_position).sort((a, b) => a - b);
    if (positions.length && positions[positions.length - 1] - positions[0] !== positions.length - 1) throw new Error(`stream positions not consecutive: ${positions[0]}…${positions[positions.length - 1]} for ${positions.length} events`);
    return positions;
  },

  /** Every event after `cursor`, in stream order, at most `limit`. */
  async readAfter(q: Queryable, cursor: number, limit: number): Promise<StreamEvent[]> {
    const { rows } = await q.query<EventRow>(`SELECT ${COLUMNS} FROM room_events e WHERE e.stream_position > $1 ORDER BY e.stream_position LIMIT $2`, [cursor, limit]);
    return fromRows(rows);
  },

  /**
   * Events after `since` in rooms `roomIds`, or naming `userId` in `notify_user_ids`, in stream order.
   * With `roomsLeft`, also the events of rooms `userId` was named in after `since` (removed, left,
   * deleted), up to that event; those are found through the partial GIN index on `notify_user_ids`
   * (migration 0008), not by scanning the log after `since`.
   */
  async readSince(q: Queryable, since: number, roomIds: string[], userId: string, limit: number, roomsLeft: boolean): Promise<StreamEvent[]> {
    const { rows } = await q.query<EventRow>(
      `WITH left_rooms AS (
         SELECT room_id, max(stream_position) AS upto FROM room_events
         WHERE $5 AND stream_position > $1 AND cardinality(notify_user_ids) > 0 AND notify_user_ids @> ARRAY[$3::uuid] GROUP BY room_id
       )
       SELECT ${COLUMNS}
       FROM room_events e LEFT JOIN left_rooms l ON l.room_id = e.room_id
       WHERE e.stream_position > $1 AND (e.room_id = ANY($2::uuid[]) OR $3::uuid = ANY(e.notify_user_ids) OR e.stream_position < l.upto)
       ORDER BY e.stream_position LIMIT $4`,
      [since, roomIds, userId, limit, roomsLeft],
    );
    return fromRows(rows);
  },

  async maxPosition(q: Queryable): Promise<number> {
    const { rows } = await q.query<{ max: number | null }>('SELECT max(stream_position) AS max FROM room_events');
    return rows[0].max ?? 0;
  },

  /** Puts edited content into the stored `message.new` at `streamPosition`, so a resume shows the current version. */
  async editStoredMessage(q: Queryable, streamPosition: number, e: { content: string; mentions: string[]; editedAt: Date; envelopes?: StoredEnvelopes }): Promise<void> {
    await q.query(
      `UPDATE room_events SET payload = jsonb_set(jsonb_set(jsonb_set(payload, '{message,content}', to_jsonb($2::text)),
         '{message,mentions}', to_jsonb($3::uuid[])), '{message,edited_at}', to_jsonb($4::text))
       WHERE stream_position = $1`,
      [streamPosition, e.content, e.mentions, e.editedAt.toISOString()],
    );
    // An encrypted message: the new envelopes replace the old.
    if (e.envelopes) await q.query(`UPDATE room_events SET payload = jsonb_set(payload, '{message,envelopes}', $2::jsonb) WHERE stream_position = $1`, [streamPosition, JSON.stringify(e.envelopes)]);
  },

  /**
   * Scrubs a redacted message from the log: the content (and attachments, mentions) of its stored
   * `message.new` at `streamPosition`, and the content of its later `message.edited` events, so a
   * resume never replays them.
   */
  async redactStoredMessage(q: Queryable, streamPosition: number): Promise<void> {
    await q.query(
      `UPDATE room_events
       SET payload = payload || jsonb_build_object('message', payload->'message'
             || '{"content": "", "attachments": [], "mentions": [], "edited_at": null, "deleted": true}'::jsonb
             -- an encrypted message's ciphertext goes too
             || CASE WHEN payload->'message' ? 'envelopes' THEN '{"envelopes": {}}'::jsonb ELSE '{}'::jsonb END)
       WHERE stream_position = $1`,
      [streamPosition],
    );
    await q.query(
      `UPDATE room_events e SET payload = jsonb_set(e.payload, '{content}', '""')
       FROM room_events n
       WHERE n.stream_position = $1 AND e.room_id = n.room_id AND e.stream_position > $1
         AND e.type = 'message.edited' AND e.payload->>'message_id' = n.payload->'message'->>'id'`,
      [streamPosition],
    );
  },
};
