/** Agent tokens, bot users and the REST tool endpoints (/api/mcp/tools). */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, nextStreamRead, register, type Session, startTestHub, type TestHub, WsClient } from '../helpers/hub.js';

const ALL_SCOPES = ['rooms:read', 'messages:read', 'messages:write', 'search', 'presence:read'];

let t: TestHub;
let alice: Session; // a human on the WebSocket
let bob: Session; // the agent acts as Bob
let carol: Session; // shares no room with Bob
let roomId: string; // Alice and Bob
let carolRoom: string; // Carol alone

async function createToken(session: Session, body: Record<string, unknown> = {}) {
  const res = await api(t.url, 'POST', '/api/agent-tokens', { token: session.token, body: { name: 'agent', scopes: ALL_SCOPES, ...body } });
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string; scopes: string[]; expires_at: string | null };
}

/** POST /api/mcp/tools/:name */
function tool(token: string, name: string, args: unknown = {}) {
  return api(t.url, 'POST', `/api/mcp/tools/${name}`, { token, body: args });
}

beforeAll(async () => {
  t = await startTestHub();
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
  carol = await register(t.url, 'Carol');
  roomId = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'Ops', members: [bob.user.id] } })).body.id;
  carolRoom = (await api(t.url, 'POST', '/api/rooms', { token: carol.token, body: { type: 'group', name: 'Private' } })).body.id;
});
afterAll(async () => t?.close());

