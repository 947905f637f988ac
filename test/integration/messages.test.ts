import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { holdStreamLock } from '../helpers/locks.js';
import { createRoom, expectError, roomEntry, sendMessage } from '../helpers/rest.js';

let t: TestHub;
let alice: Session; // owner
let bob: Session; // admin
let carol: Session; // member
let eve: Session; // not in the room
let roomId: string;

beforeAll(async () => {
  t = await startTestHub();
  [alice, bob, carol, eve] = await Promise.all(['Alice', 'Bob', 'Carol', 'Eve'].map((n) => register(t.url, n)));
  const room = await createRoom(t.url, alice, { type: 'group', name: 'Main', members: [bob.user.id, carol.user.id] });
  roomId = room.id;
  const promoted = await api(t.url, 'PUT', `/api/rooms/${roomId}/members/${bob.user.id}/role`, { token: alice.token, body: { role: 'admin' } });
  expect(promoted.status).toBe(200);
});
afterAll(async () => t?.close());

async function count(sql: string, params: unknown[]): Promise<number> {
  const { rows } = await t.hub.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0].n;
}

async function history(s: Session, room: string, query = '') {
  return api(t.url, 'GET', `/api/rooms/${room}/messages${query}`, { token: s.token });
}

async function getMessage(s: Session, id: string) {
  return api(t.url, 'GET', `/api/messages/${id}`, { token: s.token });
}

