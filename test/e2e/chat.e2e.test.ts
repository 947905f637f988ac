/**
 * End to end: `npm start` in a child process on a fresh data dir with the embedded PGlite (no
 * DATABASE_URL), then a whole chat between two users over real WebSockets, plus an outsider. The
 * steps share one hub and run in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, register, type Session } from '../helpers/hub.js';
import { spawnHub, type SpawnedHub } from './spawn.js';

const RESUME_COUNT = 100;

let hub: SpawnedHub;
let alice: Session;
let bob: Session;
let carol: Session;
let roomId: string;
let a: WsClient;
let b: WsClient;
/** Highest stream_position among the room events bob's sockets received. */
let bobPosition = 0;

const isFrom = (user: Session) => (e: any) => e.message?.user_id === user.user.id;

/** Takes bob's next event of `type`, remembering its stream position. */
async function bobNext(type: string, match: (e: any) => boolean = () => true, timeoutMs?: number) {
  const e = await b.next(type, match, timeoutMs);
  if (typeof e.stream_position === 'number') bobPosition = Math.max(bobPosition, e.stream_position);
  return e;
}

/** Sends over alice's socket and waits for the `message.sent` ack. */
async function aliceSends(content: string, txnId: string, extra: Record<string, unknown> = {}) {
  a.send({ type: 'message.send', room_id: roomId, content, txn_id: txnId, ...extra });
  const ack = await a.next('message.sent', (e) => e.txn_id === txnId);
  expect(ack.duplicate).toBe(false);
  return ack;
}

beforeAll(async () => {
  hub = await spawnHub({ toml: '[realtime]\npresence_grace_ms = 0\n', timeoutMs: 90_000 });
  console.log(`e2e: npm start -> "Switchboard listening" in ${Math.round(hub.startupMs)} ms (hub's own startup_ms ${hub.hubStartupMs}, embedded PGlite, fresh data dir)`);
}, 120_000);

afterAll(async () => {
  a?.close();
  b?.close();
  await hub?.stop();
}, 30_000);

