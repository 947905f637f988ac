/**
 * The hub survives losing its PostgreSQL connections (docs/OPERATIONS.md, "During a database outage"):
 * - backends terminated (`pg_terminate_backend`, what a restart, a failover or a proxy does) in the
 *   middle of a burst of sends: the hub stays up, and after the client sends the failed ones again
 *   with the same txn_id, every message is stored once, in order;
 * - a 3 s outage (`ALLOW_CONNECTIONS false` and the backends terminated): REST answers 503
 *   DATABASE_UNAVAILABLE, WebSocket sends get `error` DATABASE_UNAVAILABLE with their txn_id, /readyz
 *   503; once connections are allowed again everything recovers by itself.
 * Needs PostgreSQL (DATABASE_URL): terminating backends is a server's affair.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

const hasServer = Boolean(process.env.DATABASE_URL);
if (!hasServer) console.log('SKIPPED the database loss fault tests: they need PostgreSQL (DATABASE_URL).');

/** Resolves once `cond()` holds (checked every 5 ms). @throws after `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe.skipIf(!hasServer)('losing the database', () => {
  let t: TestHub;
  let admin: pg.Client;
  let dbName: string;
  let alice: Session;
  let bob: Session;
  let roomId: string;

  /** Terminates every backend of the hub's database. @returns how many. */
  async function terminateBackends(): Promise<number> {
    const { rowCount } = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [dbName]);
    return rowCount ?? 0;
  }

  /** The txn_ids of the room's messages, in stream order (what is stored). */
  async function storedTxnIds(): Promise<string[]> {
    const c = new pg.Client({ connectionString: t.config.database.url });
    await c.connect();
    try {
      const { rows } = await c.query('SELECT txn_id FROM messages WHERE room_id = $1 ORDER BY stream_position', [roomId]);
      return rows.map((r) => r.txn_id);
    } finally {
      await c.end();
    }
  }

  /**
   * Sends `txns` over `ws` back to back and collects one reply per send.
   * @returns the replies in frame order (`message.sent` or `error`).
   */
  async function burst(ws: WsClient, txns: string[], during?: () => Promise<void>): Promise<any[]> {
    for (const txn of txns) ws.send({ type: 'message.send', room_id: roomId, content: txn, txn_id: txn });
    await during?.();
    const replies = [];
    for (let i = 0; i < txns.length; i++) replies.push(await ws.nextOf(['message.sent', 'error'], 20_000));
    return replies;
  }

  beforeAll(async () => {
    t = await startTestHub({ rate_limits: { ws_frames_per_s: 0, messages_per_user_per_min: 0 } });
    dbName = new URL(t.config.database.url).pathname.slice(1);
    admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    alice = await register(t.url, 'Alice');
    bob = await register(t.url, 'Bob');
    roomId = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } })).body.id;
  }, 60_000);
  afterAll(async () => {
    await admin?.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`).catch(() => undefined);
    await admin?.end();
    await t?.close();
  });

  it('stays up when its backends are terminated mid-burst, and stores every message once, in order, after resends', async () => {
    const a = await WsClient.connect(t.wsUrl, alice.token);
    const b = await WsClient.connect(t.wsUrl, bob.token);
    const expected: string[] = [];
    let terminated = 0;
    for (let round = 0; round < 4; round++) {
      const txns = Array.from({ length: 50 }, (_, i) => `r${round}-${i}`);
      expected.push(...txns);
      // Terminate once the first sends are committing, and again a little later, within the burst.
      const replies = await burst(a, txns, async () => {
        const acked = a.all('message.sent').length;
        await until(() => a.all('message.sent').length > acked, 10_000);
        terminated += await terminateBackends();
        await new Promise((resolve) => setTimeout(resolve, 5 + round * 5));
        terminated += await terminateBackends();
      });
      const failed = replies.filter((r) => r.type === 'error');
      // A send that did not make it says why, with its txn_id: never INTERNAL.
      for (const f of failed) expect({ code: f.code, has_txn: typeof f.txn_id === 'string' }).toEqual({ code: 'DATABASE_UNAVAILABLE', has_txn: true });
      const resent = failed.map((f) => f.txn_id as string);
      if (resent.length) {
        const again = await burst(a, resent);
        expect(again.filter((r) => r.type === 'error')).toEqual([]);
      }
    }
    expect(terminated).toBeGreaterThan(0);

    // Stored once each, in the order sent; and the stream reader delivered each once, in that order.
    expect(await storedTxnIds()).toEqual(expected);
    await until(() => b.all('message.new').length >= expected.length, 10_000).catch(() => undefined); // then compared
    expect(b.all('message.new').map((e) => e.message.content)).toEqual(expected);
    expect((await api(t.url, 'GET', '/readyz')).status).toBe(200);
    a.close();
    b.close();
  }, 60_000);

  it('answers 503 DATABASE_UNAVAILABLE during a 3 s outage and recovers by itself, losing nothing after resends', async () => {
    const a = await WsClient.connect(t.wsUrl, alice.token);
    const b = await WsClient.connect(t.wsUrl, bob.token);
    const bobsOther = await WsClient.connect(t.wsUrl, bob.token);
    const before = (await storedTxnIds()).length;
    const positionBefore = await t.hub.stream.maxPosition();

    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
    await terminateBackends();
    const outageStarted = Date.now();
    // Bob's last socket closes during the outage: going offline fails, and must happen once it is over.
    b.close();
    bobsOther.close();
    const during = Array.from({ length: 5 }, (_, i) => `outage-${i}`);
    const [rooms, ready, replies] = await Promise.all([
      api(t.url, 'GET', '/api/rooms', { token: alice.token }),
      api(t.url, 'GET', '/readyz'),
      burst(a, during),
    ]);
    expect(Date.now() - outageStarted).toBeLessThan(3_000); // answered within the outage, not held until it ends
    expect({ status: rooms.status, code: rooms.body.error.code }).toEqual({ status: 503, code: 'DATABASE_UNAVAILABLE' });
    expect(ready.status).toBe(503);
    expect(replies.map((r) => [r.type, r.code, r.txn_id])).toEqual(during.map((txn) => ['error', 'DATABASE_UNAVAILABLE', txn]));

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 3_000 - (Date.now() - outageStarted))));
    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);

    // Recovery needs nothing from outside: readiness, REST, sends and the stream reader come back.
    const deadline = Date.now() + 10_000;
    while ((await api(t.url, 'GET', '/readyz')).status !== 200) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await api(t.url, 'GET', '/api/rooms', { token: alice.token })).status).toBe(200);
    const resent = await burst(a, [...during, 'after-outage']);
    expect(resent.map((r) => r.type)).toEqual(Array(during.length + 1).fill('message.sent'));
    const stored = await storedTxnIds();
    expect(stored.slice(before)).toEqual([...during, 'after-outage']);
    // Bob's presence caught up by itself; a resume delivers what was sent after the outage, once.
    for (const deadline = Date.now() + 15_000; ; ) {
      const presence = await api(t.url, 'GET', `/api/presence/${bob.user.id}`, { token: alice.token });
      if (presence.body.status === 'offline') break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const b2 = await WsClient.connect(t.wsUrl, bob.token, { since: positionBefore });
    expect(b2.all('message.new').map((e) => e.message.content)).toEqual([...during, 'after-outage']);
    const live = await WsClient.connect(t.wsUrl, bob.token);
    a.send({ type: 'message.send', room_id: roomId, content: 'live', txn_id: 'live' });
    await live.next('message.new', (e) => e.message.content === 'live', 10_000); // the stream reader delivers live again
    a.close();
    b2.close();
    live.close();
  }, 60_000);
});
