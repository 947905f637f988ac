/**
 * The SDK against real hubs (test/helpers/hub.ts): sign-in, the typed REST client, the socket with
 * the store, token refresh before expiry, reconnect and resume through a link that is cut (nothing
 * lost, nothing twice), and the outbox resending with the same txn_id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { api, register, startTestHub, type Session, type TestHub } from '../../test/helpers/hub.js';
import { MemorySessionStore, SwitchboardClient, SwitchboardError, type ClientOptions, type ServerEvent, type WebSocketConstructor } from '../src/index.js';
import { CutProxy } from './cut-proxy.js';

let t: TestHub;
const WS = WebSocket as unknown as WebSocketConstructor;
const options = (baseUrl: string, extra: Partial<ClientOptions> = {}): ClientOptions => ({ baseUrl, WebSocket: WS, reconnectDelayMs: 50, maxReconnectDelayMs: 200, ...extra });
const password = 'correct horse battery';

/** Polls `check` until it returns true (at most `ms`). */
async function until(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  t = await startTestHub({ auth: { access_token_ttl_s: 30 }, realtime: { typing_timeout_ms: 2000 } });
});
afterAll(async () => t?.close());

describe('SwitchboardClient', () => {
  it('registers, logs in and calls the typed REST API; bad credentials are a SwitchboardError with the hub code', async () => {
    const email = `sdk-${Date.now()}@example.test`;
    const client = await SwitchboardClient.register(options(t.url), { email, name: 'Sdk', password });
    expect(client.user).toMatchObject({ email, name: 'Sdk' });
    const me = await client.call(client.api.GET('/api/me'));
    expect(me.id).toBe(client.user.id);
    const again = await SwitchboardClient.login(options(t.url), { email, password });
    expect(again.deviceId).not.toBe(client.deviceId);
    const err = await SwitchboardClient.login(options(t.url), { email, password: 'wrong password' }).catch((e) => e);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ code: 'INVALID_CREDENTIALS', status: 401 });
    const missing = await client.call(client.api.GET('/api/rooms/{id}', { params: { path: { id: '00000000-0000-4000-8000-000000000000' } } })).catch((e) => e);
    expect(missing).toMatchObject({ code: 'INVALID_ROOM', status: 404 });
  });

  it('connects, loads rooms into the store, sends through the outbox and applies live events', async () => {
    const bob: Session = await register(t.url, 'Bob');
    const alice = await SwitchboardClient.register(options(t.url), { email: `alice-${Date.now()}@example.test`, name: 'Alice', password });
    const room = await alice.call(alice.api.POST('/api/rooms', { body: { type: 'direct', members: [bob.user.id] } }));
    await alice.connect();
    expect(alice.connectionState).toBe('live');
    expect(alice.store.room(room.id)).toMatchObject({ type: 'direct', unread_count: 0 });
    expect(alice.store.displayName(alice.store.room(room.id)!)).toBe('Bob');

    const sent = await alice.send(room.id, 'Hello <@' + bob.user.id + '>');
    await until(() => alice.outbox.list().length === 0, 5000, 'the acknowledgement');
    await until(() => alice.store.room(room.id)!.messages.length === 1, 5000, 'the message in the store');
    const [mine] = alice.store.room(room.id)!.messages;
    expect(mine).toMatchObject({ content: sent.content, mentions: [bob.user.id], user_id: alice.user.id });

    // Bob answers over REST, reacts and reads: the store follows.
    const answer = await api(t.url, 'POST', `/api/rooms/${room.id}/messages`, { token: bob.token, body: { content: 'Hi Alice' } });
    await until(() => alice.store.room(room.id)!.unread_count === 1, 5000, 'an unread message');
    await api(t.url, 'PUT', `/api/messages/${mine.id}/reactions/${encodeURIComponent('👍')}`, { token: bob.token });
    await api(t.url, 'POST', `/api/rooms/${room.id}/read`, { token: bob.token, body: { message_id: answer.body.id } });
    await until(() => alice.store.message(room.id, mine.id)!.reactions.length === 1, 5000, 'the reaction');
    expect(alice.store.message(room.id, mine.id)!.reactions[0]).toMatchObject({ key: '👍', count: 1, user_ids: [bob.user.id] });
    await until(() => alice.store.isRead(alice.store.room(room.id)!, alice.store.message(room.id, mine.id)!), 5000, 'the read mark');

    await alice.markRead(room.id, answer.body.id);
    await until(() => alice.store.room(room.id)!.unread_count === 0, 5000, 'unread back to 0');

    // Edits and redactions.
    await api(t.url, 'PATCH', `/api/messages/${answer.body.id}`, { token: bob.token, body: { content: 'Hi Alice!' } });
    await until(() => alice.store.message(room.id, answer.body.id)!.edited_at !== null, 5000, 'the edit');
    expect(alice.store.message(room.id, answer.body.id)!.content).toBe('Hi Alice!');
    await api(t.url, 'DELETE', `/api/messages/${answer.body.id}`, { token: bob.token });
    await until(() => alice.store.message(room.id, answer.body.id)!.deleted, 5000, 'the tombstone');
    expect(alice.store.message(room.id, answer.body.id)!.content).toBe('');

    // Typing from Bob's socket shows in Alice's store, and ends.
    const bobClient = await SwitchboardClient.login(options(t.url), { email: bob.user.email, password });
    await bobClient.connect();
    bobClient.setTyping(room.id, true);
    await until(() => alice.store.room(room.id)!.typing.get(bob.user.id) === 'Bob', 5000, 'typing');
    bobClient.setTyping(room.id, false);
    await until(() => alice.store.room(room.id)!.typing.size === 0, 5000, 'typing to end');
    expect(alice.store.presence(bob.user.id)?.status).toBe('online');

    // History pages load into the store, oldest first, without duplicating what came live.
    await alice.loadHistory(room.id);
    expect(alice.store.room(room.id)!.messages.map((m) => m.id)).toEqual([mine.id, answer.body.id]);
    alice.disconnect();
    bobClient.disconnect();
  });

  it('lets a transform (the E2EE hook) rewrite a message once, when it is written', async () => {
    const bob = await register(t.url, 'Bob');
    let calls = 0;
    const client = await SwitchboardClient.register(
      options(t.url, { transform: { outgoing: async (draft) => (calls++, { content: `[sealed] ${draft.content}` }) } }),
      { email: `hook-${Date.now()}@example.test`, name: 'Hook', password },
    );
    const room = await client.call(client.api.POST('/api/rooms', { body: { type: 'direct', members: [bob.user.id] } }));
    const item = await client.send(room.id, 'hello');
    expect(item.content).toBe('hello');
    expect(item.frame.content).toBe('[sealed] hello');
    await client.connect();
    await until(() => client.outbox.list().length === 0, 5000, 'the acknowledgement');
    const history = await api(t.url, 'GET', `/api/rooms/${room.id}/messages`, { token: bob.token });
    expect(history.body.messages.map((m: { content: string }) => m.content)).toEqual(['[sealed] hello']);
    expect(calls).toBe(1);
    client.disconnect();
  });

  it('refreshes the access token before it expires and saves each new pair; a revoked session ends', async () => {
    const store = new MemorySessionStore();
    const client = await SwitchboardClient.register(options(t.url, { sessionStore: store, refreshMarginMs: 29_500 }), {
      email: `refresh-${Date.now()}@example.test`,
      name: 'Refresh',
      password,
    });
    const first = store.load()!.tokens;
    await until(() => store.load()!.tokens.refresh_token !== first.refresh_token, 5000, 'a refresh');
    // The old refresh token was retired by the rotation: using it again is reuse.
    const reuse = await api(t.url, 'POST', '/api/auth/refresh', { body: { refresh_token: first.refresh_token } });
    expect(reuse.body.error.code).toBe('REFRESH_TOKEN_REUSED');
    // Reuse revoked the session: the client notices at its next refresh, says so and forgets it.
    const ended = await new Promise<SwitchboardError>((resolve) => client.on('ended', resolve));
    expect(ended.code).toBe('INVALID_REFRESH_TOKEN');
    expect(store.load()).toBeNull();
    expect(await SwitchboardClient.restore({ ...options(t.url), sessionStore: store })).toBeNull();
  });

  it('resumes after the link is cut: what was missed arrives once, in order, and the outbox goes out in order', async () => {
    const proxy = new CutProxy(new URL(t.url).port as unknown as number);
    const viaProxy = await proxy.listen();
    const bob = await register(t.url, 'Bob');
    const carol = await SwitchboardClient.register(options(viaProxy), { email: `carol-${Date.now()}@example.test`, name: 'Carol', password });
    const room = await carol.call(carol.api.POST('/api/rooms', { body: { type: 'group', name: 'Cut', members: [bob.user.id] } }));
    const events: ServerEvent[] = [];
    carol.on('*', (e) => events.push(e));
    const states: string[] = [];
    carol.on('state', (s) => states.push(s));
    await carol.connect();

    proxy.cut();
    await until(() => carol.connectionState === 'offline', 5000, 'offline');
    for (const content of ['missed 1', 'missed 2']) await api(t.url, 'POST', `/api/rooms/${room.id}/messages`, { token: bob.token, body: { content } });
    await carol.send(room.id, 'offline 1');
    await carol.send(room.id, 'offline 2');
    expect(carol.outbox.list().map((i) => [i.content, i.state])).toEqual([['offline 1', 'queued'], ['offline 2', 'queued']]);
    proxy.restore();
    await until(() => carol.outbox.list().length === 0, 10_000, 'the outbox to drain');
    await until(() => carol.store.room(room.id)!.messages.length === 4, 5000, 'four messages');
    expect(carol.store.room(room.id)!.messages.map((m) => m.content)).toEqual(['missed 1', 'missed 2', 'offline 1', 'offline 2']);
    const news = events.filter((e) => e.type === 'message.new');
    expect(new Set(news.map((e) => (e as { stream_position: number }).stream_position)).size).toBe(news.length);
    expect(states).toContain('offline');

    // A send whose acknowledgement is lost with the link is resent with its txn_id and stored once.
    proxy.cutAfterNextClientData();
    const once = await carol.send(room.id, 'exactly once');
    await until(() => carol.outbox.list().length === 0, 10_000, 'the resend to be acknowledged');
    // The first frame was written before the link dropped: the resend was answered as a duplicate.
    expect(events.filter((e) => e.type === 'message.sent' && e.txn_id === once.txn_id)).toEqual([expect.objectContaining({ duplicate: true })]);
    const history = await api(t.url, 'GET', `/api/rooms/${room.id}/messages?limit=50`, { token: bob.token });
    expect(history.body.messages.filter((m: { content: string }) => m.content === 'exactly once')).toHaveLength(1);
    await until(() => carol.store.room(room.id)!.messages.length === 5, 5000, 'the fifth message');
    carol.disconnect();
    await proxy.close();
  });
});
