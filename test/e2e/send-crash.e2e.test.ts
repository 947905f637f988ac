/**
 * A hub SIGKILLed with a group commit in flight and restarted at once: no acknowledged message is
 * lost, and a client that resends everything with its txn_ids after the restart duplicates nothing.
 * The hub runs as `npm start` in a child process, on a PostgreSQL scratch database (DATABASE_URL)
 * and on the embedded PGlite in a data dir kept across the restart; on PGlite the restarted hub must
 * take the dead one's lock over at once (the first start succeeds, no wait for staleness).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, createScratchDatabase, register, type Session } from '../helpers/hub.js';
import { spawnHub, type SpawnedHub } from './spawn.js';

const MESSAGES = 1000;
const hasServer = Boolean(process.env.DATABASE_URL);
if (!hasServer) console.log('SKIPPED the send crash test on PostgreSQL: it needs DATABASE_URL.');

const backends = [
  { name: 'PostgreSQL', embedded: false, skip: !hasServer },
  { name: 'the embedded PGlite', embedded: true, skip: false },
];

describe.each(backends)('SIGKILL with sends in flight, on $name', ({ embedded, skip }) => {
  let scratch: { url: string; drop(): Promise<void> } | undefined;
  let dataDir: string;
  let toml: string;
  let hub: SpawnedHub;

  beforeAll(async () => {
    if (skip) return;
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-crash-'));
    if (!embedded) scratch = await createScratchDatabase(process.env.DATABASE_URL!);
    toml = [
      ...(scratch ? [`[database]\nurl = "${scratch.url}"`] : []),
      `[auth]\njwt_secret = "${crypto.randomBytes(32).toString('hex')}"`,
      '[rate_limits]\nws_frames_per_s = 0\nmessages_per_user_per_min = 0',
      '',
    ].join('\n');
    hub = await spawnHub({ toml, dataDir, timeoutMs: 90_000 });
  }, 120_000);
  afterAll(async () => {
    await hub?.stop();
    await scratch?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it.skipIf(skip)('loses no acknowledged message and stores each txn_id once after the client resends', async () => {
    const alice: Session = await register(hub.url, 'Alice');
    const bob: Session = await register(hub.url, 'Bob');
    const roomId = (await api(hub.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } })).body.id;
    const txn = (i: number) => `crash-${i}`;

    const a = await WsClient.connect(hub.wsUrl, alice.token);
    for (let i = 0; i < MESSAGES; i++) a.send({ type: 'message.send', room_id: roomId, content: `m${i}`, txn_id: txn(i) });
    // Kill it mid-burst, once part of it is acknowledged.
    await a.next('message.sent', (e) => e.txn_id === txn(150), 30_000);
    await hub.kill();
    const acked = new Map<string, string>(a.all('message.sent').map((e) => [e.txn_id, e.message_id]));
    expect(acked.size).toBeGreaterThan(150);
    expect(acked.size).toBeLessThan(MESSAGES);

    // Restarted at once, as a supervisor does: the first start must succeed.
    hub = await spawnHub({ toml, dataDir, timeoutMs: 90_000 });
    if (embedded) expect(hub.output()).toContain('took over the lock of the embedded database from a process that died');
    const again = await WsClient.connect(hub.wsUrl, alice.token);
    for (let i = 0; i < MESSAGES; i++) again.send({ type: 'message.send', room_id: roomId, content: `m${i}`, txn_id: txn(i) });
    const replies = [];
    for (let i = 0; i < MESSAGES; i++) replies.push(await again.nextOf(['message.sent', 'error'], 30_000));
    expect(replies.filter((r) => r.type === 'error')).toEqual([]);
    for (const r of replies) {
      // What was acknowledged before the crash is there, as the same message.
      if (acked.has(r.txn_id)) expect({ txn: r.txn_id, id: r.message_id, duplicate: r.duplicate }).toEqual({ txn: r.txn_id, id: acked.get(r.txn_id), duplicate: true });
    }

    const b = await WsClient.connect(hub.wsUrl, bob.token, { since: 0 });
    const seen = b.all('message.new').filter((e) => e.room_id === roomId).map((e) => e.message.content);
    expect(seen).toEqual(Array.from({ length: MESSAGES }, (_, i) => `m${i}`));
    for (const c of [a, again, b]) c.close();
  }, 180_000);
});
