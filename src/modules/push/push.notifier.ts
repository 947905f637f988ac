/**
 * The notifier: a follower of the room event log (src/events/follower.ts) with its cursor in
 * `push_cursor`. For each `message.new` it finds who should be told (the other member of a direct
 * room, the users a message mentions; never the sender), leaves out whoever has a socket open
 * anywhere in the cluster (PresenceService) and whoever muted the room, and queues one delivery per
 * subscription of the rest, in the same transaction that moves the cursor. So a notification is
 * queued once, whatever restarts, and two nodes never queue the same events (the cursor is checked
 * under a row lock). The sender (./push.sender.ts) takes it from there.
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
    this.unsubscribe = this.stream.onEvents(() => this.follower.wake());
    this.follower.wake();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.follower.stop();
  }

  /** Resolves once no run is in progress (tests). */
  idle(): Promise<void> {
    return this.follower.idle();
  }

  /**
   * Queues the notifications of one batch past the cursor. The batch is read and turned into
   * deliveries first; the transaction then locks the cursor and writes them only if no other node
   * moved it meanwhile (else the batch is read again from where that node left it).
   * @returns true when more may follow.
   */
  private async step(): Promise<boolean> {
    const cursor = await repo.cursor(this.db);
    const rows = await this.stream.readAfter(cursor, BATCH);
    if (rows.length === 0) return false;
    const deliveries: { subscription_id: string; stream_position: number; payload: Notification }[] = [];
    const messages = rows.filter((r): r is MessageEvent => r.type === 'message.new');
    const subscribed = await repo.subscribedMembers(this.db, [...new Set(messages.map((m) => m.room_id))]);
    const roomCache = new Map<string, RoomInfo | null>();
    for (const row of messages) {
      // Nobody in the room but (perhaps) the sender could be notified: nothing to work out.
      const candidates = subscribed.get(row.room_id);
      if (!candidates || (candidates.size === 1 && candidates.has(row.payload.message.user_id))) continue;
      deliveries.push(...(await this.deliveriesFor(row, roomCache)));
    }
    const written = await this.db.transaction(async (tx) => {
      if ((await repo.lockCursor(tx)) !== cursor) return false;
      await repo.insertDeliveries(tx, deliveries);
      await repo.advanceCursor(tx, rows[rows.length - 1].stream_position);
      return true;
    });
    if (written && deliveries.length > 0) this.queued();
    return !written || rows.length === BATCH;
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
    const encrypted = (room as { encrypted?: boolean }).encrypted === true || 'envelope' in message;
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
