import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { createRoom, expectError, sendMessage } from '../helpers/rest.js';

let t: TestHub;
let alice: Session;
let bob: Session;
let eve: Session;
let lonely: Session;
let ours: string; // alice + bob
let theirs: string; // alice + eve: bob is not in it
let inOurs: { id: string };
let alsoOurs: { id: string };

beforeAll(async () => {
  t = await startTestHub();
  [alice, bob, eve, lonely] = await Promise.all(['Alice', 'Bob', 'Eve', 'Lonely'].map((n) => register(t.url, n)));
  ours = (await createRoom(t.url, alice, { type: 'group', name: 'Ours', members: [bob.user.id] })).id;
  theirs = (await createRoom(t.url, alice, { type: 'group', name: 'Theirs', members: [eve.user.id] })).id;
  inOurs = await sendMessage(t.url, alice, ours, 'The pineapple pizza debate starts now');
  alsoOurs = await sendMessage(t.url, bob, ours, 'I still think pineapple belongs on pizza, with ham');
  await sendMessage(t.url, bob, ours, 'unrelated chatter about the weather');
  await sendMessage(t.url, eve, theirs, 'pineapple pizza is a secret plan of ours');
  await sendMessage(t.url, alice, theirs, 'pineapple everywhere');
});
afterAll(async () => t?.close());

function search(s: Session, params: Record<string, string>) {
  return api(t.url, 'GET', `/api/search/messages?${new URLSearchParams(params)}`, { token: s.token });
}

describe('message search', () => {
  it('finds messages by word, case-insensitively, with <mark> highlights', async () => {
    const res = await search(bob, { q: 'PINEAPPLE' });
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: any) => r.message.id).sort()).toEqual([inOurs.id, alsoOurs.id].sort());
    for (const hit of res.body.results) {
      expect(hit.highlight).toMatch(/<mark>pineapple<\/mark>/i);
      expect(hit.message.room_id).toBe(ours);
      expect(typeof hit.rank).toBe('number');
    }
    const ham = await search(bob, { q: 'ham' });
    expect(ham.body.results.map((r: any) => r.message.id)).toEqual([alsoOurs.id]);
    expect(ham.body.results[0].highlight).toContain('<mark>ham</mark>');
  });

  it('requires every word to match', async () => {
    const res = await search(bob, { q: 'pineapple ham' });
    expect(res.body.results.map((r: any) => r.message.id)).toEqual([alsoOurs.id]);
    expect((await search(bob, { q: 'pineapple weather' })).body.results).toEqual([]);
  });

  it('never returns hits from rooms the caller is not in', async () => {
    // "secret" and "everywhere" only occur in the room bob is not in.
    expect((await search(bob, { q: 'secret' })).body.results).toEqual([]);
    expect((await search(bob, { q: 'everywhere' })).body.results).toEqual([]);
    const forEve = await search(eve, { q: 'pineapple' });
    expect(forEve.body.results.length).toBe(2);
    expect(forEve.body.results.every((r: any) => r.message.room_id === theirs)).toBe(true);
    // alice is in both rooms.
    const forAlice = await search(alice, { q: 'pineapple' });
    expect(new Set(forAlice.body.results.map((r: any) => r.message.room_id))).toEqual(new Set([ours, theirs]));
    expect((await search(lonely, { q: 'pineapple' })).body.results).toEqual([]);
  });

  it('narrows to one joined room with room_id; another room is 403, an unknown one 404', async () => {
    const res = await search(alice, { q: 'pineapple', room_id: ours });
    expect(res.body.results.map((r: any) => r.message.id).sort()).toEqual([inOurs.id, alsoOurs.id].sort());
    expectError(await search(bob, { q: 'pineapple', room_id: theirs }), 403, 'NOT_A_MEMBER');
    expectError(await search(bob, { q: 'pineapple', room_id: crypto.randomUUID() }), 404, 'INVALID_ROOM');
    expectError(await search(bob, { q: '' }), 400, 'VALIDATION_FAILED');
  });

  it('stops finding a message once it is redacted', async () => {
    const m = await sendMessage(t.url, bob, ours, 'a fleeting kumquat remark');
    expect((await search(alice, { q: 'kumquat' })).body.results.map((r: any) => r.message.id)).toEqual([m.id]);
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: bob.token })).status).toBe(204);
    expect((await search(alice, { q: 'kumquat' })).body.results).toEqual([]);
  });

  it('stops finding a room’s messages once the caller has left it', async () => {
    const room = (await createRoom(t.url, alice, { type: 'group', members: [lonely.user.id] })).id;
    await sendMessage(t.url, alice, room, 'durian season');
    expect((await search(lonely, { q: 'durian' })).body.results).toHaveLength(1);
    expect((await api(t.url, 'POST', `/api/rooms/${room}/leave`, { token: lonely.token })).status).toBe(200);
    expect((await search(lonely, { q: 'durian' })).body.results).toEqual([]);
  });
});
