/**
 * `npm run bench`: figures for the Switchboard core, loopback only, bounded (stops by itself).
 *
 * 1. Startup: `npm start` on a fresh data dir with the embedded PGlite, spawn → "Switchboard listening".
 * 2. On an in-process hub (test/helpers/hub.ts: DATABASE_URL when set, else embedded PGlite):
 *    - memory: RSS and V8 heap of this process (after GC) before/after IDLE_SOCKETS idle WebSockets
 *      opened from a child process (KiB per socket, server side only);
 *    - round trip: alice sends over the WebSocket, one at a time; send → ack and send → bob's message.new;
 *    - throughput: N senders in one group room, each sending one at a time; stored (acked) and
 *      delivered (received by a reader) messages per second;
 *    - resume: bob reconnects with `?since=` after missing RESUME_EVENTS messages; time to `ready`.
 * Prints a table at the end. Timings are wall clock (performance.now), ms.
 */
import { fork } from 'node:child_process';
import crypto from 'node:crypto';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import WebSocket from 'ws';
import type { Hub } from '../src/hub.js';
import { messagesRepository } from '../src/modules/messages/messages.repository.js';
import { appendRoomEvents } from '../src/events/stream.js';
import { roomEvents } from '../src/events/catalog.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../test/helpers/hub.js';
import { spawnHub, type SpawnedHub } from '../test/e2e/spawn.js';

const ROUND_TRIPS = 500;
const SENDERS = 10;
const MESSAGES_PER_SENDER = 50;
const RESUME_EVENTS = 10_000;
/** Seeded messages per transaction. */
const SEED_BATCH = 1000;
const IDLE_SOCKETS = 500;
/** The whole run is aborted after this long, ms. */
const DEADLINE_MS = 240_000;

