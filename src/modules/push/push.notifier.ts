/**
 * The notifier: a follower of the room event log (src/events/follower.ts) with its cursor in
 * `push_cursor`. For each `message.new` it finds who should be told (the other member of a direct
 * room, the users a message mentions; never the sender), leaves out whoever has a socket open
 * anywhere in the cluster (PresenceService) and whoever muted the room, and queues one delivery per
 * subscription of the rest, in the same transaction that moves the cursor. So a notification is
 * queued once, whatever restarts, and two nodes never queue the same events (the cursor is checked
 * under a row lock). Events without anyone subscribed to notify only move the node's cursor, written
 * down within half a second (after a crash those few are looked at again); a decision that depended
 * on presence is written down at once. It takes the events this node's stream
 * hands over (EventStream.onEvents), and reads the log only when it is behind them (at start, or
 * after falling far behind). The sender (./push.sender.ts) takes it from there.
 *
 * Payloads never carry the content of an encrypted room (`room.encrypted`) nor of a message with an
 * E2EE `envelope`.
 */
import type { Logger } from 'pino';
import type { Database } from '../../db/database.js';
import { Follower } from '../../events/follower.js';
import type { EventStream, StreamEvent } from '../../events/stream.js';
import type { PresenceService } from '../presence/presence.service.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import { pushRepository as repo, type SubscriptionRow } from './push.repository.js';

const BATCH = 200;
/** Events kept from the stream's hand-over while the notifier is busy; beyond, they are read back. */
const MAX_HANDED = 500;
/** How soon a cursor moved without queueing anything is written down, ms. */
const PERSIST_MS = 500;
/**
 * How long events handed over gather before a step weighs them (ms): under load one step (one
 * read of the rooms' subscribed members) covers many write batches instead of one each. A push
 * notification is for someone away; 50 ms more does not matter to them.
 */
const GATHER_MS = 50;
/** Longest message text put in a notification, characters (Web Push payloads are at most ~4 KB). */
const MAX_BODY_CHARS = 1000;

/** What a notification says, before it is shaped for Web Push or a gateway (docs/PUSH.md). */
export interface Notification {
  reason: 'direct' | 'mention';
  room_id: string;
  room_name: string;
  room_type: 'direct' | 'group' | 'channel';
  message_id: string;
  sender_id: string;
  sender_name: string;
  /** The message text (shortened); absent for encrypted rooms. */
  body?: string;
  encrypted: boolean;
  stream_position: number;
  /** When the message was sent, ISO 8601. */
  created_at: string;
}

type MessageEvent = Extract<StreamEvent, { type: 'message.new' }>;
type RoomInfo = Awaited<ReturnType<RoomsService['get']>>;

export class PushNotifier {
  private readonly follower: Follower;
  private unsubscribe?: () => void;
  private gatherTimer?: NodeJS.Timeout;
  /** This node's position: every event up to it was handled (notifications queued, or none needed). */
  private cursor = 0;
  /** Events this node's stream dispatched, in order: every committed event after `coveredFrom`. */
  private handed: StreamEvent[] = [];
  private coveredFrom = 0;
  private persistTimer?: NodeJS.Timeout;

  constructor(
    private readonly db: Database,
    private readonly stream: EventStream,
    private readonly rooms: RoomsService,
    private readonly presence: PresenceService,
    log: Logger,
    /** Called after deliveries were queued. */
    private readonly queued: () => void,
  ) {
    this.follower = new Follower({ name: 'push notifier', log, step: () => this.step(), retry: { baseMs: 250, maxMs: 30_000 } });
  }

  /** Creates the cursor at the log's end on first start (no history is notified), then follows. */
  async start(): Promise<void> {
    await repo.ensureCursor(this.db, await this.stream.maxPosition());
    // From here on the stream hands over every event after its position: no need to read them back.
    this.coveredFrom = this.stream.position;
    this.unsubscribe = this.stream.onEvents((events) => this.onEvents(events));
    this.cursor = await repo.cursor(this.db);
    this.follower.wake();
  }

  /** Stops following and writes down how far it got. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    clearTimeout(this.gatherTimer);
    await this.follower.stop();
    clearTimeout(this.persistTimer);
    if (this.persistTimer) await repo.advanceCursor(this.db, this.cursor).catch(() => undefined);
    this.persistTimer = undefined;
  }

  private onEvents(events: StreamEvent[]): void {
    this.handed.push(...events);
    if (this.handed.length > MAX_HANDED) {
      // Fallen behind: forget the oldest, which will be read back from the database.
      const dropped = this.handed.splice(0, this.handed.length - MAX_HANDED);
      this.coveredFrom = dropped[dropped.length - 1].stream_position;
    }
    this.gatherTimer ??= setTimeout(() => {
      this.gatherTimer = undefined;
      this.follower.wake();
    }, GATHER_MS);
  }

  /** The next events after the cursor: those the stream handed over, or read from the log when it is behind them. */
  private async nextBatch(): Promise<StreamEvent[]> {
    if (this.cursor < this.coveredFrom) return this.stream.readAfter(this.cursor, BATCH);
    let done = 0;
    while (done < this.handed.length && this.handed[done].stream_position <= this.cursor) done++;
    this.handed.splice(0, done);
    return this.handed.slice(0, BATCH);
  }

