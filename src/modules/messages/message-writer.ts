/**
 * The group commit of sends: every `message.send` of this node (WebSocket, REST, agent tools, MCP,
 * bridges) is written by one writer, which takes everything waiting and writes it in one
 * transaction: the stream lock taken at BEGIN, memberships, sender names and room settings from
 * the node's membership cache (read through on a miss), one look-up each of the encrypted rooms'
 * member devices, reply targets and attachments (only when some send needs it), one statement that
 * inserts the events and the messages rows (multi-row), one commit (and one fsync). A batch of
 * plain sends in rooms the cache holds is three round trips: BEGIN with the lock, the write, COMMIT.
 *
 * - Repeated `txn_id`s / `remote_id`s: a batch assumes its keys are new and the unique indexes on
 *   `messages` check it; when one says a key was used before, the batch is written again with a
 *   look-up of the earlier uses first, whose sends are answered with the earlier message. (Keys
 *   repeated within one batch are matched before anything is written.)
 *
 * - No fixed delay: a lone send is written at once; batches form only from what arrives while a
 *   commit is in flight (and what arrives in the same tick).
 * - A send that breaks a rule (not a member, unknown reply target, someone else's attachment, a
 *   `txn_id` used in another room) fails alone, with its own error; its neighbours are written.
 * - A batch whose transaction fails (say a `txn_id` committed by another node meanwhile) is written
 *   again one send at a time, so whatever broke it fails alone too.
 * - Order: sends are written, and get stream positions, in the order they were submitted.
 * - Exact membership: the stream lock is held from BEGIN, and the cache is used only where it has
 *   applied the latest membership event committed before (src/modules/rooms/membership-cache.ts):
 *   a removal committed first refuses the send; one still uncommitted commits after the batch, and
 *   its `room.updated` orders after the sends.
 */
import crypto from 'node:crypto';
import { isDatabaseUnavailable, type Database, type Queryable } from '../../db/database.js';
import { roomEvents, type AttachmentWire, type MessageWire, type StoredEnvelopes } from '../../events/catalog.js';
import { appendRoomEvents, type EventStream } from '../../events/stream.js';
import { AppError } from '../../errors.js';
import type { AttachmentsService } from '../attachments/attachments.service.js';
import { matchEnvelopes, senderDeviceOf, type E2eeService, type RoomDevices } from '../e2ee/e2ee.service.js';
import { attachmentView } from '../attachments/attachments.view.js';
import type { RoomsService } from '../rooms/rooms.service.js';
import { messagesRepository as repo, type MessageRow } from './messages.repository.js';
import { messageView, parseMentions, type SendInput } from './messages.view.js';

/** Most sends in one transaction. */
const MAX_BATCH = 500;
/** libsignal's CiphertextMessageType.SenderKey: the envelope type of a sender-key message. */
const SENDER_KEY_TYPE = 7;

export interface SendResult {
  message: MessageWire;
  /** False when a send with the same `txn_id` (or `remote_id`) was written before: this is that message. */
  created: boolean;
}

interface PendingSend {
  userId: string;
  roomId: string;
  input: SendInput;
  /** Distinct attachment ids, in display order. */
  attachmentIds: string[];
  resolve(result: SendResult): void;
  reject(err: unknown): void;
}

/** What the batch decided for one send. */
type Outcome =
  | { kind: 'write'; message: MessageWire }
  | { kind: 'replay'; earlier: MessageRow }
  /** The same `txn_id`/`remote_id` as an earlier send of this batch: answered with that one's message. */
  | { kind: 'same-as'; first: PendingSend }
  | { kind: 'error'; err: AppError };

export class MessageWriter {
  private queue: PendingSend[] = [];
  private running = false;

  constructor(
    private readonly db: Database,
    private readonly stream: EventStream,
    private readonly rooms: RoomsService,
    private readonly attachments: AttachmentsService,
    private readonly e2ee: E2eeService,
  ) {}