describe('send', () => {
  it('answers 201 {id, created_at, stream_position} and stores the message', async () => {
    const res = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content: 'hello world' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), stream_position: expect.any(Number) });
    expect(new Date(res.body.created_at).toISOString()).toBe(res.body.created_at);
    const got = await getMessage(bob, res.body.id);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: res.body.id, room_id: roomId, user_id: carol.user.id, user_name: 'Carol', content: 'hello world', deleted: false });
    expect(got.body.stream_position).toBe(res.body.stream_position);
  });

  it('is idempotent per (user, txn_id): a repeat answers 200 with the same id and stores nothing', async () => {
    const txn = `txn-${crypto.randomUUID()}`;
    const first = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content: 'once', txn_id: txn } });
    expect(first.status).toBe(201);
    const before = await count('messages WHERE room_id = $1', [roomId]);
    const eventsBefore = await count('room_events WHERE room_id = $1', [roomId]);

    const repeat = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content: 'once', txn_id: txn } });
    expect(repeat.status).toBe(200);
    expect(repeat.body).toMatchObject({ id: first.body.id, stream_position: first.body.stream_position, created_at: first.body.created_at });
    expect(await count('messages WHERE room_id = $1', [roomId])).toBe(before);
    expect(await count('room_events WHERE room_id = $1', [roomId])).toBe(eventsBefore);

    // The same txn_id from another user is another message.
    const other = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: bob.token, body: { content: 'once', txn_id: txn } });
    expect(other.status).toBe(201);
    expect(other.body.id).not.toBe(first.body.id);
  });

  it('refuses a txn_id already used for a message in another room (409 CONFLICT)', async () => {
    const elsewhere = await createRoom(t.url, carol, { type: 'group', members: [alice.user.id] });
    const txn = `txn-${crypto.randomUUID()}`;
    await sendMessage(t.url, carol, roomId, 'first room', { txn_id: txn });
    const res = await api(t.url, 'POST', `/api/rooms/${elsewhere.id}/messages`, { token: carol.token, body: { content: 'second room', txn_id: txn } });
    expectError(res, 409, 'CONFLICT');
    expect(await count('messages WHERE room_id = $1', [elsewhere.id])).toBe(0);
  });

  it.each([
    ['empty', ''],
    ['blank', '  \n\t '],
  ])('refuses %s content (400 VALIDATION_FAILED)', async (_label, content) => {
    const before = await count('messages WHERE room_id = $1', [roomId]);
    expectError(await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content } }), 400, 'VALIDATION_FAILED');
    expect(await count('messages WHERE room_id = $1', [roomId])).toBe(before);
  });

  it('refuses a missing content (400 VALIDATION_FAILED)', async () => {
    expectError(await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: {} }), 400, 'VALIDATION_FAILED');
  });

  it('keeps reply_to within the room (404 INVALID_MESSAGE otherwise)', async () => {
    const parent = await sendMessage(t.url, alice, roomId, 'parent');
    const reply = await sendMessage(t.url, carol, roomId, 'child', { reply_to: parent.id });
    expect((await getMessage(carol, reply.id)).body.reply_to).toBe(parent.id);

    const otherRoom = await createRoom(t.url, alice, { type: 'group', members: [carol.user.id] });
    const foreign = await sendMessage(t.url, alice, otherRoom.id, 'elsewhere');
    const before = await count('messages WHERE room_id = $1', [roomId]);
    expectError(
      await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content: 'x', reply_to: foreign.id } }),
      404,
      'INVALID_MESSAGE',
    );
    expectError(
      await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content: 'x', reply_to: crypto.randomUUID() } }),
      404,
      'INVALID_MESSAGE',
    );
    expect(await count('messages WHERE room_id = $1', [roomId])).toBe(before);
  });

  it('refuses text PostgreSQL cannot store (U+0000, an unpaired surrogate) in a body, a path or a query with 400, storing nothing', async () => {
    const before = await count('messages WHERE room_id = $1', [roomId]);
    for (const content of ['nul \u0000 byte', 'half \ud800 a pair', 'other half \udc00']) {
      expectError(await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content } }), 400, 'VALIDATION_FAILED');
    }
    expectError(await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content: 'ok', txn_id: 'a\u0000' } }), 400, 'VALIDATION_FAILED');
    expect(await count('messages WHERE room_id = $1', [roomId])).toBe(before);
    const target = await sendMessage(t.url, carol, roomId, 'react to me');
    expectError(await api(t.url, 'PUT', `/api/messages/${target.id}/reactions/%00`, { token: carol.token }), 400, 'VALIDATION_FAILED');
    expectError(await api(t.url, 'GET', '/api/users/search?q=%00', { token: carol.token }), 400, 'VALIDATION_FAILED');
    expectError(await api(t.url, 'PATCH', `/api/rooms/${roomId}`, { token: alice.token, body: { topic: 'x\u0000' } }), 400, 'VALIDATION_FAILED');
    // A well-formed pair (an emoji outside the BMP) is fine.
    expect((await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: carol.token, body: { content: 'paired \ud83d\ude00' } })).status).toBe(201);
  });

  it('refuses non-members on send and history (403 NOT_A_MEMBER) and unknown rooms (404 INVALID_ROOM)', async () => {
    expectError(await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: eve.token, body: { content: 'let me in' } }), 403, 'NOT_A_MEMBER');
    expectError(await history(eve, roomId), 403, 'NOT_A_MEMBER');
    const someMessage = (await history(carol, roomId, '?limit=1')).body.messages[0];
    expectError(await getMessage(eve, someMessage.id), 403, 'NOT_A_MEMBER');
    expectError(await api(t.url, 'POST', `/api/rooms/${crypto.randomUUID()}/messages`, { token: eve.token, body: { content: 'x' } }), 404, 'INVALID_ROOM');
    expect(await count('messages WHERE user_id = $1', [eve.user.id])).toBe(0);
  });
});