  /**
   * Handles one batch past the cursor. A batch without anyone to notify only moves this node's
   * cursor (written down within PERSIST_MS); one where someone could have been notified but was
   * online or had muted the room moves the stored cursor at once. One with notifications is written in a transaction that locks
   * the stored cursor and moves it past the batch, unless another node got past this node's
   * cursor meanwhile (then this node takes that cursor and goes on from there).
   * @returns true when more may follow.
   */
  private async step(): Promise<boolean> {
    const rows = await this.nextBatch();
    if (rows.length === 0) return false;
    const end = rows[rows.length - 1].stream_position;
    const { deliveries, weighed } = await this.deliveriesOf(rows);
    if (deliveries.length === 0) {
      this.cursor = end;
      // Whom to notify depended on who was online: written down at once, so no node weighs it again later.
      if (weighed) await repo.advanceCursor(this.db, end);
      else this.persistSoon();
      return rows.length === BATCH;
    }
    const from = this.cursor;
    const ahead = await this.db.transaction(async (tx) => {
      const stored = await repo.lockCursor(tx);
      if (stored > from) return stored;
      await repo.insertDeliveries(tx, deliveries);
      await repo.advanceCursor(tx, end);
      return null;
    });
    if (ahead !== null) {
      this.cursor = ahead;
      return true;
    }
    this.cursor = end;
    this.queued();
    return rows.length === BATCH;
  }

  /** Writes this node's cursor down within PERSIST_MS (at most one write per interval). */
  private persistSoon(): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      repo.advanceCursor(this.db, this.cursor).catch(() => undefined);
    }, PERSIST_MS);
    this.persistTimer.unref();
  }

  /**
   * The deliveries a batch calls for; `weighed`: some message had someone to notify, so the answer
   * depended on presence and mutes at this moment.
   */
  private async deliveriesOf(rows: StreamEvent[]): Promise<{ deliveries: { subscription_id: string; stream_position: number; payload: Notification }[]; weighed: boolean }> {
    const messages = rows.filter((r): r is MessageEvent => r.type === 'message.new');
    if (messages.length === 0) return { deliveries: [], weighed: false };
    const subscribed = await repo.subscribedMembers(this.db, [...new Set(messages.map((m) => m.room_id))]);
    const roomCache = new Map<string, RoomInfo | null>();
    const deliveries: { subscription_id: string; stream_position: number; payload: Notification }[] = [];
    let weighed = false;
    for (const row of messages) {
      // Nobody in the room but (perhaps) the sender could be notified: nothing to work out.
      const candidates = subscribed.get(row.room_id);
      if (!candidates || (candidates.size === 1 && candidates.has(row.payload.message.user_id))) continue;
      weighed = true;
      deliveries.push(...(await this.deliveriesFor(row, roomCache)));
    }
    return { deliveries, weighed };
  }

  private async deliveriesFor(event: MessageEvent, roomCache: Map<string, RoomInfo | null>) {
    const { message } = event.payload;
    if (message.deleted) return [];
    if (!roomCache.has(event.room_id)) roomCache.set(event.room_id, await this.rooms.get(message.user_id, event.room_id).catch(() => null));
    const room = roomCache.get(event.room_id);
    if (!room) return []; // deleted meanwhile, or the sender is no longer in it
    const members = new Set(room.members.map((m) => m.user_id));
    const reasons = new Map<string, Notification['reason']>();
    if (room.type === 'direct') for (const id of members) reasons.set(id, 'direct');
    for (const id of message.mentions) if (members.has(id) && !reasons.has(id)) reasons.set(id, 'mention');
    reasons.delete(message.user_id);
    if (reasons.size === 0) return [];
    // Only users with no socket open on any node: the others see the message live.
    const away: string[] = [];
    for (const id of reasons.keys()) if (!(await this.presence.hasOpenSocket(id))) away.push(id);
    const targets: SubscriptionRow[] = await repo.targets(this.db, event.room_id, away);
    const encrypted = room.encrypted || message.encrypted;
    return targets.map((s) => ({
      subscription_id: s.id,
      stream_position: event.stream_position,
      payload: {
        reason: reasons.get(s.user_id)!,
        room_id: event.room_id,
        room_name: room.type === 'direct' ? '' : room.name,
        room_type: room.type,
        message_id: message.id,
        sender_id: message.user_id,
        sender_name: message.user_name,
        ...(encrypted ? {} : { body: bodyOf(message.content, message.attachments.length, room.members) }),
        encrypted,
        stream_position: event.stream_position,
        created_at: message.created_at,
      } satisfies Notification,
    }));
  }
}

/** The text of a notification: mentions as @names, shortened; "(attachment)" for a message with only files. */
function bodyOf(content: string, attachments: number, members: { user_id: string; name: string }[]): string {
  const text = content.replace(/<@([0-9a-f-]{36})>/gi, (whole, id: string) => `@${members.find((m) => m.user_id === id.toLowerCase())?.name ?? 'someone'}`);
  if (!text.trim() && attachments > 0) return attachments === 1 ? '(attachment)' : `(${attachments} attachments)`;
  return text.length > MAX_BODY_CHARS ? `${text.slice(0, MAX_BODY_CHARS - 1)}…` : text;
}