describe('agent tokens', () => {
  it('are shown once, stored as a sha256 hash, listed without the secret and revocable', async () => {
    const created = await createToken(bob, { name: 'my agent', scopes: ['rooms:read'] });
    expect(created.token).toMatch(/^sbat_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({ name: 'my agent', scopes: ['rooms:read'], user_id: bob.user.id, expires_at: null, last_used_at: null });

    const { rows } = await t.hub.db.query('SELECT * FROM agent_tokens WHERE id = $1', [created.id]);
    expect(rows[0].token_hash).toBe(crypto.createHash('sha256').update(created.token).digest('hex'));
    expect(JSON.stringify(rows[0])).not.toContain(created.token.slice(5));

    expect((await tool(created.token, 'list_rooms')).status).toBe(200);
    const list = await api(t.url, 'GET', '/api/agent-tokens', { token: bob.token });
    const listed = list.body.find((x: any) => x.id === created.id);
    expect(listed).toMatchObject({ name: 'my agent', scopes: ['rooms:read'] });
    expect(listed.token).toBeUndefined();
    expect(listed.last_used_at).not.toBeNull();

    // Another user can neither see nor revoke it.
    expect((await api(t.url, 'GET', '/api/agent-tokens', { token: alice.token })).body.some((x: any) => x.id === created.id)).toBe(false);
    expect((await api(t.url, 'DELETE', `/api/agent-tokens/${created.id}`, { token: alice.token })).body.error.code).toBe('INVALID_AGENT_TOKEN');

    expect((await api(t.url, 'DELETE', `/api/agent-tokens/${created.id}`, { token: bob.token })).status).toBe(204);
    const after = await tool(created.token, 'list_rooms');
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('UNAUTHORIZED');
    expect((await api(t.url, 'DELETE', `/api/agent-tokens/${created.id}`, { token: bob.token })).status).toBe(404);
  });

  it('expire', async () => {
    const created = await createToken(bob, { expires_in_s: 3600 });
    expect(Date.parse(created.expires_at!) - Date.now()).toBeGreaterThan(3590_000);
    expect((await tool(created.token, 'list_rooms')).status).toBe(200);
    await t.hub.db.query("UPDATE agent_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [created.id]);
    const res = await tool(created.token, 'list_rooms');
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('TOKEN_EXPIRED');
  });

  it('reject unknown scopes, too short lifetimes and blank names', async () => {
    for (const body of [{ name: 'x', scopes: ['admin'] }, { name: 'x', scopes: [] }, { name: 'x', scopes: ['search'], expires_in_s: 5 }, { name: '   ', scopes: ['search'] }]) {
      const res = await api(t.url, 'POST', '/api/agent-tokens', { token: bob.token, body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
  });

  it('work only on the agent API, and access tokens do not work there', async () => {
    const { token } = await createToken(bob);
    const rest = await api(t.url, 'GET', '/api/rooms', { token });
    expect(rest.status).toBe(401);
    expect((await api(t.url, 'POST', '/api/agent-tokens', { token, body: { name: 'x', scopes: ['search'] } })).status).toBe(401);
    const withAccessToken = await api(t.url, 'GET', '/api/mcp/tools', { token: bob.token });
    expect(withAccessToken.status).toBe(401);
    expect(withAccessToken.body.error.code).toBe('UNAUTHORIZED');
    expect((await api(t.url, 'GET', '/api/mcp/tools')).status).toBe(401);
  });
});

describe('bot users', () => {
  it('are created by admins only, act through their token, and their creator can revoke it', async () => {
    const denied = await api(t.url, 'POST', '/api/bots', { token: alice.token, body: { name: 'Helper', scopes: ALL_SCOPES } });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('FORBIDDEN');

    await t.hub.db.query('UPDATE users SET is_admin = true WHERE id = $1', [alice.user.id]);
    const blank = await api(t.url, 'POST', '/api/bots', { token: alice.token, body: { name: ' \t ', scopes: ALL_SCOPES } });
    expect(blank.status).toBe(400);
    expect(blank.body.error.code).toBe('VALIDATION_FAILED');
    const res = await api(t.url, 'POST', '/api/bots', { token: alice.token, body: { name: 'Helper', scopes: ALL_SCOPES } });
    expect(res.status).toBe(201);
    const { user, token } = res.body;
    expect(user.name).toBe('Helper');
    expect(token).toMatchObject({ user_id: user.id, name: 'Helper' });
    const { rows } = await t.hub.db.query('SELECT email, password_hash FROM users WHERE id = $1', [user.id]);
    expect(rows[0]).toEqual({ email: null, password_hash: null });

    // The bot sees no room until someone adds it; then it can talk there.
    expect((await tool(token.token, 'list_rooms')).body.rooms).toEqual([]);
    expect((await tool(token.token, 'send_message', { room_id: roomId, content: 'hi' })).body.error.code).toBe('NOT_A_MEMBER');
    expect((await api(t.url, 'POST', `/api/rooms/${roomId}/members`, { token: alice.token, body: { user_ids: [user.id] } })).status).toBe(200);
    const sent = await tool(token.token, 'send_message', { room_id: roomId, content: 'Helper here' });
    expect(sent.status).toBe(200);
    expect(sent.body.message).toMatchObject({ user_id: user.id, user_name: 'Helper', content: 'Helper here' });

    const listed = await api(t.url, 'GET', '/api/agent-tokens', { token: alice.token });
    expect(listed.body.map((x: any) => x.id)).toContain(token.id);
    expect((await api(t.url, 'DELETE', `/api/agent-tokens/${token.id}`, { token: alice.token })).status).toBe(204);
    expect((await tool(token.token, 'list_rooms')).status).toBe(401);
    await api(t.url, 'DELETE', `/api/rooms/${roomId}/members/${user.id}`, { token: alice.token });
  });

  it('gives bots created at the same moment with the same name distinct usernames', async () => {
    await t.hub.db.query('UPDATE users SET is_admin = true WHERE id = $1', [alice.user.id]);
    const created = await Promise.all(Array.from({ length: 8 }, () => api(t.url, 'POST', '/api/bots', { token: alice.token, body: { name: 'Twin Bot', scopes: ALL_SCOPES } })));
    expect(created.map((r) => r.status)).toEqual(Array(8).fill(201));
    const { rows } = await t.hub.db.query<{ username: string }>('SELECT username FROM users WHERE id = ANY($1::uuid[])', [created.map((r) => r.body.user.id)]);
    const usernames = rows.map((r) => r.username).sort();
    expect(usernames).toEqual(['twinbot', ...Array.from({ length: 7 }, (_, i) => `twinbot${i + 2}`)].sort());
  });
});

describe('REST tool endpoints', () => {
  let agent: string;
  beforeAll(async () => {
    agent = (await createToken(bob)).token;
  });

  it('list every tool with input and output JSON Schemas and its scope', async () => {
    const res = await api(t.url, 'GET', '/api/mcp/tools', { token: agent });
    expect(res.status).toBe(200);
    const names = res.body.tools.map((x: any) => x.name);
    expect(names.sort()).toEqual(
      ['get_presence', 'get_room', 'list_members', 'list_rooms', 'mark_read', 'react', 'read_messages', 'search_messages', 'send_message', 'wait_for_messages'].sort(),
    );
    for (const x of res.body.tools) {
      expect(x.inputSchema.type).toBe('object');
      expect(x.outputSchema.type).toBe('object');
      expect(ALL_SCOPES).toContain(x.scope);
      expect(x.description.length).toBeGreaterThan(20);
    }
    expect(res.body.tools.find((x: any) => x.name === 'send_message').inputSchema.required).toEqual(['room_id', 'content']);
  });

  it('hold a conversation with a human on the WebSocket', async () => {
    const ws = await WsClient.connect(t.wsUrl, alice.token);
    const cursor = (await tool(agent, 'wait_for_messages', { timeout_ms: 0 })).body.next_since;
    // The agent has looked, found nothing and is waiting when Alice speaks.
    const looked = nextStreamRead(t);
    const waiting = tool(agent, 'wait_for_messages', { since: cursor, timeout_ms: 10_000 });
    await looked;
    ws.send({ type: 'message.send', room_id: roomId, content: 'Agent, what is the status?', txn_id: 'q1' });
    const question = await ws.next('message.sent');
    const woke = await waiting;
    expect(woke.status).toBe(200);
    expect(woke.body.timed_out).toBe(false);
    expect(woke.body.messages.map((m: any) => m.id)).toEqual([question.message_id]);
    expect(woke.body.messages[0]).toMatchObject({ content: 'Agent, what is the status?', user_id: alice.user.id, stream_position: question.stream_position });

    const answer = await tool(agent, 'send_message', { room_id: roomId, content: 'All green.', reply_to: question.message_id, txn_id: 'a1' });
    expect(answer.status).toBe(200);
    expect(answer.body.duplicate).toBe(false);
    const heard = await ws.next('message.new', (e) => e.message.id === answer.body.message.id);
    expect(heard.message).toMatchObject({ content: 'All green.', user_id: bob.user.id, reply_to: question.message_id });

    // Idempotent retry.
    const retry = await tool(agent, 'send_message', { room_id: roomId, content: 'All green.', reply_to: question.message_id, txn_id: 'a1' });
    expect(retry.body).toMatchObject({ duplicate: true, message: { id: answer.body.message.id } });

    const reacted = await tool(agent, 'react', { message_id: question.message_id, key: '👍' });
    expect(reacted.body).toEqual({ key: '👍', count: 1 });
    expect((await ws.next('reaction.added')).user_id).toBe(bob.user.id);
    const read = await tool(agent, 'mark_read', { room_id: roomId });
    expect(read.body).toMatchObject({ room_id: roomId, message_id: answer.body.message.id, moved: true });

    // The next wait starts where the last one ended: Alice's message sent in between is not missed.
    ws.send({ type: 'message.send', room_id: roomId, content: 'Thanks!', txn_id: 'q2' });
    const thanks = await ws.next('message.sent');
    const next = await tool(agent, 'wait_for_messages', { since: woke.body.next_since, timeout_ms: 5000 });
    expect(next.body.messages.map((m: any) => m.id)).toEqual([thanks.message_id]);
    ws.close();
  });

  it('wait_for_messages returns what was said in a room before the user was removed from it', async () => {
    const room = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'Short stay', members: [bob.user.id] } })).body.id;
    const cursor = (await tool(agent, 'wait_for_messages', { timeout_ms: 0 })).body.next_since;
    const said = await api(t.url, 'POST', `/api/rooms/${room}/messages`, { token: alice.token, body: { content: 'said before the removal' } });
    expect((await api(t.url, 'DELETE', `/api/rooms/${room}/members/${bob.user.id}`, { token: alice.token })).status).toBe(200);
    const got = await tool(agent, 'wait_for_messages', { since: cursor, timeout_ms: 2000 });
    expect(got.body.messages.map((m: any) => m.id)).toEqual([said.body.id]);
    // Waiting on one room never yields another room's messages, left or not.
    const other = await tool(agent, 'wait_for_messages', { since: cursor, room_id: roomId, timeout_ms: 0 });
    expect(other.body.messages.map((m: any) => m.room_id).filter((id: string) => id !== roomId)).toEqual([]);
  });

  it('read history by id and by stream position', async () => {
    const first = await tool(agent, 'send_message', { room_id: roomId, content: 'history one' });
    const second = await tool(agent, 'send_message', { room_id: roomId, content: 'history two' });
    const since = await tool(agent, 'read_messages', { room_id: roomId, since: first.body.message.stream_position });
    expect(since.body).toEqual({ messages: [second.body.message], has_more: false });
    const latest = await tool(agent, 'read_messages', { room_id: roomId, limit: 1 });
    expect(latest.body.messages.map((m: any) => m.id)).toEqual([second.body.message.id]);
    expect(latest.body.has_more).toBe(true);
    const older = await tool(agent, 'read_messages', { room_id: roomId, before: second.body.message.id, limit: 1 });
    expect(older.body.messages.map((m: any) => m.id)).toEqual([first.body.message.id]);
    const both = await tool(agent, 'read_messages', { room_id: roomId, before: second.body.message.id, since: 1 });
    expect(both.status).toBe(400);
    expect(both.body.error.code).toBe('VALIDATION_FAILED');
  });

  it('search, list rooms and members, and see presence only of people sharing a room', async () => {
    await tool(agent, 'send_message', { room_id: roomId, content: 'the quarterly zeppelin report' });
    const found = await tool(agent, 'search_messages', { query: 'zeppelin' });
    expect(found.body.results.map((r: any) => r.message.content)).toEqual(['the quarterly zeppelin report']);
    expect((await tool(agent, 'search_messages', { query: 'zeppelin', room_id: carolRoom })).body.error.code).toBe('NOT_A_MEMBER');

    const rooms = await tool(agent, 'list_rooms');
    expect(rooms.body.rooms.map((r: any) => r.id)).toEqual([roomId]);
    const members = await tool(agent, 'list_members', { room_id: roomId });
    expect(members.body.members.map((m: any) => m.user_id).sort()).toEqual([alice.user.id, bob.user.id].sort());
    expect((await tool(agent, 'get_room', { room_id: roomId })).body.room).toMatchObject({ id: roomId, name: 'Ops' });

    const ws = await WsClient.connect(t.wsUrl, alice.token);
    const presence = await tool(agent, 'get_presence', { user_ids: [alice.user.id, carol.user.id] });
    expect(presence.body.presence).toEqual([expect.objectContaining({ user_id: alice.user.id, status: 'online' })]);
    ws.close();
  });

  it('refuse calls outside membership with error codes and store nothing', async () => {
    for (const [name, args] of [
      ['get_room', { room_id: carolRoom }],
      ['list_members', { room_id: carolRoom }],
      ['read_messages', { room_id: carolRoom }],
      ['read_messages', { room_id: carolRoom, since: 0 }],
      ['send_message', { room_id: carolRoom, content: 'intrusion' }],
      ['mark_read', { room_id: carolRoom }],
      ['wait_for_messages', { room_id: carolRoom, timeout_ms: 0 }],
    ] as const) {
      const res = await tool(agent, name, args);
      expect(res.status, name).toBe(403);
      expect(res.body.error.code, name).toBe('NOT_A_MEMBER');
    }
    const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM messages WHERE room_id = $1', [carolRoom]);
    expect(rows[0].n).toBe(0);
    const missing = await tool(agent, 'get_room', { room_id: crypto.randomUUID() });
    expect(missing.body.error.code).toBe('INVALID_ROOM');
  });

  it('refuse calls outside the token\'s scopes', async () => {
    const readOnly = (await createToken(bob, { scopes: ['messages:read'] })).token;
    const res = await tool(readOnly, 'send_message', { room_id: roomId, content: 'should not be sent' });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('INSUFFICIENT_SCOPE');
    for (const name of ['list_rooms', 'search_messages', 'get_presence', 'react', 'mark_read']) {
      expect((await tool(readOnly, name, {})).body.error.code, name).toBe('INSUFFICIENT_SCOPE');
    }
    expect((await tool(readOnly, 'read_messages', { room_id: roomId })).status).toBe(200);
    const { rows } = await t.hub.db.query("SELECT count(*)::int AS n FROM messages WHERE content = 'should not be sent'");
    expect(rows[0].n).toBe(0);
  });

  it('validate arguments against the input schema', async () => {
    const cases: [string, unknown][] = [
      ['send_message', { room_id: roomId }],
      ['send_message', { room_id: 'not-a-uuid', content: 'x' }],
      ['send_message', { room_id: roomId, content: 'x', colour: 'red' }],
      ['wait_for_messages', { timeout_ms: 60_000 }],
      ['read_messages', { room_id: roomId, limit: 0 }],
      ['get_presence', { user_ids: [] }],
      ['list_rooms', 'rooms please'],
      // Stream positions beyond what PostgreSQL's bigint (and a JavaScript number) holds exactly.
      ['read_messages', { room_id: roomId, since: 1e20 }],
      ['wait_for_messages', { since: 1e300, timeout_ms: 0 }],
    ];
    for (const [name, args] of cases) {
      const res = await tool(agent, name, args);
      expect(res.status, JSON.stringify(args)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    const unknown = await tool(agent, 'drop_tables');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('INVALID_TOOL');
  });

  it('miss nothing and repeat nothing when an agent follows a burst with next_since', async () => {
    let since = (await tool(agent, 'wait_for_messages', { timeout_ms: 0 })).body.next_since;
    const ids: string[] = [];
    const sendSome = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        ids.push((await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: `burst ${i}` } })).body.id);
      }
    };
    await sendSome(0, 15); // a backlog larger than one page
    const sending = sendSome(15, 30); // and more while the agent reads
    const received: { id: string; stream_position: number }[] = [];
    while (received.length < 30) {
      const res = await tool(agent, 'wait_for_messages', { since, limit: 7, timeout_ms: 5000 });
      expect(res.body.timed_out).toBe(false);
      expect(res.body.messages.length).toBeLessThanOrEqual(7);
      received.push(...res.body.messages);
      since = res.body.next_since;
    }
    await sending;
    expect(received.map((m) => m.id)).toEqual(ids);
    expect((await tool(agent, 'wait_for_messages', { since, timeout_ms: 0 })).body.messages).toEqual([]);
  });

  it('time out a wait with nothing new, with a cursor to continue from', async () => {
    const started = Date.now();
    const res = await tool(agent, 'wait_for_messages', { room_id: roomId, timeout_ms: 300 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(res.body).toMatchObject({ messages: [], timed_out: true });
    expect(res.body.next_since).toBe(await t.hub.stream.maxPosition());
  });

  it('skip the agent\'s own messages unless asked, and see rooms joined during a wait', async () => {
    const since = await t.hub.stream.maxPosition();
    const own = await tool(agent, 'send_message', { room_id: roomId, content: 'note to self' });
    const quiet = await tool(agent, 'wait_for_messages', { since, timeout_ms: 100 });
    expect(quiet.body.messages).toEqual([]);
    expect(quiet.body.next_since).toBe(own.body.message.stream_position);
    const withOwn = await tool(agent, 'wait_for_messages', { since, include_own: true, timeout_ms: 100 });
    expect(withOwn.body.messages.map((m: any) => m.id)).toEqual([own.body.message.id]);

    const waiting = tool(agent, 'wait_for_messages', { since: quiet.body.next_since, timeout_ms: 10_000 });
    const room = await api(t.url, 'POST', '/api/rooms', { token: carol.token, body: { type: 'group', name: 'New', members: [bob.user.id] } });
    const hello = await api(t.url, 'POST', `/api/rooms/${room.body.id}/messages`, { token: carol.token, body: { content: 'welcome Bob' } });
    const woke = await waiting;
    expect(woke.body.messages.map((m: any) => m.id)).toEqual([hello.body.id]);
  });
});