describe('size limit', () => {
  let small: TestHub;
  let u: Session;
  let room: string;
  beforeAll(async () => {
    small = await startTestHub({ limits: { max_message_bytes: 100 } });
    u = await register(small.url, 'Sizer');
    room = (await createRoom(small.url, u, { type: 'group' })).id;
  });
  afterAll(async () => small?.close());

  it('counts UTF-8 bytes: up to the limit is stored, beyond it 413 MESSAGE_TOO_LARGE and nothing is stored', async () => {
    const send = (content: string) => api(small.url, 'POST', `/api/rooms/${room}/messages`, { token: u.token, body: { content } });
    expect((await send('a'.repeat(100))).status).toBe(201);
    expect((await send('é'.repeat(50))).status).toBe(201); // 50 characters, 100 bytes

    const events = await small.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM room_events');
    expectError(await send('a'.repeat(101)), 413, 'MESSAGE_TOO_LARGE');
    expectError(await send('é'.repeat(60)), 413, 'MESSAGE_TOO_LARGE'); // 60 characters, 120 bytes
    const { rows } = await small.hub.db.query<{ content: string }>('SELECT content FROM messages WHERE room_id = $1 ORDER BY stream_position', [room]);
    expect(rows.map((r) => r.content)).toEqual(['a'.repeat(100), 'é'.repeat(50)]);
    expect((await small.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM room_events')).rows[0].n).toBe(events.rows[0].n);
  });
});

describe('history paging', () => {
  const TOTAL = 120;
  let pageRoom: string;
  let sent: string[];
  beforeAll(async () => {
    pageRoom = (await createRoom(t.url, alice, { type: 'group', name: 'Paging', members: [bob.user.id] })).id;
    sent = [];
    for (let i = 0; i < TOTAL; i++) sent.push((await sendMessage(t.url, i % 2 ? bob : alice, pageRoom, `message ${i}`)).id);
  });

  it('without anchors returns the latest page, oldest first, with has_more', async () => {
    const res = await history(bob, pageRoom);
    expect(res.status).toBe(200);
    expect(res.body.has_more).toBe(true);
    expect(res.body.messages.map((m: any) => m.id)).toEqual(sent.slice(TOTAL - 50));
    const positions = res.body.messages.map((m: any) => m.stream_position);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });

  it('walks backwards with before: no overlap, no gap, has_more false only on the oldest page', async () => {
    const pages: any[] = [];
    let res = await history(alice, pageRoom, '?limit=25');
    pages.push(res.body);
    while (res.body.has_more) {
      res = await history(alice, pageRoom, `?limit=25&before=${res.body.messages[0].id}`);
      expect(res.status).toBe(200);
      pages.push(res.body);
    }
    expect(pages.map((p) => p.messages.length)).toEqual([25, 25, 25, 25, 20]);
    expect(pages.map((p) => p.has_more)).toEqual([true, true, true, true, false]);
    const ids = pages.reverse().flatMap((p) => p.messages.map((m: any) => m.id));
    expect(ids).toEqual(sent);
  });

  it('walks forwards with after: no overlap, no gap, has_more false only on the newest page', async () => {
    const ids: string[] = [sent[0]];
    const flags: boolean[] = [];
    let anchor = sent[0];
    for (;;) {
      const res = await history(bob, pageRoom, `?limit=30&after=${anchor}`);
      expect(res.status).toBe(200);
      ids.push(...res.body.messages.map((m: any) => m.id));
      flags.push(res.body.has_more);
      if (!res.body.has_more) break;
      anchor = res.body.messages.at(-1).id;
    }
    expect(flags).toEqual([true, true, true, false]); // 119 after the first: 30 + 30 + 30 + 29
    expect(ids).toEqual(sent);
  });

  it('ends exactly at a page boundary with has_more false', async () => {
    const res = await history(bob, pageRoom, `?limit=20&before=${sent[20]}`);
    expect(res.body.messages.map((m: any) => m.id)).toEqual(sent.slice(0, 20));
    expect(res.body.has_more).toBe(false);
  });

  it('caps limit at limits.history_page_max and validates its parameters', async () => {
    const res = await history(bob, pageRoom, '?limit=1000');
    expect(res.body.messages).toHaveLength(t.config.limits.history_page_max);
    expect(res.body.has_more).toBe(true);
    expectError(await history(bob, pageRoom, '?limit=0'), 400, 'VALIDATION_FAILED');
    expectError(await history(bob, pageRoom, `?before=${sent[5]}&after=${sent[1]}`), 400, 'VALIDATION_FAILED');
    const foreign = (await history(bob, roomId, '?limit=1')).body.messages[0].id;
    expectError(await history(bob, pageRoom, `?before=${foreign}`), 404, 'INVALID_MESSAGE');
  });
});

describe('redaction', () => {
  it('leaves nothing of an edited message with mentions in a resume replay or REST', async () => {
    const m = await sendMessage(t.url, carol, roomId, `hey <@${bob.user.id}>`);
    expect((await api(t.url, 'PATCH', `/api/messages/${m.id}`, { token: carol.token, body: { content: `hey again <@${bob.user.id}>` } })).status).toBe(200);
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: carol.token })).status).toBe(204);
    const replay = await WsClient.connect(t.wsUrl, alice.token, { since: m.stream_position - 1 });
    const replayed = replay.all('message.new').find((e) => e.message.id === m.id);
    expect(replayed.message).toMatchObject({ content: '', mentions: [], attachments: [], edited_at: null, deleted: true });
    const edited = replay.all('message.edited').find((e) => e.message_id === m.id);
    expect(edited.content).toBe('');
    replay.close();
    const got = await api(t.url, 'GET', `/api/messages/${m.id}`, { token: alice.token });
    expect(got.body).toMatchObject({ content: '', mentions: [], edited_at: null, deleted: true });
  });

  it('by the sender: content gone, tombstone in history, message.deleted to the room, stored event scrubbed', async () => {
    const ws = await WsClient.connect(t.wsUrl, alice.token);
    const m = await sendMessage(t.url, carol, roomId, 'oops, secret');
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: carol.token })).status).toBe(204);

    const deleted = await ws.next('message.deleted', (e) => e.message_id === m.id);
    expect(deleted).toMatchObject({ room_id: roomId, deleted_by: carol.user.id });
    const page = await history(alice, roomId, '?limit=100');
    expect(page.body.messages.find((x: any) => x.id === m.id)).toMatchObject({ deleted: true, content: '' });
    const { rows } = await t.hub.db.query('SELECT content, deleted_at FROM messages WHERE id = $1', [m.id]);
    expect(rows[0]).toMatchObject({ content: '', deleted_at: expect.any(Date) });
    const stored = await t.hub.db.query<{ payload: any }>('SELECT payload FROM room_events WHERE stream_position = $1', [m.stream_position]);
    expect(stored.rows[0].payload.message).toMatchObject({ content: '', deleted: true });

    // Redacting again changes nothing.
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: carol.token })).status).toBe(204);
    expect(await count("room_events WHERE type = 'message.deleted' AND payload->>'message_id' = $1", [m.id])).toBe(1);
    ws.close();
  });

  it('by a room admin, of someone else’s message', async () => {
    const m = await sendMessage(t.url, carol, roomId, 'spam');
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: bob.token })).status).toBe(204);
    expect((await getMessage(carol, m.id)).body).toMatchObject({ deleted: true, content: '' });
  });

  it('not by another plain member (403 FORBIDDEN) nor an outsider (403 NOT_A_MEMBER)', async () => {
    const m = await sendMessage(t.url, alice, roomId, 'keep me');
    expectError(await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: carol.token }), 403, 'FORBIDDEN');
    expectError(await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: eve.token }), 403, 'NOT_A_MEMBER');
    expectError(await api(t.url, 'DELETE', `/api/messages/${crypto.randomUUID()}`, { token: carol.token }), 404, 'INVALID_MESSAGE');
    expect((await getMessage(carol, m.id)).body).toMatchObject({ deleted: false, content: 'keep me' });
  });
});