describe('chat end to end (npm start, embedded PGlite)', { timeout: 60_000 }, () => {
  it('is ready and uses the embedded database', async () => {
    const ready = await api(hub.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(hub.output()).toContain('"embedded_db":true');
  });

  it('registers two users and alice creates a direct room with bob', async () => {
    alice = await register(hub.url, 'Alice');
    bob = await register(hub.url, 'Bob');
    carol = await register(hub.url, 'Carol');
    const room = await api(hub.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } });
    expect(room.status).toBe(201);
    expect(room.body.type).toBe('direct');
    expect(room.body.members.map((m: any) => m.user_id).sort()).toEqual([alice.user.id, bob.user.id].sort());
    roomId = room.body.id;
  });

  it('delivers a message: bob gets message.new, alice the ack and then message.delivered', async () => {
    a = await WsClient.connect(hub.wsUrl, alice.token);
    b = await WsClient.connect(hub.wsUrl, bob.token);
    const ack = await aliceSends('Hello Bob', 'hello');
    const got = await bobNext('message.new', isFrom(alice));
    expect(got.message).toMatchObject({ id: ack.message_id, room_id: roomId, content: 'Hello Bob', user_name: 'Alice' });
    expect(got.stream_position).toBe(ack.stream_position);
    const delivered = await a.next('message.delivered', (e) => e.message_id === ack.message_id);
    expect(delivered.room_id).toBe(roomId);
  });

  it('bob replies with reply_to and alice receives the reply', async () => {
    const [hello] = b.all('message.new');
    b.send({ type: 'message.send', room_id: roomId, content: 'Hi Alice', reply_to: hello.message.id, txn_id: 'reply' });
    const ack = await b.next('message.sent', (e) => e.txn_id === 'reply');
    const got = await a.next('message.new', isFrom(bob));
    expect(got.message).toMatchObject({ id: ack.message_id, content: 'Hi Alice', reply_to: hello.message.id });
  });

  it('typing.start and typing.stop reach bob', async () => {
    a.send({ type: 'typing.start', room_id: roomId });
    const on = await b.next('typing', (e) => e.user_id === alice.user.id);
    expect(on).toMatchObject({ room_id: roomId, typing: true, user_name: 'Alice' });
    a.send({ type: 'typing.stop', room_id: roomId });
    const off = await b.next('typing', (e) => e.user_id === alice.user.id);
    expect(off).toMatchObject({ room_id: roomId, typing: false });
  });

  it('bob reads the message and alice gets message.read', async () => {
    const [hello] = b.all('message.new');
    b.send({ type: 'message.read', room_id: roomId, message_id: hello.message.id });
    const read = await a.next('message.read', (e) => e.user_id === bob.user.id);
    expect(read).toMatchObject({ room_id: roomId, message_id: hello.message.id });
    await bobNext('message.read', (e) => e.user_id === bob.user.id);
  });

  it("alice's presence is visible to bob", async () => {
    const res = await api(hub.url, 'GET', `/api/presence/${alice.user.id}`, { token: bob.token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ user_id: alice.user.id, status: 'online' });
  });

  it('search finds a message', async () => {
    const ack = await aliceSends('The quokka is the happiest marsupial', 'quokka');
    await bobNext('message.new', (e) => e.message.id === ack.message_id);
    const res = await api(hub.url, 'GET', '/api/search/messages?q=quokka', { token: bob.token });
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: any) => r.message.id)).toEqual([ack.message_id]);
    expect(res.body.results[0].highlight).toContain('<mark>quokka</mark>');
  });

  it(`bob resumes with since and gets the ${RESUME_COUNT} missed messages in order, exactly once, before ready, then live ones`, async () => {
    b.close();
    await b.waitClosed();
    const acks = [];
    for (let i = 0; i < RESUME_COUNT; i++) acks.push(await aliceSends(`missed ${i}`, `missed-${i}`));

    b = await WsClient.connect(hub.wsUrl, bob.token, { since: bobPosition });
    const readyIndex = b.events.findIndex((e) => e.type === 'ready');
    // Room events (those with a stream_position); ephemeral ones such as bob's own presence may interleave.
    const backlog = b.events.slice(0, readyIndex).filter((e) => e.stream_position !== undefined);
    expect(backlog.map((e) => e.type)).toEqual(acks.map(() => 'message.new'));
    expect(backlog.map((e) => e.message.id)).toEqual(acks.map((ack) => ack.message_id));
    expect(backlog.map((e) => e.stream_position)).toEqual(acks.map((ack) => ack.stream_position));
    expect(b.events[readyIndex]).toMatchObject({ resumed: RESUME_COUNT, stream_position: acks[RESUME_COUNT - 1].stream_position });
    bobPosition = acks[RESUME_COUNT - 1].stream_position; // connect() already took everything up to ready

    const live = await aliceSends('back online?', 'live');
    const got = await bobNext('message.new', isFrom(alice));
    expect(got.message.id).toBe(live.message_id);
    const ids = b.all('message.new').map((e) => e.message.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('pages through history with limit and before', async () => {
    const all: any[] = [];
    let before: string | undefined;
    for (let page = 0; page < 20; page++) {
      const res = await api(hub.url, 'GET', `/api/rooms/${roomId}/messages?limit=25${before ? `&before=${before}` : ''}`, { token: bob.token });
      expect(res.status).toBe(200);
      expect(res.body.messages.length).toBeLessThanOrEqual(25);
      all.unshift(...res.body.messages);
      if (!res.body.has_more) break;
      expect(res.body.messages).toHaveLength(25);
      before = res.body.messages[0].id;
    }
    // hello, the reply, quokka, the missed ones, live: oldest first, each once.
    expect(all).toHaveLength(3 + RESUME_COUNT + 1);
    expect(all.map((m) => m.content).slice(0, 3)).toEqual(['Hello Bob', 'Hi Alice', 'The quokka is the happiest marsupial']);
    expect(all.at(-1).content).toBe('back online?');
    const positions = all.map((m) => m.stream_position);
    expect(positions).toEqual([...positions].sort((x, y) => x - y));
    expect(new Set(all.map((m) => m.id)).size).toBe(all.length);
  });

  it('refuses a non-member: 403 on history, NOT_A_MEMBER over the WebSocket', async () => {
    const history = await api(hub.url, 'GET', `/api/rooms/${roomId}/messages`, { token: carol.token });
    expect(history.status).toBe(403);
    expect(history.body.error.code).toBe('NOT_A_MEMBER');

    const c = await WsClient.connect(hub.wsUrl, carol.token);
    try {
      c.send({ type: 'message.send', room_id: roomId, content: 'let me in', txn_id: 'intrude' });
      const err = await c.next('error');
      expect(err).toMatchObject({ code: 'NOT_A_MEMBER', txn_id: 'intrude' });
      expect(c.all('message.sent')).toHaveLength(0);
    } finally {
      c.close();
    }
    const latest = await api(hub.url, 'GET', `/api/rooms/${roomId}/messages?limit=1`, { token: alice.token });
    expect(latest.body.messages[0].content).toBe('back online?');
  });

  it('answers a malformed frame with INVALID_FRAME and keeps the socket usable', async () => {
    a.send('{not json');
    const err = await a.next('error');
    expect(err.code).toBe('INVALID_FRAME');
    a.send({ type: 'ping', txn_id: 'still-there' });
    const pong = await a.next('pong');
    expect(pong.txn_id).toBe('still-there');
    expect(a.closed).toBeNull();
  });

  it('bob sees alice go offline when her last socket closes', async () => {
    a.close();
    await a.waitClosed();
    const offline = await b.next('presence', (e) => e.user_id === alice.user.id && e.status === 'offline', 15_000);
    expect(offline.last_seen).toEqual(expect.any(String));
    const res = await api(hub.url, 'GET', `/api/presence/${alice.user.id}`, { token: bob.token });
    expect(res.body.status).toBe('offline');
  });
});
