/**
 * (b) taken apart, on PostgreSQL: the same ten senders, one message outstanding each, without the
 * sockets, then without the hub. Both run in the bench's process against the hub's scratch database
 * while the hub under test sits idle, so the three figures of (b) can be read side by side:
 *
 * - `writerPerS`: a second hub node built in this process (`createHub`), its `MessagesService.send`
 *   called by ten loops, each awaiting its message's commit before sending the next (what a socket
 *   does with window 1): the group commit's rate with no socket, frame or fan-out;
 * - `sqlPerS`: the group commit's statements alone (src/modules/messages/message-writer.ts, a batch
 *   of new `txn_id`s in a room its membership cache holds: the stream lock and the latest membership
 *   event's position with BEGIN, the events and messages `INSERT`s in one statement, COMMIT, through
 *   the hub's own database layer), batch after batch of
 *   `batch` sends, from one connection with nothing else running: the database's rate for that
 *   batch shape. Ten senders with window 1 make batches of about five (two groups alternate: one
 *   commits while the other's acknowledgements go out and its next sends arrive).
 *
 * Messages per second are counted over `durationMs`; both write real rows into the scratch database.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import { loadConfig } from '../src/config/load.js';
import { openDatabase, type Queryable } from '../src/db/database.js';
import { roomEvents } from '../src/events/catalog.js';
import { LOCK_THEN_MEMBERSHIP_POSITION } from '../src/events/events.repository.js';
import { appendRoomEvents } from '../src/events/stream.js';
import { closeHub, createHub } from '../src/hub.js';
import { messagesRepository } from '../src/modules/messages/messages.repository.js';
import type { Session } from '../test/helpers/hub.js';

export interface WriterResult {
  writerPerS: number;
  sqlPerS: number;
  /** Sends per transaction in the `sqlPerS` run. */
  batch: number;
}

/**
 * @param hubConfig the data dir and database of the hub under test.
 * @param senders members of `roomId`, each sending in turn.
 * @param durationMs how long each of the two runs lasts, ms.
 */
export async function writerAlone(hubConfig: { dataDir: string; databaseUrl: string }, roomId: string, senders: Session[], durationMs: number, batch: number): Promise<WriterResult> {
  // The hub under test's data dir: its signing keys, as a second node of one cluster shares them.
  const config = loadConfig({ env: {}, loadDotEnv: false, cli: { data_dir: hubConfig.dataDir, 'database.url': hubConfig.databaseUrl } });
  const log = pino({ level: 'silent' });

  const hub = await createHub(config, await openDatabase(config, log), log);
  let writerPerS: number;
  try {
    let sent = 0;
    const started = performance.now();
    await Promise.all(
      senders.map(async (s, k) => {
        for (let i = 0; performance.now() - started < durationMs; i++) {
          await hub.messages.send(s.user.id, roomId, { content: `writer ${k}-${i}`, txn_id: `writer-${k}-${i}` });
          sent++;
        }
      }),
    );
    writerPerS = sent / ((performance.now() - started) / 1000);
  } finally {
    await closeHub(hub);
  }

  const db = await openDatabase(config, log);
  try {
    let sent = 0;
    const started = performance.now();
    for (let n = 0; performance.now() - started < durationMs; n++) {
      const sends = Array.from({ length: batch }, (_, i) => senders[(n * batch + i) % senders.length]).map((s, i) => ({
        user: s.user,
        txnId: `sql-${n}-${i}`,
      }));
      // As the group commit with its membership cache holding the room: the stream lock and the
      // latest membership event's position at BEGIN, then the write.
      await db.transaction(
        (tx) => writePlainMessages(tx, roomId, sends.map((s) => ({ user_id: s.user.id, user_name: s.user.name, content: `sql ${s.txnId}`, txn_id: s.txnId }))),
        LOCK_THEN_MEMBERSHIP_POSITION,
      );
      sent += batch;
    }
    return { writerPerS, sqlPerS: sent / ((performance.now() - started) / 1000), batch };
  } finally {
    await db.close();
  }
}

/**
 * Writes plain messages as the group commit does (their `message.new` events and their rows in one
 * statement), inside the caller's transaction; `created_at` is now. The bench's seeding uses it too.
 */
export async function writePlainMessages(tx: Queryable, roomId: string, sends: { user_id: string; user_name: string; content: string; txn_id: string | null }[]): Promise<void> {
  const createdAt = new Date().toISOString();
  const messages = sends.map((s) => ({
    id: crypto.randomUUID(),
    room_id: roomId,
    user_id: s.user_id,
    user_name: s.user_name,
    content: s.content,
    created_at: createdAt,
    edited_at: null,
    reply_to: null,
    attachments: [],
    mentions: [],
    reactions: [],
    delivered_at: null,
    deleted: false,
    encrypted: false,
    envelope: null,
  }));
  await appendRoomEvents(
    tx,
    messages.map((m) => roomEvents.messageNew(m)),
    messagesRepository.messagesAfter(
      messages.map((m, i) => ({ id: m.id, room_id: roomId, user_id: m.user_id, content: m.content, reply_to: null, mentions: [], txn_id: sends[i].txn_id, event_index: i, created_at: createdAt, remote_id: null })),
    ),
  );
}
