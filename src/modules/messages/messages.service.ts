/**
 * Messages: send (idempotent per (user, txn_id), with attachments), history paging, edits with their
 * history, redaction, reactions, and receipts (delivered: first write to a recipient's socket; read:
 * cumulative per member and room).
 */
import crypto from 'node:crypto';
import type { Database, Queryable } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { PubSub } from '../../events/pubsub.js';
import { appendRoomEvent, editStoredMessage, redactStoredMessage, type EventStream } from '../../events/stream.js';
import { roomEvents, type MessageWire, type StoredEnvelopes } from '../../events/catalog.js';
import type { AttachmentsService } from '../attachments/attachments.service.js';
import { attachmentView } from '../attachments/attachments.view.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import type { Metrics } from '../../plugins/metrics.js';
import type { UsersService } from '../users/users.service.js';
import { matchEnvelopes, senderDeviceOf, type E2eeService, type EnvelopeIn } from '../e2ee/e2ee.service.js';
import { MessageWriter } from './message-writer.js';
import { assertCanRedact } from '../rooms/rooms.policy.js';
import { messagesRepository as repo, type MessageRow } from './messages.repository.js';
import { messageView, parseMentions, type MessageView, type SendInput } from './messages.view.js';

/** The delivery receipt sent to a message's sender, once, on `user:<sender>`. */
export interface DeliveredEvent {
  type: 'message.delivered';
  message_id: string;
  room_id: string;
  delivered_at: string;
}

/** What a send answers: the message, whether it was created now, and (federation) whether it is pending. */
type SendResult = { message: MessageView; created: boolean; pending?: boolean };

/**
 * Federation: forwards a send in a room hosted by another hub. Resolves once the send is queued to
 * the host (so sends are queued in the order of the calls), with `sent`, the send's answer to come;
 * null when this hub hosts the room.
 */
export type RemoteSender = (userId: string, roomId: string, input: SendInput, attachmentIds: string[]) => Promise<{ sent: Promise<SendResult> } | null>;

/** How long delivery receipts gather before they are written (ms): a sender's tick may come this much later. */
const DELIVERED_GATHER_MS = 20;