describe('races (need a real PostgreSQL: DATABASE_URL)', () => {
  it.skipIf(!process.env.DATABASE_URL)('a reaction racing a redaction never outlives it', async () => {
    const m = await sendMessage(t.url, alice, roomId, 'about to go');
    const lock = await holdStreamLock(t);
    const reacting = api(t.url, 'PUT', `/api/messages/${m.id}/reactions/ok`, { token: carol.token });
    await lock.waiting(1);
    const redacting = api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: alice.token });
    await lock.waiting(2);
    await lock.release();
    const [reacted, redacted] = await Promise.all([reacting, redacting]);
    expect(redacted.status).toBe(204);
    expect([200, 404]).toContain(reacted.status);
    expect(await count('reactions WHERE message_id = $1', [m.id])).toBe(0);
    const { rows } = await t.hub.db.query(
      `SELECT type FROM room_events WHERE room_id = $1 AND payload->>'message_id' = $2 ORDER BY stream_position`,
      [roomId, m.id],
    );
    expect(rows.at(-1)?.type).toBe('message.deleted');
  });
});

describe('reactions', () => {
  it('adds and removes idempotently, with aggregated counts and events only for changes', async () => {
    const ws = await WsClient.connect(t.wsUrl, alice.token);
    const m = await sendMessage(t.url, alice, roomId, 'react to me');
    const thumbs = encodeURIComponent('👍');
    const put = (s: Session, key: string) => api(t.url, 'PUT', `/api/messages/${m.id}/reactions/${key}`, { token: s.token });
    const del = (s: Session, key: string) => api(t.url, 'DELETE', `/api/messages/${m.id}/reactions/${key}`, { token: s.token });

    expect((await put(bob, thumbs)).body).toEqual({ key: '👍', count: 1 });
    expect((await put(bob, thumbs)).body).toEqual({ key: '👍', count: 1 });
    expect((await put(carol, thumbs)).body).toEqual({ key: '👍', count: 2 });
    expect((await put(bob, 'ack')).body).toEqual({ key: 'ack', count: 1 });
    expect((await getMessage(alice, m.id)).body.reactions).toEqual([
      { key: '👍', count: 2, user_ids: [bob.user.id, carol.user.id] },
      { key: 'ack', count: 1, user_ids: [bob.user.id] },
    ]);

    expect((await del(bob, thumbs)).body).toEqual({ key: '👍', count: 1 });
    expect((await del(bob, thumbs)).body).toEqual({ key: '👍', count: 1 });
    expect((await getMessage(alice, m.id)).body.reactions).toEqual([
      { key: '👍', count: 1, user_ids: [carol.user.id] },
      { key: 'ack', count: 1, user_ids: [bob.user.id] },
    ]);
    expectError(await put(eve, thumbs), 403, 'NOT_A_MEMBER');

    // A marker after all the calls: every reaction event is in by then.
    const marker = await sendMessage(t.url, alice, roomId, 'marker');
    await ws.next('message.new', (e) => e.message.id === marker.id);
    const events = ws.events.filter((e) => e.type.startsWith('reaction.') && e.message_id === m.id);
    expect(events.map((e) => [e.type, e.user_id, e.key, e.count])).toEqual([
      ['reaction.added', bob.user.id, '👍', 1],
      ['reaction.added', carol.user.id, '👍', 2],
      ['reaction.added', bob.user.id, 'ack', 1],
      ['reaction.removed', bob.user.id, '👍', 1],
    ]);

    // A redacted message loses its reactions and takes no more.
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: alice.token })).status).toBe(204);
    expect((await getMessage(alice, m.id)).body.reactions).toEqual([]);
    expectError(await put(carol, thumbs), 404, 'INVALID_MESSAGE');
    ws.close();
  });
});

