import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { messagesRepository } from '../../src/modules/messages/messages.repository.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

let t: TestHub;
let alice: Session;
let bob: Session;
let roomId: string;

async function send(token: string, room: string, content: string) {
  const res = await api(t.url, 'POST', `/api/rooms/${room}/messages`, { token, body: { content } });
  expect(res.status).toBe(201);
  return res.body as { id: string; stream_position: number };
}

beforeAll(async () => {
  t = await startTestHub({ realtime: { typing_timeout_ms: 300 } });
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
  const room = await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } });
  roomId = room.body.id;
});
afterAll(async () => t?.close());

describe('live delivery', () => {
  it('delivers a message to the other member and one delivery receipt to the sender', async () => {
    const a = await WsClient.connect(t.wsUrl, alice.token);
    const b = await WsClient.connect(t.wsUrl, bob.token);
    const b2 = await WsClient.connect(t.wsUrl, bob.token, { viaQuery: true });
    a.send({ type: 'message.send', room_id: roomId, content: 'Hello Bob', txn_id: 't1' });
    const ack = await a.next('message.sent');
    expect(ack).toMatchObject({ txn_id: 't1', duplicate: false });
    for (const c of [b, b2]) {
      const got = await c.next('message.new');
      expect(got.message).toMatchObject({ id: ack.message_id, content: 'Hello Bob', user_name: 'Alice', room_id: roomId, reply_to: null, attachments: [] });
      expect(got.stream_position).toBe(ack.stream_position);
    }
    const delivered = await a.next('message.delivered');
    expect(delivered.message_id).toBe(ack.message_id);
    // Written to two of Bob's sockets, yet the sender hears of delivery once.
    a.send({ type: 'ping' });
    await a.next('pong');
    expect(a.all('message.delivered').filter((e) => e.message_id === ack.message_id)).toHaveLength(1);
    const row = await t.hub.db.query('SELECT delivered_at FROM message_deliveries WHERE message_id = $1', [ack.message_id]);
    expect(row.rows[0].delivered_at).not.toBeNull();
    // The same txn_id again stores nothing new and acks the first message.
    a.send({ type: 'message.send', room_id: roomId, content: 'Hello Bob', txn_id: 't1' });
    const again = await a.next('message.sent');
    expect(again).toMatchObject({ message_id: ack.message_id, duplicate: true });
    for (const c of [a, b, b2]) c.close();
  });

  it('writes the delivery receipts of a resume one INSERT at a time, one receipt per message', async () => {
    const carol = await register(t.url, 'Carol');
    const room = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [carol.user.id] } })).body.id;
    const a = await WsClient.connect(t.wsUrl, alice.token);
    const since = await t.hub.stream.maxPosition();
    const n = 1500;
    // Through the service: the socket's rate limit is not what this is about.
    await Promise.all(Array.from({ length: n }, (_, i) => t.hub.messages.send(alice.user.id, room, { content: `missed ${i}` })));
    let inFlight = 0;
    let most = 0;
    const original = messagesRepository.markDelivered.bind(messagesRepository);
    const spy = vi.spyOn(messagesRepository, 'markDelivered').mockImplementation(async (q, ids) => {
      most = Math.max(most, ++inFlight);
      try {
        return await original(q, ids);
      } finally {
        inFlight--;
      }
    });
    try {
      const c = await WsClient.connect(t.wsUrl, carol.token, { since });
      await vi.waitFor(() => expect(a.all('message.delivered').filter((e) => e.room_id === room)).toHaveLength(n), { timeout: 20_000 });
      expect(c.all('message.new')).toHaveLength(n);
      expect(most).toBe(1);
      const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM messages m WHERE room_id = $1 AND NOT EXISTS (SELECT 1 FROM message_deliveries d WHERE d.message_id = m.id)', [room]);
      expect(rows[0].n).toBe(0);
      c.close();
    } finally {
      spy.mockRestore();
      a.close();
    }
  }, 60_000);

  it('handles frames from one socket in order', async () => {
    const a = await WsClient.connect(t.wsUrl, alice.token);
    for (let i = 0; i < 30; i++) a.send({ type: 'message.send', room_id: roomId, content: `burst ${i}`, txn_id: `burst-${i}` });
    const acks = [];
    for (let i = 0; i < 30; i++) acks.push(await a.next('message.sent'));
    expect(acks.map((x) => x.txn_id)).toEqual(Array.from({ length: 30 }, (_, i) => `burst-${i}`));
    const positions = acks.map((x) => x.stream_position);
    expect([...positions].sort((x, y) => x - y)).toEqual(positions);
    a.close();
  });

  it('answers malformed and invalid frames with error events and keeps the socket open', async () => {
    const a = await WsClient.connect(t.wsUrl, alice.token);
    a.send('{not json');
    expect(await a.next('error')).toMatchObject({ code: 'INVALID_FRAME' });
    a.send({ type: 'message.send', content: 'no room', txn_id: 'x1' });
    expect(await a.next('error')).toMatchObject({ code: 'VALIDATION_FAILED', txn_id: 'x1' });
    a.send({ type: 'bogus' });
    expect(await a.next('error')).toMatchObject({ code: 'INVALID_FRAME' });
    a.send({ type: 'message.send', room_id: '00000000-0000-4000-8000-000000000000', content: 'hi', txn_id: 'x2' });
    expect(await a.next('error')).toMatchObject({ code: 'INVALID_ROOM', txn_id: 'x2' });
    a.send({ type: 'ping' });
    await a.next('pong');
    a.close();
  });

  it('refuses an upgrade without a valid token', async () => {
    await expect(WsClient.connect(t.wsUrl, 'not-a-token')).rejects.toThrow(/401/);
  });
});

