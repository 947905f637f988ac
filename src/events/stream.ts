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
import type { StoredEnvelopes } from './catalog.js';
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import { isDatabaseUnavailable, type Database, type Queryable } from '../db/database.js';
import type { NewRoomEvent, RoomEventOf, RoomEventType, WireRoomEvent } from './catalog.js';
import { LOCK_THEN_MEMBERSHIP_POSITION, eventsRepository, type FollowingWrite } from './events.repository.js';
import { streamEvent } from './wire.js';
import { Follower } from './follower.js';
import type { PubSub } from './pubsub.js';

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
    /** When the event was written, ms since the epoch (not sent to clients; bridged messages carry an older `created_at`). */
    written_ms: number;
  };
}[RoomEventType];

/** The events each `EventStream.write` transaction appended, by its client, so the commit can dispatch them. */
const appendedIn = new WeakMap<Queryable, StreamEvent[]>();

/**
 * Appends events inside the caller's transaction, in one statement under one acquisition of the
 * stream lock. Build them with the `roomEvents` constructors (events/catalog.ts). Inside
 * `EventStream.write` they are handed to this node's listeners right after the commit.
 * @param then a write of the caller's own table run in the same statement (`FollowingWrite`): the
 *   group commit stores its messages rows so, with their events' positions.
 * @returns their stream positions, in order.
 */
export async function appendRoomEvents(tx: Queryable, events: NewRoomEvent[], then?: FollowingWrite): Promise<number[]> {
  const positions = await eventsRepository.append(tx, events, then);
  const written_ms = Date.now();
  appendedIn.get(tx)?.push(
    ...events.map(
      (e, i) => streamEvent({ stream_position: positions[i], room_id: e.room_id, type: e.payload.type, notify_user_ids: e.notify_user_ids ?? [], written_ms }, e.payload),
    ),
  );
  return positions;
}

/** One event: see `appendRoomEvents`. @returns its stream position. */
export async function appendRoomEvent(tx: Queryable, event: NewRoomEvent): Promise<number> {
  return (await appendRoomEvents(tx, [event]))[0];
}

/**
 * Every event after `cursor`, in stream order, at most `limit`: the one read of the whole log that
 * every follower uses (the stream reader, the search indexer, the bridge pushers). Followers with an
 * `EventStream` at hand call its `readAfter`; this form serves those built without one (reindex).
 */
export function readAfter(q: Queryable, cursor: number, limit: number): Promise<StreamEvent[]> {
  return eventsRepository.readAfter(q, cursor, limit);
}

/**
 * After an edit, inside its transaction: the stored `message.new` at `streamPosition` takes the new
 * content, mentions and `edited_at`, so a resume shows the current version.
 */
export function editStoredMessage(tx: Queryable, streamPosition: number, e: { content: string; mentions: string[]; editedAt: Date; envelopes?: StoredEnvelopes }): Promise<void> {
  return eventsRepository.editStoredMessage(tx, streamPosition, e);
}

/**
 * After a redaction, inside its transaction: the stored `message.new` at `streamPosition` loses its
 * content, attachments and mentions (marked `deleted`), and its later `message.edited` events their
 * content, so a resume never replays what was redacted.
 */
export function redactStoredMessage(tx: Queryable, streamPosition: number): Promise<void> {
  return eventsRepository.redactStoredMessage(tx, streamPosition);
}

/** The wire form of a stream event: its payload plus `stream_position` (and `room_id`). */
export function toWire(event: StreamEvent): WireRoomEvent {
  return { ...event.payload, room_id: event.room_id, stream_position: event.stream_position };
}

export type StreamListener = (events: StreamEvent[]) => void;