describe('mentions', () => {
  it('stores <@user_id> mentions of members only, once each', async () => {
    const content = `hi <@${bob.user.id}>, <@${carol.user.id.toUpperCase()}> and <@${eve.user.id}>; again <@${bob.user.id}> <@not-a-uuid>`;
    const m = await sendMessage(t.url, alice, roomId, content);
    const got = await getMessage(alice, m.id);
    expect(got.body.content).toBe(content);
    expect([...got.body.mentions].sort()).toEqual([bob.user.id, carol.user.id].sort());
    const { rows } = await t.hub.db.query<{ mentions: string[] }>('SELECT mentions FROM messages WHERE id = $1', [m.id]);
    expect([...rows[0].mentions].sort()).toEqual([bob.user.id, carol.user.id].sort());
  });
});

describe('read receipts', () => {
  let readRoom: string;
  let ids: string[];
  let wsAlice: WsClient;
  beforeAll(async () => {
    readRoom = (await createRoom(t.url, alice, { type: 'group', name: 'Reads', members: [bob.user.id] })).id;
    ids = [];
    for (let i = 1; i <= 5; i++) ids.push((await sendMessage(t.url, alice, readRoom, `m${i}`)).id);
    wsAlice = await WsClient.connect(t.wsUrl, alice.token);
  });
  afterAll(() => wsAlice?.close());

  const markRead = (s: Session, body: { message_id?: string }) => api(t.url, 'POST', `/api/rooms/${readRoom}/read`, { token: s.token, body });

  it('marks everything up to a message read, cumulatively, and tells the room', async () => {
    expect((await roomEntry(t.url, bob, readRoom)).unread_count).toBe(5);

    const r2 = await markRead(bob, { message_id: ids[1] });
    expect(r2.status).toBe(200);
    expect(r2.body).toMatchObject({ room_id: readRoom, message_id: ids[1], moved: true, read_at: expect.any(String) });
    expect((await roomEntry(t.url, bob, readRoom)).unread_count).toBe(3);
    expect(await wsAlice.next('message.read', (e) => e.room_id === readRoom)).toMatchObject({ user_id: bob.user.id, message_id: ids[1] });

    const r4 = await markRead(bob, { message_id: ids[3] });
    expect(r4.body).toMatchObject({ message_id: ids[3], moved: true });
    expect((await roomEntry(t.url, bob, readRoom)).unread_count).toBe(1);
    expect(await wsAlice.next('message.read', (e) => e.room_id === readRoom)).toMatchObject({ user_id: bob.user.id, message_id: ids[3] });

    // Marking an older message does not move the receipt back; the answer is the receipt in force.
    const back = await markRead(bob, { message_id: ids[0] });
    expect(back.status).toBe(200);
    expect(back.body).toMatchObject({ message_id: ids[3], moved: false, read_at: r4.body.read_at });
    expect((await roomEntry(t.url, bob, readRoom)).unread_count).toBe(1);

    // Without message_id: the latest message. No event was sent for the step back.
    const latest = await markRead(bob, {});
    expect(latest.body).toMatchObject({ message_id: ids[4], moved: true });
    expect((await roomEntry(t.url, bob, readRoom)).unread_count).toBe(0);
    expect(await wsAlice.next('message.read', (e) => e.room_id === readRoom)).toMatchObject({ user_id: bob.user.id, message_id: ids[4] });
    expect(wsAlice.all('message.read').filter((e) => e.room_id === readRoom).map((e) => e.message_id)).toEqual([ids[1], ids[3], ids[4]]);

    const { rows } = await t.hub.db.query('SELECT read_message_id FROM room_members WHERE room_id = $1 AND user_id = $2', [readRoom, bob.user.id]);
    expect(rows[0].read_message_id).toBe(ids[4]);
  });

  it('counts only newer messages from others as unread', async () => {
    const m6 = await sendMessage(t.url, alice, readRoom, 'm6');
    await sendMessage(t.url, bob, readRoom, 'bob writes');
    expect((await roomEntry(t.url, bob, readRoom)).unread_count).toBe(1);
    expect((await markRead(bob, { message_id: m6.id })).body.moved).toBe(true);
    expect((await roomEntry(t.url, bob, readRoom)).unread_count).toBe(0);
  });

  it('refuses a message of another room (404) and non-members (403)', async () => {
    const foreign = (await history(alice, roomId, '?limit=1')).body.messages[0].id;
    expectError(await markRead(bob, { message_id: foreign }), 404, 'INVALID_MESSAGE');
    expectError(await markRead(bob, { message_id: crypto.randomUUID() }), 404, 'INVALID_MESSAGE');
    expectError(await markRead(eve, {}), 403, 'NOT_A_MEMBER');
  });
});