describe('resume with since', () => {
  it('replays exactly the missed events, in order, before ready, then goes live', async () => {
    const b = await WsClient.connect(t.wsUrl, bob.token);
    const first = await send(alice.token, roomId, 'before disconnect');
    const seen = await b.next('message.new', (e) => e.message.id === first.id);
    b.close();
    await b.waitClosed();

    const sent = [];
    for (let i = 0; i < 100; i++) sent.push(await send(alice.token, roomId, `missed ${i}`));

    const r = await WsClient.connect(t.wsUrl, bob.token, { since: seen.stream_position });
    const readyIndex = r.events.findIndex((e) => e.type === 'ready');
    const replayed = r.events.slice(0, readyIndex).filter((e) => e.type === 'message.new');
    expect(replayed.map((e) => e.message.id)).toEqual(sent.map((s) => s.id));
    expect(r.events[readyIndex]).toMatchObject({ resumed: 100, stream_position: sent[99].stream_position });

    const live = await send(alice.token, roomId, 'live again');
    expect((await r.next('message.new')).message.id).toBe(live.id);
    r.close();
  });

  it('loses and duplicates nothing when resuming while messages keep arriving', async () => {
    const start = await send(alice.token, roomId, 'marker');
    const writers = (async () => {
      const ids: string[] = [];
      for (let i = 0; i < 150; i++) ids.push((await send(alice.token, roomId, `race ${i}`)).id);
      return ids;
    })();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const r = await WsClient.connect(t.wsUrl, bob.token, { since: start.stream_position });
    const ids = await writers;
    await r.next('message.new', (e) => e.message.id === ids[ids.length - 1], 10_000);
    const got = r.all('message.new').map((e) => e.message.id);
    expect(got).toEqual(ids);
    const positions = r.events.filter((e) => e.type !== 'ready' && e.stream_position !== undefined).map((e) => e.stream_position);
    expect(new Set(positions).size).toBe(positions.length);
    expect([...positions].sort((x, y) => x - y)).toEqual(positions);
    r.close();
  });

  it('replays what was said in a room before its user was removed from it, or it was deleted, while they were away', async () => {
    const carol = await register(t.url, 'Carol');
    const kick = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'kick', members: [bob.user.id, carol.user.id] } })).body;
    const gone = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'gone', members: [bob.user.id] } })).body;
    const b = await WsClient.connect(t.wsUrl, bob.token);
    const since = b.all('ready')[0].stream_position;
    b.close();
    await b.waitClosed();

    const beforeKick = await send(alice.token, kick.id, 'said while Bob was a member');
    expect((await api(t.url, 'DELETE', `/api/rooms/${kick.id}/members/${bob.user.id}`, { token: alice.token })).status).toBe(200);
    const afterKick = await send(alice.token, kick.id, 'said after Bob was removed');
    const beforeDelete = await send(alice.token, gone.id, 'said before the room went');
    expect((await api(t.url, 'DELETE', `/api/rooms/${gone.id}`, { token: alice.token })).status).toBe(204);

    const r = await WsClient.connect(t.wsUrl, bob.token, { since });
    const replayed = r.events.slice(0, r.events.findIndex((e) => e.type === 'ready')).filter((e) => e.stream_position !== undefined);
    expect(replayed.map((e) => [e.type, e.message?.id ?? null])).toEqual([
      ['message.new', beforeKick.id],
      ['room.updated', null],
      ['message.new', beforeDelete.id],
      ['room.deleted', null],
    ]);
    expect(replayed.some((e) => e.message?.id === afterKick.id)).toBe(false);
    r.close();
  });

  it('a removal committed while a socket reads its rooms stops that room at once', async () => {
    const carol = await register(t.url, 'Carol');
    const group = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'racy', members: [bob.user.id, carol.user.id] } })).body;
    // Bob's rooms are read (the group among them); before the set-up goes on, Bob is removed and the
    // removal is dispatched.
    const original = t.hub.rooms.roomIdsFor.bind(t.hub.rooms);
    const spy = vi.spyOn(t.hub.rooms, 'roomIdsFor').mockImplementationOnce(async (userId) => {
      const rooms = await original(userId);
      const dispatched = new Promise<void>((resolve) => {
        const stop = t.hub.stream.onEvents((events) => {
          if (events.some((e) => e.room_id === group.id && e.type === 'room.updated')) {
            stop();
            resolve();
          }
        });
      });
      expect((await api(t.url, 'DELETE', `/api/rooms/${group.id}/members/${bob.user.id}`, { token: alice.token })).status).toBe(200);
      await dispatched;
      return rooms;
    });
    const b = await WsClient.connect(t.wsUrl, bob.token);
    spy.mockRestore();
    const removed = b.all('room.updated').find((e) => e.room_id === group.id);
    expect(removed.room.members.map((m: any) => m.user_id)).not.toContain(bob.user.id);

    const secret = await send(carol.token, group.id, 'Bob is gone');
    const marker = await send(alice.token, roomId, 'marker for Bob');
    await b.next('message.new', (e) => e.message.id === marker.id);
    expect(b.all('message.new').some((e) => e.message.id === secret.id)).toBe(false);
    b.close();
  });

  it('treats a since beyond the end of the stream (a stale client, a restored database) as the end, not as a filter', async () => {
    const r = await WsClient.connect(t.wsUrl, bob.token, { since: 1e12 });
    expect(r.all('ready')[0].stream_position).toBeLessThan(1e12);
    const live = await send(alice.token, roomId, 'can you hear me');
    expect((await r.next('message.new')).message.id).toBe(live.id);
    r.close();
  });

  it('keeps one total order across concurrent writers', async () => {
    const carol = await register(t.url, 'Carol');
    const group = await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'g', members: [bob.user.id, carol.user.id] } });
    const b = await WsClient.connect(t.wsUrl, bob.token);
    const senders = [alice, bob, carol].map((s) => (async () => {
      for (let i = 0; i < 40; i++) await send(s.token, group.body.id, `${s.user.name} ${i}`);
    })());
    await Promise.all(senders);
    const { rows } = await t.hub.db.query('SELECT id FROM messages WHERE room_id = $1 ORDER BY stream_position', [group.body.id]);
    await b.next('message.new', (e) => e.message.id === rows[rows.length - 1].id, 10_000);
    expect(b.all('message.new').map((e) => e.message.id)).toEqual(rows.map((r) => r.id));
    b.close();
  });
});

