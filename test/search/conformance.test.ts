/**
 * Backend-agnostic search conformance: the same behaviours of GET /api/search/messages against every
 * backend (see ./backends.ts): PostgreSQL, the Meilisearch double, and a real Meilisearch when
 * MEILISEARCH_URL is set. Only behaviour every backend promises is asserted (relevance order and
 * highlight fragments are backend-specific).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, register, type Session, type TestHub } from '../helpers/hub.js';
import { createRoom, expectError, sendMessage } from '../helpers/rest.js';
import { BACKENDS, settled } from './backends.js';

for (const backend of BACKENDS) {
  if (backend.skip) console.log(`search conformance: skipping the "${backend.name}" backend (${backend.skip})`);
}

for (const backend of BACKENDS) {
  describe.skipIf(backend.skip !== null)(`search conformance: ${backend.name}`, () => {
    let t: TestHub;
    let alice: Session;
    let bob: Session;
    let carol: Session;
    let dave: Session;
    let r1: string; // alice, bob
    let r2: string; // alice, carol
    let r3: string; // bob, carol (not alice)
    const sent: Record<string, { id: string; created_at: string; room: string; user: string }> = {};

    async function send(key: string, s: Session, room: string, content: string, attachments?: string[]) {
      const res = await api(t.url, 'POST', `/api/rooms/${room}/messages`, { token: s.token, body: { content, ...(attachments ? { attachments } : {}) } });
      expect(res.status).toBe(201);
      sent[key] = { id: res.body.id, created_at: res.body.created_at, room, user: s.user.id };
    }

    async function search(s: Session, query: Record<string, string | number | boolean>) {
      const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
      return api(t.url, 'GET', `/api/search/messages?${qs}`, { token: s.token });
    }

    /** Ids of the hits of a successful search. */
    async function ids(s: Session, query: Record<string, string | number | boolean>): Promise<string[]> {
      const res = await search(s, query);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.results.map((r: any) => r.message.id);
    }

    const keys = (...names: string[]) => names.map((n) => sent[n].id).sort();

    beforeAll(async () => {
      t = await backend.start();
      [alice, bob, carol, dave] = await Promise.all(['Alice', 'Bob', 'Carol', 'Dave'].map((n) => register(t.url, n)));
      r1 = (await createRoom(t.url, alice, { type: 'group', name: 'Plans', members: [bob.user.id] })).id;
      r2 = (await createRoom(t.url, alice, { type: 'group', name: 'Party', members: [carol.user.id] })).id;
      r3 = (await createRoom(t.url, bob, { type: 'group', name: 'Secret', members: [carol.user.id] })).id;
      const form = new FormData();
      form.append('file', new Blob([Buffer.from('quarterly figures\n')], { type: 'text/plain' }), 'figures.txt');
      const upload = await fetch(`${t.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}` }, body: form });
      expect(upload.status).toBe(201);
      const attachmentId = (await upload.json()).id;

      await send('review', alice, r1, 'The quarterly budget review is tomorrow morning');
      await send('numbers', bob, r1, 'Budget numbers look fine to me');
      await send('lunch', bob, r1, 'Lunch plans anyone?');
      await send('offsite', carol, r2, 'Budget for the offsite party is approved');
      await send('secret', bob, r3, 'Secret budget talk without Alice');
      await send('sheet', alice, r1, 'Attached the budget spreadsheet', [attachmentId]);
      await send('redacted', alice, r1, 'Confidential budget draft, ignore');
      await send('edited', bob, r1, 'Original wording about pineapples');
      expect((await api(t.url, 'DELETE', `/api/messages/${sent.redacted.id}`, { token: alice.token })).status).toBe(204);
      const edit = await api(t.url, 'PATCH', `/api/messages/${sent.edited.id}`, { token: bob.token, body: { content: 'Revised wording about mangoes' } });
      expect(edit.status, JSON.stringify(edit.body)).toBe(200);
      await settled(t);
    });
    afterAll(async () => t?.close());

    it('finds matches only in rooms the caller belongs to, never redacted ones', async () => {
      expect((await ids(alice, { q: 'budget' })).sort()).toEqual(keys('review', 'numbers', 'offsite', 'sheet'));
      expect((await ids(carol, { q: 'budget' })).sort()).toEqual(keys('offsite', 'secret'));
      expect(await ids(dave, { q: 'budget' })).toEqual([]);
    });

    it('requires every word, and honours "quoted phrases"', async () => {
      expect(await ids(alice, { q: 'budget review' })).toEqual(keys('review'));
      expect(await ids(alice, { q: '"budget numbers"' })).toEqual(keys('numbers'));
      expect(await ids(alice, { q: '"numbers budget"' })).toEqual([]);
    });

    it('returns the message as it is now, with matches highlighted in <mark>', async () => {
      const res = await search(alice, { q: 'spreadsheet' });
      expect(res.status).toBe(200);
      expect(res.body.results).toHaveLength(1);
      const [hit] = res.body.results;
      expect(hit.message).toMatchObject({ id: sent.sheet.id, room_id: r1, user_id: alice.user.id, user_name: 'Alice', content: 'Attached the budget spreadsheet', deleted: false });
      expect(hit.message.attachments).toHaveLength(1);
      expect(hit.highlight).toContain('<mark>spreadsheet</mark>');
      expect(hit.highlight).not.toContain('<mark>budget</mark>');
      expect(typeof hit.rank).toBe('number');
    });

    it('follows edits: the new content matches, the old one no longer does', async () => {
      expect(await ids(alice, { q: 'mangoes' })).toEqual(keys('edited'));
      expect(await ids(alice, { q: 'pineapples' })).toEqual([]);
      const res = await search(alice, { q: 'mangoes' });
      expect(res.body.results[0].message.content).toBe('Revised wording about mangoes');
      expect(res.body.results[0].message.edited_at).not.toBeNull();
    });

    it('drops redacted content from results', async () => {
      expect(await ids(alice, { q: 'confidential' })).toEqual([]);
    });

    it('filters by room, and refuses a room the caller is not in', async () => {
      expect((await ids(alice, { q: 'budget', room_id: r1 })).sort()).toEqual(keys('review', 'numbers', 'sheet'));
      expect(await ids(alice, { q: 'budget', room_id: r2 })).toEqual(keys('offsite'));
      expectError(await search(alice, { q: 'budget', room_id: r3 }), 403, 'NOT_A_MEMBER');
      expectError(await search(alice, { q: 'budget', room_id: '00000000-0000-4000-8000-000000000000' }), 404, 'INVALID_ROOM');
    });

    it('filters by sender', async () => {
      expect((await ids(alice, { q: 'budget', user_id: bob.user.id })).sort()).toEqual(keys('numbers'));
      expect((await ids(alice, { q: 'budget', user_id: alice.user.id })).sort()).toEqual(keys('review', 'sheet'));
      expect(await ids(alice, { q: 'budget', user_id: dave.user.id })).toEqual([]);
    });

    it('filters by date range, bounds inclusive', async () => {
      const budget = ['review', 'numbers', 'offsite', 'sheet'];
      const at = (k: string) => sent[k].created_at;
      const within = (from?: string, to?: string) =>
        keys(...budget.filter((k) => (!from || at(k) >= from) && (!to || at(k) <= to)));
      expect((await ids(alice, { q: 'budget', from: at('numbers') })).sort()).toEqual(within(at('numbers')));
      expect((await ids(alice, { q: 'budget', to: at('numbers') })).sort()).toEqual(within(undefined, at('numbers')));
      expect((await ids(alice, { q: 'budget', from: at('numbers'), to: at('offsite') })).sort()).toEqual(within(at('numbers'), at('offsite')));
      expect((await ids(alice, { q: 'budget', from: at('numbers'), to: at('numbers') }))).toEqual(keys('numbers'));
      expect(await ids(alice, { q: 'budget', from: '2999-01-01T00:00:00Z' })).toEqual([]);
      expectError(await search(alice, { q: 'budget', from: at('offsite'), to: at('review') }), 400, 'VALIDATION_FAILED');
      expectError(await search(alice, { q: 'budget', from: 'yesterday' }), 400, 'VALIDATION_FAILED');
    });

    it('filters by attachments', async () => {
      expect(await ids(alice, { q: 'budget', has_attachment: true })).toEqual(keys('sheet'));
      expect((await ids(alice, { q: 'budget', has_attachment: false })).sort()).toEqual(keys('review', 'numbers', 'offsite'));
    });

    it('orders newest first on request', async () => {
      const got = await ids(alice, { q: 'budget', order: 'newest' });
      expect(got).toEqual(['sheet', 'offsite', 'numbers', 'review'].map((k) => sent[k].id));
    });

    it('pages with limit, offset and has_more', async () => {
      const all = await ids(alice, { q: 'budget', order: 'newest' });
      const first = await search(alice, { q: 'budget', order: 'newest', limit: 3 });
      expect(first.body.results.map((r: any) => r.message.id)).toEqual(all.slice(0, 3));
      expect(first.body.has_more).toBe(true);
      const second = await search(alice, { q: 'budget', order: 'newest', limit: 3, offset: 3 });
      expect(second.body.results.map((r: any) => r.message.id)).toEqual(all.slice(3));
      expect(second.body.has_more).toBe(false);
      const past = await search(alice, { q: 'budget', limit: 3, offset: 10 });
      expect(past.body).toEqual({ results: [], has_more: false });
    });

    it('searches the rooms the caller is in now: leaving a room hides it', async () => {
      expect(await ids(carol, { q: 'offsite' })).toEqual(keys('offsite'));
      expect((await api(t.url, 'DELETE', `/api/rooms/${r2}/members/${carol.user.id}`, { token: carol.token })).status).toBeLessThan(300);
      expect(await ids(carol, { q: 'offsite' })).toEqual([]);
      expect(await ids(alice, { q: 'offsite' })).toEqual(keys('offsite'));
    });

    it('indexes new messages as they are sent', async () => {
      await send('late', bob, r1, 'A late note about kiwis');
      await settled(t);
      expect(await ids(alice, { q: 'kiwis' })).toEqual(keys('late'));
    });

    it('validates the query string', async () => {
      expectError(await api(t.url, 'GET', '/api/search/messages', { token: alice.token }), 400, 'VALIDATION_FAILED');
      expectError(await search(alice, { q: 'budget', limit: 0 }), 400, 'VALIDATION_FAILED');
      expectError(await search(alice, { q: 'budget', user_id: 'bob' }), 400, 'VALIDATION_FAILED');
      // Well-formed RFC 3339 (a leap second) that JavaScript cannot represent as a Date.
      expectError(await search(alice, { q: 'budget', from: '2016-12-31T23:59:60Z' }), 400, 'VALIDATION_FAILED');
      expect((await api(t.url, 'GET', '/api/search/messages?q=budget')).status).toBe(401);
    });
  });
}