  /**
   * Queues a send (content already checked by the caller) and resolves once it is committed.
   * @throws AppError INVALID_ROOM, NOT_A_MEMBER, INVALID_MESSAGE, INVALID_ATTACHMENT, CONFLICT (see
   *   `MessagesService.send`), DATABASE_UNAVAILABLE (503), or the database's error.
   */
  submit(userId: string, roomId: string, input: SendInput, attachmentIds: string[]): Promise<SendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ userId, roomId, input, attachmentIds, resolve, reject });
      if (!this.running) {
        this.running = true;
        // Sends submitted in this same tick (a burst read from one socket chunk) join the first batch.
        queueMicrotask(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length) await this.write(this.queue.splice(0, MAX_BATCH));
    } finally {
      this.running = false;
    }
  }

  /**
   * Writes a batch; if its transaction fails, writes its sends one at a time instead. A transient
   * database failure is retried by the transaction itself (src/db/database.ts: a batch tried again
   * starts over, and one found committed after a lost COMMIT counts as written, so nothing is written
   * twice). When the database stays unavailable, the batch and every send queued behind it fail with
   * DATABASE_UNAVAILABLE at once, so no send is written ahead of an earlier one that failed; clients
   * send them again with the same `txn_id`.
   * @returns the DATABASE_UNAVAILABLE error when the database was unavailable (the queue was failed), else null.
   */
  private async write(batch: PendingSend[]): Promise<unknown> {
    let outcomes: Map<PendingSend, Outcome>;
    try {
      outcomes = await this.stream.writeLocked((tx, membershipPosition) => this.writeBatch(tx, batch, membershipPosition, false)).catch((err) => {
        if (!isUniqueViolation(err) || !batch.some(hasKey)) throw err;
        return this.stream.writeLocked((tx, membershipPosition) => this.writeBatch(tx, batch, membershipPosition, true));
      });
    } catch (err) {
      if (isDatabaseUnavailable(err)) {
        for (const send of [...batch, ...this.queue.splice(0)]) send.reject(err);
        return err;
      }
      if (batch.length > 1) {
        for (const [i, send] of batch.entries()) {
          const gone = await this.write([send]);
          if (gone) {
            for (const later of batch.slice(i + 1)) later.reject(gone);
            return gone;
          }
        }
        return null;
      }
      await this.failed(batch[0], err);
      return null;
    }
    for (const send of batch) this.answer(send, outcomes.get(send)!, outcomes);
    return null;
  }

  /**
   * Checks the batch's rules with one query per kind of check, then writes what passed.
   * @param membershipPosition the latest membership event's position, read under the stream lock
   *   (`EventStream.writeLocked`): the membership cache is exact where it has reached it.
   * @param lookUpEarlier whether to read the earlier uses of the batch's `txn_id`s / `remote_id`s
   *   (else the unique indexes refuse a repeated one, and the caller writes the batch again with it).
   */
  private async writeBatch(tx: Queryable, batch: PendingSend[], membershipPosition: number, lookUpEarlier: boolean): Promise<Map<PendingSend, Outcome>> {
    const outcomes = new Map<PendingSend, Outcome>();
    const fail = (send: PendingSend, code: ConstructorParameters<typeof AppError>[0], message: string) => outcomes.set(send, { kind: 'error', err: new AppError(code, message) });
    const open = () => batch.filter((s) => !outcomes.has(s));

    // 1. A repeated txn_id / remote_id answers with the first message, as a single send always did first.
    const keyed = batch.filter(hasKey);
    if (keyed.length) {
      const earlier = lookUpEarlier
        ? await repo.findEarlier(tx, keyed.map((s) => ({ user_id: s.userId, txn_id: s.input.txn_id ?? null, remote_id: s.input.remote_id ?? null })))
        : [];
      const firstByKey = new Map<string, PendingSend>();
      for (const send of keyed) {
        const found = earlier.find(
          (m) => m.user_id === send.userId && ((send.input.txn_id && m.txn_id === send.input.txn_id) || (send.input.remote_id && m.remote_id === send.input.remote_id)),
        );
        if (found) {
          outcomes.set(send, { kind: 'replay', earlier: found });
          continue;
        }
        const keys = [send.input.txn_id && `t:${send.userId}:${send.input.txn_id}`, send.input.remote_id && `r:${send.userId}:${send.input.remote_id}`].filter(Boolean) as string[];
        const first = keys.map((k) => firstByKey.get(k)).find(Boolean);
        if (first) outcomes.set(send, { kind: 'same-as', first });
        else for (const k of keys) firstByKey.set(k, send);
      }
    }

    // 2. Membership, with the senders' names and the rooms' settings: from the membership cache
    // where it is exact for this transaction, else read (no SELECT at all for rooms it holds).
    const rooms = await this.rooms.roomsForSends(tx, [...new Set(open().map((s) => s.roomId))], membershipPosition);
    for (const send of open()) {
      const room = rooms.get(send.roomId);
      if (!room?.live) fail(send, 'INVALID_ROOM', 'Room not found');
      else if (!room.members.has(send.userId)) fail(send, 'NOT_A_MEMBER', 'You are not a member of this room');
    }

    // 2b. Encrypted rooms (one read of their member devices, only when the batch has some): no
    // plaintext, and envelopes that match the members' current E2EE devices, else the send fails
    // alone and nothing is stored.
    const sealed = new Map<PendingSend, StoredEnvelopes>();
    const encryptedRoomIds = [...new Set(open().filter((s) => rooms.get(s.roomId)!.encrypted).map((s) => s.roomId))];
    const encrypted = encryptedRoomIds.length ? await this.e2ee.roomDevices(tx, encryptedRoomIds) : new Map<string, RoomDevices>();
    for (const send of open()) {
      const devices = encrypted.get(send.roomId);
      const { envelopes, sender_key: senderKey } = send.input;
      if (!devices) {
        if (envelopes || senderKey) fail(send, 'VALIDATION_FAILED', 'envelopes and sender_key are for encrypted rooms only');
        continue;
      }
      if (send.input.content !== '') {
        fail(send, 'PLAINTEXT_IN_ENCRYPTED_ROOM', 'This room is end-to-end encrypted: send envelopes, not content');
        continue;
      }
      try {
        if (senderKey && envelopes) throw new AppError('VALIDATION_FAILED', 'Send either envelopes or sender_key');
        sealed.set(
          send,
          senderKey ? { '*': { sender_device_id: senderDeviceOf(devices, send.input.device_id), type: SENDER_KEY_TYPE, body: senderKey.body } } : matchEnvelopes(devices, send.input.device_id, envelopes ?? []).envelopes,
        );
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        outcomes.set(send, { kind: 'error', err });
      }
    }

    // 3. Reply targets must be messages of the same room.
    const replying = open().filter((s) => s.input.reply_to);
    if (replying.length) {
      const rooms = await repo.roomsOf(tx, [...new Set(replying.map((s) => s.input.reply_to!))]);
      for (const send of replying) {
        if (rooms.get(send.input.reply_to!) !== send.roomId) fail(send, 'INVALID_MESSAGE', 'reply_to is not a message of this room');
      }
    }

    // 4. Attachments must be the sender's own uploads.
    const attaching = open().filter((s) => s.attachmentIds.length);
    const owned = new Map<string, AttachmentWire>();
    if (attaching.length) {
      const rows = await this.attachments.findMany(tx, [...new Set(attaching.flatMap((s) => s.attachmentIds))]);
      for (const send of attaching) {
        const missing = send.attachmentIds.find((id) => rows.find((a) => a.id === id)?.uploader_id !== send.userId);
        if (missing) fail(send, 'INVALID_ATTACHMENT', `Unknown attachment: ${missing}`);
      }
      for (const a of rows) owned.set(a.id, attachmentView(a));
    }

    // 5. Write what passed, in submission order (mentions count only members of the room).
    const writing = open();
    if (writing.length === 0) return outcomes;
    const messages = writing.map((send): MessageWire => ({
      id: send.input.id ?? crypto.randomUUID(),
      room_id: send.roomId,
      user_id: send.userId,
      user_name: rooms.get(send.roomId)!.members.get(send.userId)!,
      content: send.input.content,
      created_at: new Date(send.input.ts ?? Date.now()).toISOString(),
      edited_at: null,
      reply_to: send.input.reply_to ?? null,
      attachments: send.attachmentIds.map((id) => owned.get(id)!),
      mentions: send.input.content.includes('<@') ? parseMentions(send.input.content, rooms.get(send.roomId)!.members) : [],
      reactions: [],
      stream_position: 0,
      delivered_at: null,
      deleted: false,
      encrypted: sealed.has(send),
      envelope: null,
    }));
    const positions = await appendRoomEvents(
      tx,
      messages.map(({ stream_position: _unset, ...m }, i) => roomEvents.messageNew(sealed.has(writing[i]) ? { ...m, envelopes: sealed.get(writing[i]) } : m)),
      repo.messagesAfter(
        writing.map((send, i) => ({
          id: messages[i].id,
          room_id: send.roomId,
          user_id: send.userId,
          content: send.input.content,
          reply_to: messages[i].reply_to,
          mentions: messages[i].mentions,
          txn_id: send.input.txn_id ?? null,
          event_index: i,
          created_at: messages[i].created_at,
          remote_id: send.input.remote_id ?? null,
          envelopes: sealed.get(send) ?? null,
        })),
      ),
    );
    messages.forEach((m, i) => (m.stream_position = positions[i]));
    const links = writing.flatMap((send, i) => (send.attachmentIds.length ? [{ message_id: messages[i].id, attachment_ids: send.attachmentIds }] : []));
    if (links.length) await this.attachments.linkToMessages(tx, links);
    writing.forEach((send, i) => outcomes.set(send, { kind: 'write', message: messages[i] }));
    return outcomes;
  }

  /** Answers one send from its batch's outcome (after the commit). */
  private answer(send: PendingSend, outcome: Outcome, outcomes: Map<PendingSend, Outcome>): void {
    try {
      switch (outcome.kind) {
        case 'write':
          return send.resolve({ message: outcome.message, created: true });
        case 'replay':
          return send.resolve(replayed(send.roomId, outcome.earlier.room_id, messageView(outcome.earlier)));
        case 'same-as': {
          const first = outcomes.get(outcome.first)!;
          if (first.kind !== 'write') return this.answer(send, first, outcomes);
          return send.resolve(replayed(send.roomId, first.message.room_id, first.message));
        }
        case 'error':
          return send.reject(outcome.err);
      }
    } catch (err) {
      send.reject(err);
    }
  }

  /**
   * A send written alone failed. A unique violation on its `txn_id`/`remote_id` means one committed
   * first (on another node): it answers with that message. Anything else is its error.
   */
  private async failed(send: PendingSend, err: unknown): Promise<void> {
    if (isUniqueViolation(err) && hasKey(send)) {
      const [earlier] = await repo.findEarlier(this.db, [{ user_id: send.userId, txn_id: send.input.txn_id ?? null, remote_id: send.input.remote_id ?? null }]).catch(() => []);
      if (earlier) return this.answer(send, { kind: 'replay', earlier }, new Map());
    }
    send.reject(err);
  }
}

/** Whether the send carries a `txn_id` or `remote_id`: a key the user may repeat. */
function hasKey(send: PendingSend): boolean {
  return Boolean(send.input.txn_id || send.input.remote_id);
}

/** A unique index refused the write (SQLSTATE 23505): here, a `txn_id` or `remote_id` used before. */
function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string })?.code === '23505';
}

/**
 * The answer to a send whose `txn_id` (or `remote_id`) the user already used: that message, if it
 * went to the same room.
 * @throws AppError CONFLICT (409) when it went to another room.
 */
function replayed(roomId: string, earlierRoomId: string, message: MessageWire): SendResult {
  if (earlierRoomId !== roomId) throw new AppError('CONFLICT', 'txn_id was already used for a message in another room');
  return { message, created: false };
}