const rows: [string, string, string][] = [];
const row = (section: string, figure: string, value: string) => {
  rows.push([section, figure, value]);
  console.error(`  ${section} / ${figure}: ${value}`);
};
const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
const perSecond = (n: number, elapsedMs: number) => `${Math.round((n / elapsedMs) * 1000).toLocaleString('en-US')}/s`;

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function createRoom(base: string, owner: Session, body: Record<string, unknown>): Promise<string> {
  const res = await api(base, 'POST', '/api/rooms', { token: owner.token, body });
  if (res.status !== 201) throw new Error(`create room failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}

/**
 * Stores `count` messages from `sender` in a room, SEED_BATCH per transaction, through the one
 * sanctioned path for room events (`appendRoomEvent` inside `hub.stream.write`). Sending them one by
 * one through MessagesService.send is a transaction each, too slow on the embedded database for a
 * bounded run; the stored `message.new` payload has the same fields as a sent one.
 */
async function seedMessages(hub: Hub, roomId: string, sender: Session, count: number): Promise<void> {
  for (let from = 0; from < count; from += SEED_BATCH) {
    await hub.stream.write(async (tx) => {
      const messages = Array.from({ length: Math.min(count, from + SEED_BATCH) - from }, (_, k) => ({
        id: crypto.randomUUID(),
        room_id: roomId,
        user_id: sender.user.id,
        user_name: sender.user.name,
        content: `missed ${from + k}`,
        created_at: new Date().toISOString(),
        edited_at: null,
        reply_to: null,
        attachments: [],
        mentions: [],
        reactions: [],
        delivered_at: null,
        deleted: false,
      }));
      const positions = await appendRoomEvents(tx, messages.map((m) => roomEvents.messageNew(m)));
      await messagesRepository.insertMessages(
        tx,
        messages.map((m, i) => ({ id: m.id, room_id: roomId, user_id: m.user_id, content: m.content, reply_to: null, mentions: [], txn_id: null, stream_position: positions[i], created_at: m.created_at, remote_id: null })),
      );
    });
  }
}

/**
 * Connects with `?since=` and counts the room events replayed before `ready`, checking that their
 * positions only grow. (WsClient.connect gives `ready` only 5 s.)
 */
async function replayUntilReady(wsUrl: string, token: string, since: number): Promise<{ events: number; resumed: number }> {
  const socket = new WebSocket(`${wsUrl}/ws?since=${since}`, { headers: { authorization: `Bearer ${token}` } });
  try {
    return await new Promise((resolve, reject) => {
      let events = 0;
      let last = since;
      socket.on('message', (data) => {
        const e = JSON.parse(data.toString());
        if (e.type === 'ready') resolve({ events, resumed: e.resumed });
        if (typeof e.stream_position !== 'number' || e.type === 'ready') return;
        if (e.stream_position <= last) reject(new Error(`replay out of order: ${e.stream_position} after ${last}`));
        last = e.stream_position;
        events++;
      });
      socket.once('error', reject);
      socket.once('close', (code) => reject(new Error(`socket closed (${code}) before ready`)));
      setTimeout(() => reject(new Error('no ready after 120 s')), 120_000).unref();
    });
  } finally {
    socket.close();
  }
}

/** Full garbage collection (V8 flag set at run time), so memory figures compare live data only. */
const gc: () => void = (v8.setFlagsFromString('--expose-gc'), vm.runInNewContext('gc'));

/**
 * RSS and V8 heap in use, KiB, after full collections: repeated with pauses until RSS moves by less
 * than 256 KiB (V8 returns freed pages in the background), at most 5 rounds.
 */
async function memoryKiB(): Promise<{ rss: number; heap: number }> {
  let rss = Infinity;
  for (let round = 0; round < 5; round++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const previous = rss;
    rss = process.memoryUsage().rss / 1024;
    if (Math.abs(rss - previous) < 256) break;
  }
  return { rss, heap: process.memoryUsage().heapUsed / 1024 };
}

/**
 * Memory of idle sockets on the in-process hub: the clients run in a child process
 * (bench/idle-sockets.ts), so this process's RSS and heap grow by the server side only.
 */
async function benchIdleSockets(t: TestHub): Promise<void> {
  const user = await register(t.url, 'Idle');
  const warm = await WsClient.connect(t.wsUrl, user.token); // the user's first socket: presence row, code paths warmed
  const before = await memoryKiB();
  const child = fork(fileURLToPath(new URL('./idle-sockets.ts', import.meta.url)), [t.wsUrl, user.token, String(IDLE_SOCKETS)], { execArgv: ['--import', 'tsx'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const opened = await new Promise<number>((resolve, reject) => {
      child.once('message', (m: { opened: number }) => resolve(m.opened));
      child.once('exit', (code) => reject(new Error(`idle-sockets exited (${code}) before opening`)));
    });
    if (opened !== IDLE_SOCKETS || t.hub.fanout.connectionCount !== IDLE_SOCKETS + 1) throw new Error(`opened ${opened}, hub counts ${t.hub.fanout.connectionCount}`);
    const after = await memoryKiB();
    const section = `memory (${IDLE_SOCKETS} idle sockets, server side, after GC)`;
    row(section, 'RSS before → after', `${(before.rss / 1024).toFixed(1)} MiB → ${(after.rss / 1024).toFixed(1)} MiB`);
    row(section, 'per socket: RSS | V8 heap', `${((after.rss - before.rss) / IDLE_SOCKETS).toFixed(1)} KiB | ${((after.heap - before.heap) / IDLE_SOCKETS).toFixed(1)} KiB`);
    child.send('close');
  } finally {
    if (child.exitCode === null) child.kill();
    await exited;
    warm.close();
  }
}

/** The `npm start` child while it runs (the watchdog stops it). */
let spawned: SpawnedHub | null = null;

/** Startup time of `npm start` on a fresh data dir (embedded PGlite). */
async function benchStartup(): Promise<void> {
  console.error('spawning npm start (fresh data dir, embedded PGlite)…');
  spawned = await spawnHub({ timeoutMs: 120_000 });
  try {
    row('startup (npm start, embedded, fresh dir)', 'spawn → "Switchboard listening"', ms(spawned.startupMs));
    row('startup (npm start, embedded, fresh dir)', "hub's own startup_ms (db init, migrations, listen)", ms(spawned.hubStartupMs));
  } finally {
    await spawned.stop();
    spawned = null;
  }
}

/** Round trip, throughput and resume on an in-process hub. */
async function benchInProcess(): Promise<void> {
  const t = await startTestHub();
  try {
    const { rows: version } = await t.hub.db.query<{ server_version: string }>('SHOW server_version');
    const db = t.hub.db.embedded
      ? `embedded PGlite (PostgreSQL ${version[0].server_version})`
      : `PostgreSQL ${version[0].server_version} at ${new URL(process.env.DATABASE_URL!).host} (scratch database)`;
    console.error(`in-process hub on ${db}`);
    row('in-process hub', 'database', db);
    await benchIdleSockets(t);

    // Round trip: one message at a time.
    const alice = await register(t.url, 'Alice');
    const bob = await register(t.url, 'Bob');
    const direct = await createRoom(t.url, alice, { type: 'direct', members: [bob.user.id] });
    const a = await WsClient.connect(t.wsUrl, alice.token);
    const b = await WsClient.connect(t.wsUrl, bob.token);
    const ackTimes: number[] = [];
    const deliverTimes: number[] = [];
    let bobPosition = 0;
    for (let i = -20; i < ROUND_TRIPS; i++) {
      const txn = `rt-${i}`;
      const start = performance.now();
      a.send({ type: 'message.send', room_id: direct, content: `round trip ${i}`, txn_id: txn });
      const [ack, got] = await Promise.all([
        a.next('message.sent', (e) => e.txn_id === txn).then((e) => ((i >= 0 && ackTimes.push(performance.now() - start)), e)),
        b.next('message.new', (e) => e.message.content === `round trip ${i}`).then((e) => ((i >= 0 && deliverTimes.push(performance.now() - start)), e)),
      ]);
      if (got.message.id !== ack.message_id) throw new Error('round trip: wrong message');
      bobPosition = got.stream_position;
    }
    ackTimes.sort((x, y) => x - y);
    deliverTimes.sort((x, y) => x - y);
    const section = `round trip (${ROUND_TRIPS} msgs, one at a time)`;
    for (const p of [50, 95, 99]) row(section, `p${p} send → ack | send → bob's message.new`, `${ms(percentile(ackTimes, p))} | ${ms(percentile(deliverTimes, p))}`);

    // Throughput: SENDERS users in one group room, each sending one message at a time; a reader receives all.
    const reader = await register(t.url, 'Reader');
    const senders = await Promise.all(Array.from({ length: SENDERS }, (_, i) => register(t.url, `Sender${i}`)));
    const group = await createRoom(t.url, reader, { type: 'group', name: 'bench', members: senders.map((s) => s.user.id) });
    const readerWs = await WsClient.connect(t.wsUrl, reader.token);
    const senderWs = await Promise.all(senders.map((s) => WsClient.connect(t.wsUrl, s.token)));
    const total = SENDERS * MESSAGES_PER_SENDER;
    const start = performance.now();
    let storedAt = 0;
    const stored = Promise.all(
      senderWs.map(async (ws, s) => {
        for (let i = 0; i < MESSAGES_PER_SENDER; i++) {
          ws.send({ type: 'message.send', room_id: group, content: `load ${s}/${i}`, txn_id: `load-${i}` });
          await ws.next('message.sent', (e) => e.txn_id === `load-${i}`, 60_000);
        }
      }),
    ).then(() => (storedAt = performance.now() - start));
    for (let n = 0; n < total; n++) await readerWs.next('message.new', () => true, 60_000);
    const deliveredAt = performance.now() - start;
    await stored;
    const tput = `throughput (${SENDERS} senders × ${MESSAGES_PER_SENDER}, group of ${SENDERS + 1})`;
    row(tput, 'stored (acked)', `${perSecond(total, storedAt)} (${total} in ${ms(storedAt)})`);
    row(tput, 'delivered to the reader', `${perSecond(total, deliveredAt)} (socket writes: ${perSecond(total * (SENDERS + 1), deliveredAt)})`);
    for (const ws of [readerWs, ...senderWs]) ws.close();

    // Resume: bob misses RESUME_EVENTS messages, then reconnects with since.
    b.close();
    await b.waitClosed();
    a.close();
    console.error(`seeding ${RESUME_EVENTS} messages…`);
    const seedStart = performance.now();
    await seedMessages(t.hub, direct, alice, RESUME_EVENTS);
    const seedMs = performance.now() - seedStart;
    // Let this node's stream reader pass the backlog, so bob's socket gets it from the replay alone.
    const end = await t.hub.stream.maxPosition();
    while (t.hub.stream.position < end) await new Promise((resolve) => setTimeout(resolve, 10));
    const resumeStart = performance.now();
    const replay = await replayUntilReady(t.wsUrl, bob.token, bobPosition);
    const resumeMs = performance.now() - resumeStart;
    if (replay.events !== RESUME_EVENTS || replay.resumed !== RESUME_EVENTS) throw new Error(`resume: got ${replay.events} events, ready.resumed=${replay.resumed}`);
    const resume = `resume (${RESUME_EVENTS.toLocaleString('en-US')} missed events)`;
    row(resume, 'connect with since → ready', `${ms(resumeMs)} (${perSecond(RESUME_EVENTS, resumeMs)})`);
    row(resume, `seeding (appendRoomEvent + insert, ${SEED_BATCH} per transaction)`, `${ms(seedMs)} (${perSecond(RESUME_EVENTS, seedMs)})`);
  } finally {
    await t.close();
  }
}

function printTable(): void {
  const header: [string, string, string] = ['section', 'figure', 'value'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

const watchdog = setTimeout(() => {
  console.error(`bench: over ${DEADLINE_MS / 1000} s, aborting`);
  void (spawned?.stop(1000) ?? Promise.resolve()).finally(() => process.exit(1));
}, DEADLINE_MS).unref();

const began = performance.now();
console.error(`bench: node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
await benchStartup();
await benchInProcess();
clearTimeout(watchdog);
console.log(`\nSwitchboard bench (${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} CPUs, load average at end ${os.loadavg()[0].toFixed(2)}, took ${((performance.now() - began) / 1000).toFixed(0)} s)`);
printTable();
