/**
 * Two hub nodes on one PostgreSQL database fanning out through Redis. Needs DATABASE_URL and REDIS_URL
 * (CI sets both); skipped, and says so, otherwise.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PresenceCluster } from '../../src/modules/presence/presence-cluster.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

const ready = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);
if (!ready) console.log('SKIPPED multinode tests: they need both DATABASE_URL and REDIS_URL (a shared database and Redis).');

describe.skipIf(!ready)('two nodes through Redis', () => {
  let n1: TestHub;
  let n2: TestHub;
  let alice: Session;
  let bob: Session;
  let roomId: string;

  beforeAll(async () => {
    n1 = await startTestHub();
    n2 = await startTestHub({}, { shareWith: n1 });
    alice = await register(n1.url, 'Alice');
    bob = await register(n2.url, 'Bob');
    roomId = (await api(n1.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } })).body.id;
  });
  afterAll(async () => {
    await n2?.close();
    await n1?.close();
  });

  it('delivers messages, receipts and typing across nodes', async () => {
    const a = await WsClient.connect(n1.wsUrl, alice.token);
    const b = await WsClient.connect(n2.wsUrl, bob.token);
    a.send({ type: 'message.send', room_id: roomId, content: 'across nodes', txn_id: 'm1' });
    const ack = await a.next('message.sent');
    expect((await b.next('message.new')).message.id).toBe(ack.message_id);
    expect((await a.next('message.delivered')).message_id).toBe(ack.message_id);
    a.send({ type: 'typing.start', room_id: roomId });
    expect(await b.next('typing')).toMatchObject({ user_id: alice.user.id, typing: true });
    b.send({ type: 'message.read', room_id: roomId, message_id: ack.message_id });
    expect(await a.next('message.read')).toMatchObject({ user_id: bob.user.id, message_id: ack.message_id });
    a.close();
    b.close();
  });

  it('keeps order across writers on both nodes', async () => {
    const b = await WsClient.connect(n2.wsUrl, bob.token);
    await Promise.all(
      [
        [n1, alice],
        [n2, bob],
      ].map(async ([node, who]: any) => {
        for (let i = 0; i < 30; i++) await api(node.url, 'POST', `/api/rooms/${roomId}/messages`, { token: who.token, body: { content: `${i}` } });
      }),
    );
    const { rows } = await n1.hub.db.query('SELECT id FROM messages WHERE room_id = $1 ORDER BY stream_position DESC LIMIT 60', [roomId]);
    const expected = rows.map((r) => r.id).reverse();
    await b.next('message.new', (e) => e.message.id === expected[59], 10_000);
    expect(b.all('message.new').map((e) => e.message.id)).toEqual(expected);
    b.close();
  });

  it("delivers a node's own writes to its own sockets while its Redis publish fails", async () => {
    const b = await WsClient.connect(n1.wsUrl, bob.token);
    const publish = vi.spyOn(n1.hub.pubsub, 'publish').mockRejectedValue(new Error('redis down'));
    try {
      const sent = await api(n1.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'while redis is down' } });
      expect((await b.next('message.new', (e) => e.message.id === sent.body.id)).message.content).toBe('while redis is down');
    } finally {
      publish.mockRestore();
      b.close();
    }
  });

  it('reads what was committed meanwhile when its Redis subscriber reconnects', async () => {
    const catchUp = vi.spyOn(n2.hub.stream, 'catchUp');
    const admin = new Redis(process.env.REDIS_URL!);
    try {
      // Both nodes share the channel prefix, hence the connection name: kill both subscribers (killing
      // the first listed one only hit n1's half of the time).
      const clients = (await admin.client('LIST')) as string;
      const subs = clients.split('\n').filter((line) => line.includes(` name=${n2.config.redis.channel_prefix}sub `));
      expect(subs).toHaveLength(2);
      for (const sub of subs) await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(sub)![1]);
      await vi.waitFor(() => expect(catchUp).toHaveBeenCalled(), { timeout: 5000 });
      // And it still receives live events afterwards.
      const b = await WsClient.connect(n2.wsUrl, bob.token);
      const sent = await api(n1.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'after reconnect' } });
      await b.next('message.new', (e) => e.message.id === sent.body.id);
      b.close();
    } finally {
      catchUp.mockRestore();
      admin.disconnect();
    }
  });

  it('keeps a user online while any node still holds one of their sockets', async () => {
    const b = await WsClient.connect(n1.wsUrl, bob.token);
    const onN1 = await WsClient.connect(n1.wsUrl, alice.token);
    const onN2 = await WsClient.connect(n2.wsUrl, alice.token);
    // n1 has no socket of Alice's left, but n2 has: n1 asks the cluster and leaves her online.
    const asked = vi.spyOn((n1.hub.presence as unknown as { cluster: PresenceCluster }).cluster, 'othersHaveSockets');
    onN1.close();
    await onN1.waitClosed();
    await vi.waitFor(() => expect(asked).toHaveBeenCalledWith(alice.user.id));
    expect(await asked.mock.results[0].value).toBe(true);
    asked.mockRestore();
    expect(await n1.hub.presence.query(bob.user.id, [alice.user.id])).toMatchObject([{ status: 'online' }]);
    expect(b.all('presence').filter((p) => p.user_id === alice.user.id && p.status === 'offline')).toEqual([]);
    onN2.close();
    expect(await b.next('presence', (p) => p.user_id === alice.user.id && p.status === 'offline')).toMatchObject({ status: 'offline' });
    b.close();
  });

  it('counts login attempts against one account across both nodes', async () => {
    const victim = await register(n1.url, 'Victim');
    const attempt = (node: TestHub) => api(node.url, 'POST', '/api/auth/login', { body: { email: victim.user.email, password: 'wrong password!' } });
    const limit = n1.config.rate_limits.login_per_account_per_min;
    for (let i = 0; i < limit; i++) expect((await attempt(i % 2 ? n2 : n1)).status).toBe(401);
    const refused = await attempt(n2);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBeTruthy();
  });

  it('closes a revoked device socket on the other node at once', async () => {
    const second = await api(n1.url, 'POST', '/api/auth/login', { body: { email: bob.user.email, password: 'correct horse battery' } });
    const s = await WsClient.connect(n2.wsUrl, second.body.token);
    const res = await api(n1.url, 'DELETE', `/api/devices/${second.body.device_id}`, { token: bob.token });
    expect(res.status).toBe(204);
    expect((await s.waitClosed()).code).toBe(4401);
  });
});