export class MessagesService {
  private remoteSender?: RemoteSender;
  /** Federation: per room, the routing of the latest send (sends of a room are routed in call order). */
  private readonly routing = new Map<string, Promise<void>>();
  /** Message ids known to be delivered already, so sockets do not ask the database again (bounded). */
  private readonly delivered = new Set<string>();
  /** Receipts waiting for the next INSERT: message id -> its sender and room. */
  private pendingDelivered = new Map<string, { user_id: string; room_id: string }>();
  /** The next write of receipts, not yet started: receipts that come meanwhile join it. */
  private deliveredFlush?: Promise<void>;
  /** The write of receipts in progress: one at a time. */
  private deliveredWriting: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Database,
    private readonly stream: EventStream,
    private readonly pubsub: PubSub,
    private readonly rooms: RoomsService,
    private readonly users: UsersService,
    private readonly attachments: AttachmentsService,
    private readonly metrics: Metrics,
    private readonly maxMessageBytes: number,
    /** Seconds after sending during which the sender may edit; 0: no limit. */
    private readonly editWindowS: number,
    private readonly e2ee: E2eeService,
  ) {
    this.writer = new MessageWriter(db, stream, rooms, attachments, e2ee);
  }

  private readonly writer: MessageWriter;

  /**
   * Sends a message, through this node's group commit (`MessageWriter`): it resolves once the message
   * is committed. With `txn_id`, repeating the call returns the first message and stores nothing.
   * @returns the message and whether it was created now.
   * @throws AppError MESSAGE_TOO_LARGE (413), VALIDATION_FAILED (400), INVALID_ROOM (404),
   *   NOT_A_MEMBER (403), INVALID_MESSAGE (404, `reply_to` not in this room), INVALID_ATTACHMENT
   *   (404, an attachment id unknown or not uploaded by the sender), CONFLICT (409, `txn_id` already
   *   used in another room).
   */
  async send(userId: string, roomId: string, input: SendInput): Promise<SendResult> {
    const attachmentIds = [...new Set(input.attachments ?? [])];
    // Encrypted sends carry no content (the batch checks the room and the envelopes).
    if (!input.envelopes && !input.sender_key) this.checkContent(input.content, attachmentIds.length > 0);
    const remote = this.remoteSender;
    if (!remote) return this.sendReplicated(userId, roomId, input);
    // A room another hub hosts: that hub orders the send (docs/FEDERATION.md). Finding the host takes
    // a query, so a room's sends are routed one after another, in call order: each is queued to the
    // host, or submitted to the group commit, before the next is routed, and sends pipelined on a
    // socket keep their frame order on every hub.
    const routed = (this.routing.get(roomId) ?? Promise.resolve()).then(
      async () => (await remote(userId, roomId, input, attachmentIds)) ?? { sent: this.sendReplicated(userId, roomId, input) },
    );
    const done = routed.then(
      () => undefined,
      () => undefined,
    );
    this.routing.set(roomId, done);
    void done.then(() => {
      if (this.routing.get(roomId) === done) this.routing.delete(roomId);
    });
    return (await routed).sent;
  }

  /**
   * Federation: routes sends in rooms another hub hosts to `sender`, which answers null for the
   * rooms of this hub.
   */
  routeRemoteSends(sender: RemoteSender): void {
    this.remoteSender = sender;
  }

  /** Writes a send here, whoever hosts the room: a local send, or federation applying the host's order. */
  async sendReplicated(userId: string, roomId: string, input: SendInput): Promise<SendResult> {
    // Submitted to the group commit at once, before any await (the order of the calls is kept).
    const attachmentIds = [...new Set(input.attachments ?? [])];
    const result = await this.writer.submit(userId, roomId, input, attachmentIds);
    if (result.created) this.metrics.messagesSent.inc();
    return result;
  }

  /**
   * A page of history, oldest first. `before`/`after` are message ids of this room; `since` is a
   * stream position (the page starts right after it, as `after` does).
   * @returns `{messages, has_more}`: has_more tells whether older (or, with `after`/`since`, newer) messages exist.
   * @throws AppError INVALID_ROOM, NOT_A_MEMBER, INVALID_MESSAGE.
   */
  async history(userId: string, roomId: string, opts: { before?: string; after?: string; since?: number; limit: number; deviceId?: string }) {
    await this.rooms.requireMember(this.db, roomId, userId);
    const anchor = async (id?: string) => {
      if (!id) return undefined;
      const m = await repo.findById(this.db, id);
      if (!m || m.room_id !== roomId) throw new AppError('INVALID_MESSAGE', 'Paging anchor is not a message of this room');
      return m.stream_position;
    };
    const after = opts.since ?? (await anchor(opts.after));
    const rows = await repo.page(this.db, roomId, { before: await anchor(opts.before), after, limit: opts.limit + 1 });
    const hasMore = rows.length > opts.limit;
    const page = hasMore ? (after !== undefined ? rows.slice(0, opts.limit) : rows.slice(1)) : rows;
    return { messages: page.map((m) => messageView(m, opts.deviceId)), has_more: hasMore };
  }

  /**
   * One message, for members of its room.
   * @throws AppError INVALID_MESSAGE (404), NOT_A_MEMBER (403).
   */
  async get(userId: string, messageId: string): Promise<MessageView> {
    const m = await repo.findById(this.db, messageId);
    if (!m) throw new AppError('INVALID_MESSAGE', 'Message not found');
    await this.rooms.requireMember(this.db, m.room_id, userId);
    return messageView(m);
  }

  /**
   * The message a user of bridge `bridgeId` (its bot or a ghost) posted with `remoteId`.
   * @throws AppError INVALID_MESSAGE (404) when there is none.
   */
  async getByRemoteId(bridgeId: string, remoteId: string): Promise<MessageView> {
    const m = await repo.findBridgedByRemoteId(this.db, bridgeId, remoteId);
    if (!m) throw new AppError('INVALID_MESSAGE', 'No message with that remote id');
    return messageView(m);
  }

  /**
   * Edits a message's content (its sender only, within `limits.edit_window_s` of sending, in a room
   * that allows edits). The replaced version is kept in the edit history, the stored `message.new` is
   * updated so a resume shows the current content, and `message.edited`
   * `{message_id, content, edited_at, editor_id}` is emitted (search indexes follow it). Mentions are
   * re-read from the new content. Setting the same content again changes nothing.
   * @returns the message as it now is.
   * @throws AppError INVALID_MESSAGE (404; also when redacted), NOT_A_MEMBER, FORBIDDEN (not the
   *   sender), EDITS_FORBIDDEN (403, room setting `allow_edits` off), EDIT_WINDOW_EXPIRED (403),
   *   MESSAGE_TOO_LARGE (413), VALIDATION_FAILED (400, empty content on a message without attachments).
   */
  async edit(userId: string, messageId: string, content: string, sealed: { deviceId?: string; envelopes?: EnvelopeIn[]; sender_key?: { body: string } } = {}): Promise<MessageView> {
    return this.stream.write(async (tx) => {
      await repo.lockMessage(tx, messageId);
      const m = await repo.findById(tx, messageId);
      if (!m) throw new AppError('INVALID_MESSAGE', 'Message not found');
      const { room } = await this.rooms.requireMember(tx, m.room_id, userId);
      if (m.user_id !== userId) throw new AppError('FORBIDDEN', 'Only the sender can edit a message');
      if (m.deleted_at) throw new AppError('INVALID_MESSAGE', 'Message was deleted');
      if (!room.allow_edits) throw new AppError('EDITS_FORBIDDEN', 'This room does not allow edits; delete and send again');
      if (room.encrypted) return this.editEncrypted(tx, m, userId, content, sealed);
      if (sealed.envelopes || sealed.sender_key) throw new AppError('VALIDATION_FAILED', 'envelopes and sender_key are for encrypted rooms only');
      if (this.editWindowS > 0 && Date.now() - m.created_at.getTime() > this.editWindowS * 1000) {
        throw new AppError('EDIT_WINDOW_EXPIRED', `Messages can be edited for ${this.editWindowS} s after sending`);
      }
      this.checkContent(content, (m.attachments ?? []).length > 0);
      if (content === m.content) return messageView(m);
      const editedAt = new Date();
      const mentions = await this.mentionsIn(tx, m.room_id, content);
      await repo.edit(tx, { id: messageId, previous: m.content, content, mentions, editorId: userId, editedAt });
      await editStoredMessage(tx, m.stream_position, { content, mentions, editedAt });
      await appendRoomEvent(tx, roomEvents.messageEdited(m.room_id, { message_id: messageId, content, edited_at: editedAt.toISOString(), editor_id: userId }));
      return messageView({ ...m, content, mentions, edited_at: editedAt });
    });
  }

  /**
   * An edit in an encrypted room: no content, new envelopes checked like a send's (docs/E2EE.md). The
   * envelopes replace the message's; `message.edited` carries them (each socket gets its own).
   * @throws AppError PLAINTEXT_IN_ENCRYPTED_ROOM (400), MISMATCHED_DEVICES (409), STALE_DEVICES (410), E2EE_DEVICE_REQUIRED (403).
   */
  private async editEncrypted(tx: Queryable, m: MessageRow, userId: string, content: string, sealed: { deviceId?: string; envelopes?: EnvelopeIn[]; sender_key?: { body: string } }) {
    if (content !== '') throw new AppError('PLAINTEXT_IN_ENCRYPTED_ROOM', 'This room is end-to-end encrypted: send envelopes, not content');
    if (sealed.envelopes && sealed.sender_key) throw new AppError('VALIDATION_FAILED', 'Send either envelopes or sender_key');
    const devices = (await this.e2ee.roomDevices(tx, [m.room_id])).get(m.room_id) ?? [];
    const envelopes: StoredEnvelopes = sealed.sender_key
      ? { '*': { sender_device_id: senderDeviceOf(devices, sealed.deviceId), type: 7, body: sealed.sender_key.body } }
      : matchEnvelopes(devices, sealed.deviceId, sealed.envelopes ?? []).envelopes;
    const editedAt = new Date();
    await repo.edit(tx, { id: m.id, previous: '', content: '', mentions: [], editorId: userId, editedAt, envelopes });
    await editStoredMessage(tx, m.stream_position, { content: '', mentions: [], editedAt, envelopes });
    await appendRoomEvent(tx, roomEvents.messageEdited(m.room_id, { message_id: m.id, content: '', edited_at: editedAt.toISOString(), editor_id: userId, envelopes }));
    return messageView({ ...m, edited_at: editedAt, envelopes }, sealed.deviceId);
  }

  /**
   * A message's versions, oldest first: the original (`edited_at` null, `editor_id` the sender), then
   * one per edit (`edited_at` when it was made, `editor_id` who made it); the last is the current one.
   * For members of its room.
   * @returns `{message_id, versions: [{content, edited_at, editor_id}]}`.
   * @throws AppError INVALID_MESSAGE (404; also when redacted: redaction removes the history), NOT_A_MEMBER (403).
   */
  async editHistory(userId: string, messageId: string) {
    const m = await repo.findById(this.db, messageId);
    if (!m) throw new AppError('INVALID_MESSAGE', 'Message not found');
    await this.rooms.requireMember(this.db, m.room_id, userId);
    if (m.deleted_at) throw new AppError('INVALID_MESSAGE', 'Message was deleted');
    const { content, edits } = await repo.editHistory(this.db, messageId);
    const contents = [...edits.map((e) => e.content), content];
    return {
      message_id: messageId,
      versions: contents.map((c, i) => ({
        content: c,
        edited_at: i === 0 ? null : new Date(edits[i - 1].edited_at).toISOString(),
        editor_id: i === 0 ? m.user_id : edits[i - 1].editor_id,
      })),
    };
  }

  /**
   * Redacts a message: content, mentions and reactions removed, a tombstone kept, `message.deleted`
   * emitted, and the stored `message.new` scrubbed. Sender or room admin. Redacting twice is a no-op.
   * @throws AppError INVALID_MESSAGE, NOT_A_MEMBER, FORBIDDEN.
   */
  async redact(userId: string, messageId: string): Promise<void> {
    await this.stream.write(async (tx) => {
      await repo.lockMessage(tx, messageId);
      const m = await repo.findById(tx, messageId);
      if (!m) throw new AppError('INVALID_MESSAGE', 'Message not found');
      const { role } = await this.rooms.requireMember(tx, m.room_id, userId);
      assertCanRedact(userId, m.user_id, role);
      if (m.deleted_at) return;
      await repo.redact(tx, messageId, userId);
      await this.attachments.unlinkMessage(tx, messageId);
      await redactStoredMessage(tx, m.stream_position);
      await appendRoomEvent(tx, roomEvents.messageDeleted(m.room_id, messageId, userId));
    });
  }

  /**
   * Adds or removes the caller's reaction `key` (an emoji or short text) on a message. Emits
   * `reaction.added` / `reaction.removed` with the new count only when something changed.
   * @returns the message's reaction count for that key.
   */
  async react(userId: string, messageId: string, key: string, add: boolean): Promise<{ key: string; count: number }> {
    return this.stream.write(async (tx) => {
      // Locked like edits and redactions: a reaction added while a redaction runs would outlive it.
      await repo.lockMessage(tx, messageId);
      const m = await repo.findById(tx, messageId);
      if (!m) throw new AppError('INVALID_MESSAGE', 'Message not found');
      await this.rooms.requireMember(tx, m.room_id, userId);
      if (m.deleted_at) throw new AppError('INVALID_MESSAGE', 'Message was deleted');
      const changed = add ? await repo.addReaction(tx, messageId, userId, key) : await repo.removeReaction(tx, messageId, userId, key);
      const count = await repo.reactionCount(tx, messageId, key);
      if (changed) {
        await appendRoomEvent(tx, roomEvents.reaction(m.room_id, add, { message_id: messageId, user_id: userId, key, count }));
      }
      return { key, count };
    });
  }

  /**
   * Read receipt, cumulative: marks `messageId` (default: the room's latest message) and everything
   * before it read. Emits `message.read` only when the receipt moves forward.
   * @returns the receipt now in force: `{room_id, message_id, read_at, moved}`; when it did not move,
   *   the earlier (newer) receipt, whose `message_id` may be null if the member only joined after it.
   * @throws AppError INVALID_ROOM, NOT_A_MEMBER, INVALID_MESSAGE (404, unknown or in another room).
   */
  async markRead(userId: string, roomId: string, messageId?: string) {
    return this.stream.write(async (tx) => {
      await this.rooms.requireMember(tx, roomId, userId);
      const target = messageId ? await repo.findById(tx, messageId) : await repo.latestMessage(tx, roomId);
      if (!target) {
        if (messageId) throw new AppError('INVALID_MESSAGE', 'Message not found');
        return { room_id: roomId, message_id: null, read_at: null, moved: false };
      }
      if ('room_id' in target && target.room_id !== roomId) throw new AppError('INVALID_MESSAGE', 'Message is not in this room');
      const readAt = await this.rooms.advanceReadReceipt(tx, roomId, userId, target.id, target.stream_position);
      if (!readAt) {
        // Already read up to there or further: answer with the receipt that stays in force.
        const current = await this.rooms.readReceipt(tx, roomId, userId);
        return { room_id: roomId, message_id: current.read_message_id, read_at: current.read_at?.toISOString() ?? null, moved: false };
      }
      await appendRoomEvent(tx, roomEvents.messageRead(roomId, { message_id: target.id, user_id: userId, read_at: readAt.toISOString() }));
      return { room_id: roomId, message_id: target.id, read_at: readAt.toISOString(), moved: true };
    });
  }

  /** Messages stored (deleted ones included). */
  count(): Promise<number> {
    return repo.count(this.db);
  }

  /** The room members `content` mentions; the member list is only read when there is a `<@` to resolve. */
  private async mentionsIn(tx: Queryable, roomId: string, content: string): Promise<string[]> {
    return content.includes('<@') ? parseMentions(content, new Set(await this.rooms.memberIds(tx, roomId))) : [];
  }

  /** @throws AppError MESSAGE_TOO_LARGE (413), VALIDATION_FAILED (400: empty without attachments). */
  private checkContent(content: string, hasAttachments: boolean): void {
    if (Buffer.byteLength(content, 'utf8') > this.maxMessageBytes) {
      throw new AppError('MESSAGE_TOO_LARGE', `Message content exceeds ${this.maxMessageBytes} bytes`);
    }
    if (content.trim() === '' && !hasAttachments) throw new AppError('VALIDATION_FAILED', 'Message content is empty');
  }

  /**
   * Records that a message reached a recipient's socket. The first time only, tells the sender with
   * `message.delivered` on `user:<sender>`. Receipts gather for `DELIVERED_GATHER_MS` (20 ms) and
   * are written one INSERT at a time: those that come while an INSERT runs go in the next one (a
   * resume replays thousands at once; at 1,000 messages/s a write per batch was among the
   * database's largest costs, and concurrent writes of the same table would only compete).
   * @param message a stored message: its id, sender and room.
   * @returns once this message's batch is stored and published.
   */
  markDelivered(message: { id: string; user_id: string; room_id: string }): Promise<void> {
    const messageId = message.id;
    if (this.delivered.has(messageId)) return Promise.resolve();
    // Claimed at once, so the other recipients' sockets (written in the same tick) skip it.
    if (this.delivered.size >= 10_000) this.delivered.clear();
    this.delivered.add(messageId);
    this.pendingDelivered.set(messageId, message);
    this.deliveredFlush ??= this.deliveredWriting
      .catch(() => undefined)
      .then(() => new Promise((resolve) => setTimeout(resolve, DELIVERED_GATHER_MS)))
      .then(() => (this.deliveredWriting = this.flushDelivered()));
    return this.deliveredFlush;
  }

  private async flushDelivered(): Promise<void> {
    const pending = this.pendingDelivered;
    this.pendingDelivered = new Map();
    this.deliveredFlush = undefined;
    const stored = await repo.markDelivered(this.db, [...pending.keys()]).catch((err) => {
      for (const id of pending.keys()) this.delivered.delete(id);
      throw err;
    });
    // What is left are first deliveries.
    for (const id of stored.repeats) pending.delete(id);
    const deliveredAt = stored.delivered_at.toISOString();
    await Promise.all(
      [...pending].map(([id, { user_id, room_id }]) => {
        const event: DeliveredEvent = { type: 'message.delivered', message_id: id, room_id, delivered_at: deliveredAt };
        return this.pubsub.publish(`user:${user_id}`, event);
      }),
    );
  }
}