describe('bounded send queue', () => {
  it('closes a socket that stops reading with 4408, and since recovers everything', async () => {
    const small = await startTestHub({ limits: { max_send_queue_bytes: 64 * 1024 } });
    try {
      const a = await register(small.url, 'A');
      const b = await register(small.url, 'B');
      const room = (await api(small.url, 'POST', '/api/rooms', { token: a.token, body: { type: 'direct', members: [b.user.id] } })).body.id;
      const slow = await WsClient.connect(small.wsUrl, b.token);
      const startPosition = slow.events.find((e) => e.type === 'ready').stream_position;
      (slow.socket as any)._socket.pause(); // stop reading: the server's queue to this socket grows
      const big = 'x'.repeat(30_000);
      const ids: string[] = [];
      for (let i = 0; i < 200 && !slow.closed; i++) {
        const res = await api(small.url, 'POST', `/api/rooms/${room}/messages`, { token: a.token, body: { content: big } });
        ids.push(res.body.id);
        if (i % 20 === 19) (slow.socket as any)._socket.resume(), (slow.socket as any)._socket.pause();
      }
      (slow.socket as any)._socket.resume();
      expect((await slow.waitClosed(10_000)).code).toBe(4408);
      const again = await WsClient.connect(small.wsUrl, b.token, { since: startPosition });
      const replayed = again.all('message.new').map((e) => e.message.id);
      expect(replayed).toEqual(ids);
      again.close();
    } finally {
      await small.close();
    }
  });
});

