/**
 * `wait_for_messages`: a long poll on the room event stream. It subscribes to `hub.stream.onEvents`
 * before each read with `hub.stream.readSince`, so an event committed between the read and the wait
 * still wakes it; and it rereads when the user's room set changed during a read, so a cursor never
 * skips past a message of a room the user just joined (nor returns one of a room just left).
 */
import { AppError } from '../../errors.js';
import type { Hub } from '../../hub.js';
import type { StreamEvent } from '../../events/stream.js';
import type { MessageView } from '../messages/messages.view.js';

const READ_BATCH = 500;

export interface WaitOptions {
  /** Stream position to wait after; none: the current end of the stream (only new messages). */
  since?: number;
  /** Only this room (the caller must be a member). */
  roomId?: string;
  /** Longest wait, ms. */
  timeoutMs: number;
  /** Most messages returned. */
  limit: number;
  /** Include the user's own messages (default: only other users'). */
  includeOwn: boolean;
  /** Ends the wait early (client gone). */
  signal: AbortSignal;
}

export interface WaitResult {
  messages: MessageView[];
  /** Pass as `since` next time: everything up to here has been looked at. */
  next_since: number;
  timed_out: boolean;
}

/**
 * Agents never read or write an encrypted room's messages: the hub holds only ciphertext (docs/E2EE.md).
 * @throws AppError INVALID_ROOM, NOT_A_MEMBER, ROOM_ENCRYPTED (403).
 */
export async function requireUnencrypted(hub: Hub, userId: string, roomId: string): Promise<void> {
  const { room } = await hub.rooms.requireMember(hub.db, roomId, userId);
  if (room.encrypted) throw new AppError('ROOM_ENCRYPTED', 'This room is end-to-end encrypted; agent tools cannot read or send its messages');
}

/**
 * New messages in the user's rooms after `since`, oldest first, as soon as there is at least one, or
 * none once `timeoutMs` has passed. Redacted messages are skipped.
 * @throws AppError INVALID_ROOM (404), NOT_A_MEMBER (403) for `roomId`.
 */
export async function waitForMessages(hub: Hub, userId: string, opts: WaitOptions): Promise<WaitResult> {
  if (opts.roomId) await requireUnencrypted(hub, userId, opts.roomId);
  // Encrypted rooms are not the agents' (ROOM_ENCRYPTED above): their messages are left out.
  const roomIdsNow = async () => (await hub.rooms.roomIdsFor(userId, { unencrypted: true })).filter((id) => !opts.roomId || id === opts.roomId);
  const deadline = Date.now() + opts.timeoutMs;
  let since = opts.since ?? (await hub.stream.maxPosition());
  let roomIds = await roomIdsNow();
  let wake = () => {};
  const stopListening = hub.stream.onEvents((events) => {
    if (events.some((e) => e.type === 'room.updated' || (e.type === 'message.new' && roomIds.includes(e.room_id)))) wake();
  });
  try {
    for (;;) {
      const woken = new Promise<void>((resolve) => (wake = resolve));
      // roomsLeft: a room the user was removed from (or left) after `since` still yields its messages
      // up to the removal, as a socket resuming from `since` gets them.
      const events = await hub.stream.readSince(since, roomIds, userId, READ_BATCH, { roomsLeft: true });
      const after = await roomIdsNow();
      if (!sameSet(after, roomIds)) {
        roomIds = after;
        continue;
      }
      const messages: MessageView[] = [];
      for (const event of events) {
        since = event.stream_position;
        if (opts.roomId && event.room_id !== opts.roomId) continue;
        const message = newMessage(event);
        if (message && !message.deleted && (opts.includeOwn || message.user_id !== userId)) {
          messages.push(message);
          if (messages.length === opts.limit) break;
        }
      }
      if (messages.length > 0) return { messages, next_since: since, timed_out: false };
      if (events.length === READ_BATCH) continue;
      const left = deadline - Date.now();
      if (left <= 0 || opts.signal.aborted) return { messages, next_since: since, timed_out: true };
      await wakeOrTimeout(woken, left, opts.signal);
    }
  } finally {
    stopListening();
  }
}

function newMessage(event: StreamEvent): MessageView | null {
  if (event.type !== 'message.new') return null;
  return { ...event.payload.message, stream_position: event.stream_position };
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

/** Resolves on the first of: a wake-up, `ms` elapsed, the signal aborting. */
async function wakeOrTimeout(woken: Promise<void>, ms: number, signal: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  try {
    await Promise.race([
      woken,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
      new Promise<void>((resolve) => signal.addEventListener('abort', (onAbort = () => resolve()), { once: true })),
    ]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}