describe('shutdown', () => {
  it('ends a waiting wait_for_messages at once (timed_out) and closes its connection, so the hub closes promptly', async () => {
    const other = await startTestHub();
    let closed = false;
    try {
      const owner = await register(other.url, 'Erin');
      const { token } = (await api(other.url, 'POST', '/api/agent-tokens', { token: owner.token, body: { name: 'a', scopes: ALL_SCOPES } })).body;
      const waiting = nextStreamRead(other);
      const call = api(other.url, 'POST', '/api/mcp/tools/wait_for_messages', { token, body: { timeout_ms: 30_000 } });
      await waiting;
      const started = Date.now();
      await other.close();
      closed = true;
      // Without the abort: the 30 s wait, then the idle keep-alive connection's timeout (72 s).
      expect(Date.now() - started).toBeLessThan(5_000);
      const res = await call;
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ messages: [], timed_out: true });
      expect(res.headers.get('connection')).toBe('close');
    } finally {
      if (!closed) await other.close();
    }
  });
});

describe('send rate limit', () => {
  it('counts agent sends against the user\'s limit, shared with REST', async () => {
    const limited = await startTestHub({ rate_limits: { messages_per_user_per_min: 2 } });
    try {
      const owner = await register(limited.url, 'Dana');
      const room = (await api(limited.url, 'POST', '/api/rooms', { token: owner.token, body: { type: 'group', name: 'Busy' } })).body.id;
      const { token } = (await api(limited.url, 'POST', '/api/agent-tokens', { token: owner.token, body: { name: 'a', scopes: ALL_SCOPES } })).body;
      expect((await api(limited.url, 'POST', `/api/rooms/${room}/messages`, { token: owner.token, body: { content: 'one (REST)' } })).status).toBe(201);
      const send = (content: string) => api(limited.url, 'POST', '/api/mcp/tools/send_message', { token, body: { room_id: room, content } });
      expect((await send('two (agent)')).status).toBe(200);
      const refused = await send('three (agent)');
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe('RATE_LIMITED');
      const { rows } = await limited.hub.db.query('SELECT count(*)::int AS n FROM messages WHERE room_id = $1', [room]);
      expect(rows[0].n).toBe(2);
    } finally {
      await limited.close();
    }
  });
});
