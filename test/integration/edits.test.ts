/**
 * Message edits: sender only, within the edit window, in rooms that allow them; the history keeps every
 * version; `message.edited` is broadcast, resumes replay the current content, search follows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';

let t: TestHub;
let alice: Session;
let bob: Session;
let carol: Session;
let roomId: string;

beforeAll(async () => {
  t = await startTestHub();
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
  carol = await register(t.url, 'Carol');
  const room = await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'Edits', members: [bob.user.id] } });
  roomId = room.body.id;
});
afterAll(async () => t?.close());

async function send(s: Session, content: string, room = roomId) {
  const res = await api(t.url, 'POST', `/api/rooms/${room}/messages`, { token: s.token, body: { content } });
  expect(res.status).toBe(201);
  return res.body as { id: string; stream_position: number };
}

const edit = (s: Session, id: string, content: string) => api(t.url, 'PATCH', `/api/messages/${id}`, { token: s.token, body: { content } });
const errorOf = (res: { status: number; body: any }) => ({ status: res.status, code: res.body?.error?.code });

describe('editing', () => {
  it('replaces the content, broadcasts message.edited and keeps every version in the history', async () => {
    const m = await send(alice, 'Helo wrold');
    const b = await WsClient.connect(t.wsUrl, bob.token);

    const first = await edit(alice, m.id, 'Hello world');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id: m.id, content: 'Hello world', edited_at: expect.any(String) });
    const event = await b.next('message.edited', (e) => e.message_id === m.id);
    expect(event).toEqual({
      type: 'message.edited',
      room_id: roomId,
      message_id: m.id,
      content: 'Hello world',
      edited_at: first.body.edited_at,
      editor_id: alice.user.id,
      stream_position: expect.any(Number),
    });
    b.close();

    const second = await edit(alice, m.id, 'Hello, world!');
    const history = await api(t.url, 'GET', `/api/messages/${m.id}/history`, { token: bob.token });
    expect(history.status).toBe(200);
    expect(history.body).toEqual({
      message_id: m.id,
      versions: [
        { content: 'Helo wrold', edited_at: null, editor_id: alice.user.id },
        { content: 'Hello world', edited_at: first.body.edited_at, editor_id: alice.user.id },
        { content: 'Hello, world!', edited_at: second.body.edited_at, editor_id: alice.user.id },
      ],
    });

    const got = await api(t.url, 'GET', `/api/messages/${m.id}`, { token: bob.token });
    expect(got.body).toMatchObject({ content: 'Hello, world!', edited_at: second.body.edited_at });
    const page = await api(t.url, 'GET', `/api/rooms/${roomId}/messages`, { token: bob.token });
    expect(page.body.messages.find((x: any) => x.id === m.id).content).toBe('Hello, world!');
  });

  it('shows the current content to a client resuming from before the message, and search follows the edit', async () => {
    const m = await send(alice, 'zebra crossing');
    await edit(alice, m.id, 'giraffe crossing');
    // The backlog arrives before `ready`, so it is all in `events` once connect() returns.
    const resumed = await WsClient.connect(t.wsUrl, bob.token, { since: m.stream_position - 1 });
    const replayed = resumed.all('message.new').find((e) => e.message.id === m.id);
    expect(replayed.message).toMatchObject({ content: 'giraffe crossing', edited_at: expect.any(String) });
    expect(resumed.all('message.edited').find((e) => e.message_id === m.id).content).toBe('giraffe crossing');
    resumed.close();

    const hits = async (q: string) =>
      (await api(t.url, 'GET', `/api/search/messages?q=${q}&room_id=${roomId}`, { token: bob.token })).body.results.map((r: any) => r.message.id);
    expect(await hits('giraffe')).toEqual([m.id]);
    expect(await hits('zebra')).toEqual([]);
  });

  it('re-reads mentions from the new content', async () => {
    const m = await send(alice, 'ping nobody');
    const res = await edit(alice, m.id, `ping <@${bob.user.id}>`);
    expect(res.body.mentions).toEqual([bob.user.id]);
  });

  it('changes nothing when the content is the same', async () => {
    const m = await send(alice, 'steady');
    const res = await edit(alice, m.id, 'steady');
    expect(res.status).toBe(200);
    expect(res.body.edited_at).toBeNull();
    const history = await api(t.url, 'GET', `/api/messages/${m.id}/history`, { token: alice.token });
    expect(history.body.versions).toHaveLength(1);
  });
});

describe('rules', () => {
  it('lets only the sender edit, and only members read the history', async () => {
    const m = await send(alice, 'mine');
    expect(errorOf(await edit(bob, m.id, 'yours'))).toEqual({ status: 403, code: 'FORBIDDEN' });
    expect(errorOf(await edit(carol, m.id, 'theirs'))).toEqual({ status: 403, code: 'NOT_A_MEMBER' });
    expect(errorOf(await api(t.url, 'GET', `/api/messages/${m.id}/history`, { token: carol.token }))).toEqual({ status: 403, code: 'NOT_A_MEMBER' });
    expect(errorOf(await edit(alice, '00000000-0000-4000-8000-000000000000', 'x'))).toEqual({ status: 404, code: 'INVALID_MESSAGE' });
  });

  it('validates the new content like a send', async () => {
    const m = await send(alice, 'something');
    expect(errorOf(await edit(alice, m.id, '   '))).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
    expect(errorOf(await edit(alice, m.id, 'x'.repeat(t.config.limits.max_message_bytes + 1)))).toEqual({ status: 413, code: 'MESSAGE_TOO_LARGE' });
  });

  it('refuses edits after the window (default one day)', async () => {
    const m = await send(alice, 'old news');
    await t.hub.db.query(`UPDATE messages SET created_at = now() - interval '2 days' WHERE id = $1`, [m.id]);
    expect(errorOf(await edit(alice, m.id, 'new news'))).toEqual({ status: 403, code: 'EDIT_WINDOW_EXPIRED' });
    await t.hub.db.query(`UPDATE messages SET created_at = now() - interval '23 hours' WHERE id = $1`, [m.id]);
    expect((await edit(alice, m.id, 'new news')).status).toBe(200);
  });

  it('cannot edit a redacted message; redaction removes the history and scrubs stored edit events', async () => {
    const m = await send(alice, 'secret v1');
    await edit(alice, m.id, 'secret v2');
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: alice.token })).status).toBe(204);
    expect(errorOf(await edit(alice, m.id, 'back again'))).toEqual({ status: 404, code: 'INVALID_MESSAGE' });
    expect(errorOf(await api(t.url, 'GET', `/api/messages/${m.id}/history`, { token: alice.token }))).toEqual({ status: 404, code: 'INVALID_MESSAGE' });
    const { rows } = await t.hub.db.query('SELECT count(*)::int AS n FROM message_edits WHERE message_id = $1', [m.id]);
    expect(rows[0].n).toBe(0);
    const resumed = await WsClient.connect(t.wsUrl, bob.token, { since: m.stream_position - 1 });
    expect(resumed.all('message.new').find((e) => e.message.id === m.id).message).toMatchObject({ content: '', deleted: true });
    expect(resumed.all('message.edited').find((e) => e.message_id === m.id).content).toBe('');
    expect(JSON.stringify(resumed.events)).not.toContain('secret');
    resumed.close();
  });

  it('a room setting forbids edits; only admins change it', async () => {
    const m = await send(bob, 'typo heer');
    expect(errorOf(await api(t.url, 'PATCH', `/api/rooms/${roomId}`, { token: bob.token, body: { allow_edits: false } }))).toEqual({ status: 403, code: 'FORBIDDEN' });
    const updated = await api(t.url, 'PATCH', `/api/rooms/${roomId}`, { token: alice.token, body: { allow_edits: false } });
    expect(updated.status).toBe(200);
    expect(updated.body.allow_edits).toBe(false);
    expect((await api(t.url, 'GET', `/api/rooms/${roomId}`, { token: bob.token })).body.allow_edits).toBe(false);

    expect(errorOf(await edit(bob, m.id, 'typo here'))).toEqual({ status: 403, code: 'EDITS_FORBIDDEN' });
    // Revoke and resend is still possible.
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: bob.token })).status).toBe(204);

    await api(t.url, 'PATCH', `/api/rooms/${roomId}`, { token: alice.token, body: { allow_edits: true } });
    const again = await send(bob, 'typo heer');
    expect((await edit(bob, again.id, 'typo here')).status).toBe(200);
  });
});

describe('edit_window_s = 0', () => {
  it('means no time limit', async () => {
    const t0 = await startTestHub({ limits: { edit_window_s: 0 } });
    try {
      const a = await register(t0.url, 'Ann');
      const room = await api(t0.url, 'POST', '/api/rooms', { token: a.token, body: { type: 'group', name: 'Old' } });
      const sent = await api(t0.url, 'POST', `/api/rooms/${room.body.id}/messages`, { token: a.token, body: { content: 'ancient' } });
      await t0.hub.db.query(`UPDATE messages SET created_at = now() - interval '400 days' WHERE id = $1`, [sent.body.id]);
      const res = await api(t0.url, 'PATCH', `/api/messages/${sent.body.id}`, { token: a.token, body: { content: 'still editable' } });
      expect(res.status).toBe(200);
      expect(res.body.content).toBe('still editable');
    } finally {
      await t0.close();
    }
  });
});