export class EventStream {
  /** Names this node in its pokes, so it does not read again for its own writes. */
  private readonly nodeId = crypto.randomUUID();
  private cursor = 0;
  private readonly reader: Follower;
  private unsubscribe?: () => void;
  private readonly listeners = new Set<StreamListener>();

  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
    private readonly log: Logger,
  ) {
    this.reader = new Follower({ name: 'stream reader', log, step: () => this.readNext(), retry: { baseMs: 250, maxMs: 5_000 } });
  }

  /** Starts following the stream from its current end. */
  async start(): Promise<void> {
    this.cursor = await this.maxPosition();
    this.unsubscribe = this.pubsub.subscribe('stream', (poke: { node?: string }) => {
      if (poke?.node !== this.nodeId) this.reader.wake();
    });
  }

  stop(): void {
    this.unsubscribe?.();
    void this.reader.stop();
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
   * Runs `fn` in a transaction; after the commit, pokes the other nodes' readers and hands the
   * events `fn` appended to this node's listeners: the one way services write room events.
   * `fn` may run more than once (a transaction tried again after a transient failure).
   * @throws AppError DATABASE_UNAVAILABLE (see `Database.transaction`); then the reader is woken, in
   *   case the transaction committed after all.
   */
  write<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.transaction((tx) => fn(tx));
  }

  /**
   * `write`, with the stream lock taken at BEGIN (same round trip) and held to the commit, so no
   * other event commits in between; `fn` gets the position of the latest membership event
   * (`room.updated`, `room.deleted`) committed before it: a node whose stream reader has dispatched
   * that position knows every room's members, names and settings as they are for this transaction
   * (the group commit's membership cache, src/modules/rooms/membership-cache.ts).
   * @throws as `write`.
   */
  writeLocked<T>(fn: (tx: Queryable, membershipPosition: number) => Promise<T>): Promise<T> {
    return this.transaction((tx, first) => fn(tx, Number(first[0].membership_position)), LOCK_THEN_MEMBERSHIP_POSITION);
  }

  private async transaction<T>(fn: (tx: Queryable, first: { [column: string]: unknown }[]) => Promise<T>, first?: string): Promise<T> {
    let appended: StreamEvent[] = [];
    const result = await this.db.transaction(async (tx, firstRows) => {
      // A transaction tried again (src/db/database.ts) starts over: only the committed attempt's events count.
      appended = [];
      appendedIn.set(tx, appended);
      try {
        return await fn(tx, firstRows);
      } finally {
        appendedIn.delete(tx);
      }
    }, first).catch((err) => {
      if (isDatabaseUnavailable(err)) this.reader.wake();
      throw err;
    });
    if (appended.length) this.committed(appended);
    return result;
  }

  /**
   * After a commit of `events` (in stream order) on this node: pokes every other node's reader, and
   * hands the events to this node's listeners without reading them back when that provably skips
   * nothing: the reader is idle and they follow its cursor without a gap. The stream lock makes that
   * proof hold: positions below the first of them were drawn, committed or rolled back before it.
   * Otherwise (another node wrote in between, or the reader is busy) the reader reads from its cursor.
   * It is also woken when the pub/sub (Redis) is unreachable, so this node's sockets always get its
   * own writes.
   */
  private committed(events: StreamEvent[]): void {
    this.pubsub.publish('stream', { node: this.nodeId }).catch((err) => this.log.error({ err }, 'stream poke failed'));
    const follows = !this.reader.busy && events.every((e, i) => e.stream_position === this.cursor + 1 + i);
    if (!follows) return this.reader.wake();
    this.cursor = events[events.length - 1].stream_position;
    this.dispatch(events);
  }

  /** Reads whatever was committed past the cursor (e.g. after pokes may have been missed). */
  catchUp(): void {
    this.reader.wake();
  }

  /** Every event after `cursor`, in stream order (see `readAfter`). @param limit at most this many (default 500). */
  readAfter(cursor: number, limit = READ_BATCH): Promise<StreamEvent[]> {
    return readAfter(this.db, cursor, limit);
  }

  /**
   * Events after `since` in rooms `roomIds`, or addressed to `userId`, in stream order. With
   * `roomsLeft`, also the events of rooms `userId` was removed from, left, or saw deleted after
   * `since`, up to that event: what a socket of theirs would have received live (a resume).
   * @param limit at most this many (default 500).
   */
  readSince(since: number, roomIds: string[], userId: string, limit = READ_BATCH, opts: { roomsLeft?: boolean } = {}): Promise<StreamEvent[]> {
    return eventsRepository.readSince(this.db, since, roomIds, userId, limit, opts.roomsLeft ?? false);
  }

  maxPosition(): Promise<number> {
    return eventsRepository.maxPosition(this.db);
  }

  /** Reads one batch past the cursor and hands it to the listeners. @returns true when more may follow. */
  private async readNext(): Promise<boolean> {
    const rows = await this.readAfter(this.cursor, READ_BATCH);
    if (rows.length === 0) return false;
    this.cursor = rows[rows.length - 1].stream_position;
    this.dispatch(rows);
    return rows.length === READ_BATCH;
  }

  private dispatch(events: StreamEvent[]): void {
    for (const listener of this.listeners) {
      try {
        listener(events);
      } catch (err) {
        this.log.error({ err }, 'stream listener failed');
      }
    }
  }
}