describe('typing', () => {
  it('broadcasts start, expires without refresh, and stops on typing.stop', async () => {
    const a = await WsClient.connect(t.wsUrl, alice.token);
    const b = await WsClient.connect(t.wsUrl, bob.token);
    a.send({ type: 'typing.start', room_id: roomId });
    expect(await b.next('typing')).toMatchObject({ room_id: roomId, user_id: alice.user.id, user_name: 'Alice', typing: true });
    const started = Date.now();
    expect(await b.next('typing')).toMatchObject({ user_id: alice.user.id, typing: false }); // expiry (300 ms in this hub)
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    a.send({ type: 'typing.start', room_id: roomId });
    await b.next('typing', (e) => e.typing === true);
    a.send({ type: 'typing.stop', room_id: roomId });
    await b.next('typing', (e) => e.typing === false);
    a.close();
    b.close();
  });

  it('refuses typing in a room the user is not in', async () => {
    const stranger = await register(t.url, 'Stranger');
    const s = await WsClient.connect(t.wsUrl, stranger.token);
    s.send({ type: 'typing.start', room_id: roomId });
    expect(await s.next('error')).toMatchObject({ code: 'NOT_A_MEMBER' });
    s.close();
  });
});

describe('presence', () => {
  // A second hub on the same database needs a shared server (DATABASE_URL); an embedded one is not shareable.
  it.skipIf(!process.env.DATABASE_URL)('starts a hub that is the only node with nobody online, as a crash left the table', async () => {
    const crashy = await register(t.url, 'Crashy');
    const s = await WsClient.connect(t.wsUrl, crashy.token);
    const status = async () => (await t.hub.db.query('SELECT status FROM presence WHERE user_id = $1', [crashy.user.id])).rows[0].status;
    expect(await status()).toBe('online');
    // A hub starting on this database without Redis (the only node) cannot have any socket open yet.
    const restarted = await startTestHub({ redis: { url: '' } }, { shareWith: t });
    try {
      expect(await status()).toBe('offline');
    } finally {
      await restarted.close();
      s.close();
    }
  });

  it('goes online with the first socket and offline after the last, visible only to co-members', async () => {
    const dave = await register(t.url, 'Dave');
    const erin = await register(t.url, 'Erin');
    const outsider = await register(t.url, 'Outsider');
    await api(t.url, 'POST', '/api/rooms', { token: dave.token, body: { type: 'direct', members: [erin.user.id] } });
    const e = await WsClient.connect(t.wsUrl, erin.token);
    const d1 = await WsClient.connect(t.wsUrl, dave.token);
    expect(await e.next('presence', (p) => p.user_id === dave.user.id)).toMatchObject({ status: 'online' });
    const d2 = await WsClient.connect(t.wsUrl, dave.token);
    d1.close();
    await d1.waitClosed();
    expect((await api(t.url, 'GET', `/api/presence/${dave.user.id}`, { token: erin.token })).body.status).toBe('online');
    d2.send({ type: 'presence.update', status: 'busy', status_text: 'in a meeting' });
    expect(await e.next('presence', (p) => p.user_id === dave.user.id)).toMatchObject({ status: 'busy', status_text: 'in a meeting' });
    d2.close();
    const off = await e.next('presence', (p) => p.user_id === dave.user.id && p.status === 'offline');
    expect(off.last_seen).toBeTruthy();
    expect((await api(t.url, 'GET', `/api/presence/${dave.user.id}`, { token: outsider.token })).status).toBe(404);
    const bulk = await api(t.url, 'POST', '/api/presence/query', { token: outsider.token, body: { user_ids: [dave.user.id, outsider.user.id] } });
    expect(bulk.body.map((p: any) => p.user_id)).toEqual([outsider.user.id]);
    e.close();
  });

  it('a socket closed while it is being set up leaves its user offline and no room subscription behind', async () => {
    const frank = await register(t.url, 'Frank');
    const gina = await register(t.url, 'Gina');
    await api(t.url, 'POST', '/api/rooms', { token: frank.token, body: { type: 'direct', members: [gina.user.id] } });
    const solo = (await api(t.url, 'POST', '/api/rooms', { token: frank.token, body: { type: 'group', name: 'solo' } })).body;
    const g = await WsClient.connect(t.wsUrl, gina.token);

    // Hold the set-up at "read the user's rooms" until the client has gone.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let reached!: () => void;
    const reading = new Promise<void>((resolve) => (reached = resolve));
    const original = t.hub.rooms.roomIdsFor.bind(t.hub.rooms);
    const spy = vi.spyOn(t.hub.rooms, 'roomIdsFor').mockImplementationOnce(async (userId) => {
      reached();
      await held;
      return original(userId);
    });
    const raw = new WebSocket(`${t.wsUrl}/ws`, { headers: { authorization: `Bearer ${frank.token}` } });
    await Promise.all([reading, once(raw, 'open')]);
    const serverSide = [...t.app.websocketServer.clients].at(-1)!;
    const serverClosed = once(serverSide, 'close');
    raw.terminate();
    await serverClosed;
    release();

    // The set-up finishes (Frank shows online), then its socket is accounted as closed (offline).
    await g.next('presence', (p) => p.user_id === frank.user.id && p.status === 'online');
    await g.next('presence', (p) => p.user_id === frank.user.id && p.status === 'offline');
    expect((await api(t.url, 'GET', `/api/presence/${frank.user.id}`, { token: gina.token })).body.status).toBe('offline');
    expect(t.hub.fanout.socketCount(frank.user.id)).toBe(0);
    expect((t.hub.fanout as any).byRoom.has(solo.id)).toBe(false);
    spy.mockRestore();
    g.close();
  });
});
