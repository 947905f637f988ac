/**
 * The room event stream: every persisted room event (message.new, message.edited, message.deleted,
 * message.read, reaction.added/removed, room.updated, room.deleted) gets a `stream_position` that only
 * grows.
 *
 * Writers append inside their own transaction through `appendRoomEvent`, which first takes one
 * transaction-scoped advisory lock: positions are therefore committed, and become visible, in
 * increasing order, so a reader that has seen position N can never later find a committed event below
 * N. That is what makes `GET /ws?since=N` lossless. (The price is that event writes are serialised
 * across the cluster; each holds the lock only for its short transaction.)
 *
 * Services write through `EventStream.write`, which pokes the readers after the commit: a poke on
 * the `stream` topic (and this node's reader directly). Each node's reader then reads everything past
 * its cursor, in order, and hands it to its listeners. The same
 * read serves resume (`readSince`), so live and resumed delivery see identical events.
 */
import type { Logger } from 'pino';
import type { Database, Queryable } from '../db/database.js';
import type { NewRoomEvent, RoomEventOf, RoomEventType, WireRoomEvent } from './catalog.js';
import { CoalescingRunner } from './coalescing-runner.js';
import type { PubSub } from './pubsub.js';

/** Any constant shared by all writers: the advisory lock that orders stream positions. */
export const STREAM_LOCK_KEY = 0x53574244;
const READ_BATCH = 500;

/**
 * A persisted room event as read from `room_events`: its position, room, recipients and typed
 * payload. `type` repeats `payload.type` (a column, so SQL can filter on it); narrowing on either
 * narrows the payload.
 */
export type StreamEvent = {
  [K in RoomEventType]: {
    stream_position: number;
    room_id: string;
    type: K;
    /** The event as sent to clients, minus `room_id` and `stream_position`. */
    payload: RoomEventOf<K>;
    /** Users to reach besides the room's current members (those just removed or who left). */
    notify_user_ids: string[];
    /** When the event was written (not sent to clients; bridged messages carry an older `created_at`). */
    created_at: Date;
  };
}[RoomEventType];

/**
 * Appends one event inside the caller's transaction (`EventStream.write` pokes the readers after the
 * commit). Build `event` with a `roomEvents` constructor (events/catalog.ts).
 * @returns the event's stream position.
 */
export async function appendRoomEvent(tx: Queryable, event: NewRoomEvent): Promise<number> {
  await tx.query('SELECT pg_advisory_xact_lock($1)', [STREAM_LOCK_KEY]);
  const { rows } = await tx.query<{ stream_position: number }>(
    `INSERT INTO room_events (room_id, type, payload, notify_user_ids)
     VALUES ($1, $2, $3, $4) RETURNING stream_position`,
    [event.room_id, event.payload.type, event.payload, event.notify_user_ids ?? []],
  );
  return rows[0].stream_position;
}

/** The wire form of a stream event: its payload plus `stream_position` (and `room_id`). */
export function toWire(event: StreamEvent): WireRoomEvent {
  return { ...event.payload, room_id: event.room_id, stream_position: event.stream_position };
}

export type StreamListener = (events: StreamEvent[]) => void;

export class EventStream {
  private cursor = 0;
  private readonly reader = new CoalescingRunner(() => this.readNew());
  private unsubscribe?: () => void;
  private readonly listeners = new Set<StreamListener>();

  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
    private readonly log: Logger,
  ) {}

  /** Starts following the stream from its current end. */
  async start(): Promise<void> {
    this.cursor = await this.maxPosition();
    this.unsubscribe = this.pubsub.subscribe('stream', () => this.reader.wake());
  }

  stop(): void {
    this.unsubscribe?.();
  }

  /** The highest position this node has read (and dispatched). */
  get position(): number {
    return this.cursor;
  }

  onEvents(listener: StreamListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `fn` in a transaction and pokes the stream readers after commit: the one way services write
   * room events.
   */
  async write<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const result = await this.db.transaction(fn);
    this.notify();
    return result;
  }

  /**
   * Tells every node's reader that new events are committed. This node's reader is woken directly
   * too, so its own sockets get its own writes even while the pub/sub (Redis) is unreachable.
   */
  notify(): void {
    this.reader.wake();
    this.pubsub.publish('stream', { at: Date.now() }).catch((err) => this.log.error({ err }, 'stream poke failed'));
  }

  /** Reads whatever was committed past the cursor (e.g. after pokes may have been missed). */
  catchUp(): void {
    this.reader.wake();
  }

  /**
   * Events after `since` in rooms `roomIds`, or addressed to `userId`, in stream order. With
   * `roomsLeft`, also the events of rooms `userId` was removed from, left, or saw deleted after
   * `since`, up to that event: what a socket of theirs would have received live (a resume).
   * @param limit at most this many (default 500).
   */
  async readSince(since: number, roomIds: string[], userId: string, limit = READ_BATCH, opts: { roomsLeft?: boolean } = {}): Promise<StreamEvent[]> {
    const { rows } = await this.db.query<StreamEvent>(
      `WITH left_rooms AS (
         SELECT room_id, max(stream_position) AS upto FROM room_events
         WHERE $5 AND stream_position > $1 AND $3::uuid = ANY(notify_user_ids) GROUP BY room_id
       )
       SELECT e.stream_position, e.room_id, e.type, e.payload, e.notify_user_ids, e.created_at
       FROM room_events e LEFT JOIN left_rooms l ON l.room_id = e.room_id
       WHERE e.stream_position > $1 AND (e.room_id = ANY($2::uuid[]) OR $3::uuid = ANY(e.notify_user_ids) OR e.stream_position < l.upto)
       ORDER BY e.stream_position LIMIT $4`,
      [since, roomIds, userId, limit, opts.roomsLeft ?? false],
    );
    return rows;
  }

  async maxPosition(): Promise<number> {
    const { rows } = await this.db.query<{ max: number | null }>('SELECT max(stream_position) AS max FROM room_events');
    return rows[0].max ?? 0;
  }

  /** Reads everything past the cursor, in batches, and hands it to the listeners in order. */
  private async readNew(): Promise<void> {
    try {
      for (;;) {
        const { rows } = await this.db.query<StreamEvent>(
          `SELECT stream_position, room_id, type, payload, notify_user_ids, created_at FROM room_events
           WHERE stream_position > $1 ORDER BY stream_position LIMIT $2`,
          [this.cursor, READ_BATCH],
        );
        if (rows.length === 0) return;
        this.cursor = rows[rows.length - 1].stream_position;
        for (const listener of this.listeners) {
          try {
            listener(rows);
          } catch (err) {
            this.log.error({ err }, 'stream listener failed');
          }
        }
        if (rows.length < READ_BATCH) return;
      }
    } catch (err) {
      this.log.error({ err }, 'stream read failed; retrying in 1 s');
      setTimeout(() => this.reader.wake(), 1000).unref();
    }
  }
}
