/**
 * A statement or transaction that fails at the database fails alone: it never leaves the session
 * aborted or broken for anyone else. That matters most on the embedded PGlite, where every
 * connection shares one database session (a failed statement used to drop the connection, and the
 * next one found the session's prepared statement names taken: other users' requests failed). Runs
 * on whichever database the suite runs on (PGlite without DATABASE_URL).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

describe('failed statements', () => {
  let t: TestHub;
  let users: Session[];
  let roomId: string;

  beforeAll(async () => {
    t = await startTestHub({ rate_limits: { messages_per_user_per_min: 0 } });
    users = [];
    for (let i = 0; i < 3; i++) users.push(await register(t.url, `User${i}`));
    roomId = (await api(t.url, 'POST', '/api/rooms', { token: users[0].token, body: { type: 'group', name: 'g', members: [users[1].user.id, users[2].user.id] } })).body.id;
  }, 60_000);
  afterAll(async () => t?.close());

  it('fail alone, roll back, and leave other users’ concurrent requests unharmed', async () => {
    const db = t.hub.db;
    const bad = () => [
      // Refused when binding its parameter (as `?limit=Infinity` once was), when running, and inside a transaction that wrote first.
      db.query('SELECT id FROM users LIMIT $1', ['Infinity']),
      db.query('SELECT count(*) / (count(*) - count(*)) FROM users WHERE id <> $1', [users[0].user.id]),
      db.transaction(async (tx) => {
        await tx.query("UPDATE users SET name = 'changed' WHERE id = $1", [users[0].user.id]);
        await tx.query('SELECT $1::int', ['not a number']);
      }),
    ];
    const good = (round: number) => [
      api(t.url, 'GET', '/api/rooms', { token: users[1].token }),
      api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: users[2].token, body: { content: `m${round}`, txn_id: `t${round}` } }),
      api(t.url, 'GET', `/api/rooms/${roomId}/messages`, { token: users[1].token }),
      api(t.url, 'GET', '/api/me', { token: users[2].token }),
    ];
    for (let round = 0; round < 5; round++) {
      const failing = bad().map((p) => p.then(() => 'succeeded', (err: { message: string }) => err.message));
      const others = await Promise.all(good(round));
      expect(others.map((r) => r.status)).toEqual([200, 201, 200, 200]);
      expect(await Promise.all(failing)).toEqual([
        'invalid input syntax for type bigint: "Infinity"',
        'division by zero',
        'invalid input syntax for type integer: "not a number"',
      ]);
    }
    // The failed transaction's write was rolled back; everything sent is there, once.
    expect((await api(t.url, 'GET', '/api/me', { token: users[0].token })).body.name).toBe('User0');
    const history = await api(t.url, 'GET', `/api/rooms/${roomId}/messages?limit=50`, { token: users[0].token });
    expect(history.body.messages.map((m: { content: string }) => m.content).sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect((await api(t.url, 'GET', '/readyz')).status).toBe(200);
  }, 60_000);
});
