/**
 * The Meilisearch adapter against the HTTP double (./meili-double.ts): the requests it sends
 * (settings, documents, deletions, filtered searches), the outbox indexer's guarantees (nothing lost
 * across an outage, a failed task or a restart; redactions leave the index; reindex rebuilds it), and
 * tenant tokens a web client uses directly.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { Meilisearch, MeilisearchApiError } from 'meilisearch';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SearchIndexer, reindex } from '../../src/modules/search/indexer.js';
import { INDEX_SETTINGS, MeilisearchIndex } from '../../src/modules/search/meilisearch-index.js';
import { api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { createRoom, expectError, sendMessage } from '../helpers/rest.js';
import { BACKENDS, MASTER_KEY, SEARCH_KEY, settled } from './backends.js';
import type { MeiliDouble } from './meili-double.js';

const silent = pino({ level: 'silent' });
let t: TestHub;
let double: MeiliDouble;
let alice: Session;
let bob: Session;
let r1: string;
let r2: string;

beforeAll(async () => {
  const started = await BACKENDS.find((b) => b.name === 'meilisearch-double')!.start();
  t = started;
  double = started.double!;
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
  r1 = (await createRoom(t.url, alice, { type: 'group', name: 'Ours', members: [bob.user.id] })).id;
  r2 = (await createRoom(t.url, bob, { type: 'group', name: 'Bob only' })).id;
});
afterAll(async () => t?.close());

const indexer = () => t.hub.searchIndexer!;
/** The last request the double received for `path` (and `method`). */
const lastRequest = (path: string, method = 'POST') => [...double.requests].reverse().find((r) => r.path === path && r.method === method);
const docIds = () => double.documents('messages').map((d) => d.id);
const persistedCursor = async () =>
  (await t.hub.db.query<{ position: number }>(`SELECT position FROM search_index_cursor WHERE index_name = 'messages'`)).rows[0]?.position ?? 0;

describe('requests to Meilisearch', () => {
  it('applies the index settings at start-up with the configured key', async () => {
    await settled(t);
    const patch = double.requests.find((r) => r.method === 'PATCH' && r.path === '/indexes/messages/settings');
    expect(patch).toMatchObject({ authorization: `Bearer ${MASTER_KEY}`, body: INDEX_SETTINGS });
    expect(double.indexes.get('messages')!.settings).toMatchObject({
      searchableAttributes: ['content'],
      filterableAttributes: ['room_id', 'user_id', 'created_at', 'has_attachment'],
      sortableAttributes: ['created_at'],
    });
  });

  it('indexes a sent message as one document with id as primary key and unix-seconds created_at', async () => {
    const m = await sendMessage(t.url, alice, r1, 'Indexing check for walnuts');
    await settled(t);
    const add = lastRequest('/indexes/messages/documents');
    expect(add!.query).toEqual({ primaryKey: 'id' });
    expect(double.documents('messages').find((d) => d.id === m.id)).toEqual({
      id: m.id,
      room_id: r1,
      user_id: alice.user.id,
      user_name: 'Alice',
      content: 'Indexing check for walnuts',
      created_at: Date.parse(m.created_at) / 1000,
      has_attachment: false,
    });
    expect(await persistedCursor()).toBeGreaterThanOrEqual(m.stream_position);
  });

  it('filters every query to the caller\'s rooms and asks for highlights', async () => {
    const res = await api(t.url, 'GET', `/api/search/messages?q=walnuts&user_id=${alice.user.id}&has_attachment=false&from=2020-01-01T00:00:00Z`, { token: alice.token });
    expect(res.status).toBe(200);
    expect(res.body.results[0].highlight).toBe('Indexing check for <mark>walnuts</mark>');
    const search = lastRequest('/indexes/messages/search')!;
    expect(search.body).toMatchObject({
      q: 'walnuts',
      filter: [`room_id IN ["${r1}"]`, `user_id = "${alice.user.id}"`, 'created_at >= 1577836800', 'has_attachment = false'],
      matchingStrategy: 'all',
      attributesToHighlight: ['content'],
      highlightPreTag: '<mark>',
      highlightPostTag: '</mark>',
    });
  });

  it('deletes a redacted message\'s document', async () => {
    const m = await sendMessage(t.url, alice, r1, 'Soon redacted hazelnuts');
    await settled(t);
    expect(docIds()).toContain(m.id);
    expect((await api(t.url, 'DELETE', `/api/messages/${m.id}`, { token: alice.token })).status).toBe(204);
    await settled(t);
    expect(docIds()).not.toContain(m.id);
    const del = lastRequest('/indexes/messages/documents/delete-batch');
    expect(del!.body).toEqual([m.id]);
  });

  it('answers 503 SEARCH_UNAVAILABLE while Meilisearch is unreachable', async () => {
    await double.stop();
    try {
      expectError(await api(t.url, 'GET', '/api/search/messages?q=walnuts', { token: alice.token }), 503, 'SEARCH_UNAVAILABLE');
    } finally {
      await double.start();
    }
  });
});

describe('the indexer loses nothing', () => {
  it('catches up after Meilisearch was down', async () => {
    await settled(t);
    await double.stop();
    const failed = once(indexer(), 'failed');
    const m = await sendMessage(t.url, bob, r1, 'Sent during the outage: pecans');
    await failed;
    expect(indexer().position).toBeLessThan(m.stream_position);
    expect(await persistedCursor()).toBeLessThan(m.stream_position);
    await double.start();
    await indexer().waitFor(m.stream_position);
    expect(docIds()).toContain(m.id);
  });

  it('does not advance past a batch whose Meilisearch task failed, and retries it', async () => {
    await settled(t);
    double.failTasks(1);
    const failed = once(indexer(), 'failed');
    const m = await sendMessage(t.url, bob, r1, 'Task will fail once: almonds');
    const [err] = await failed;
    expect(String(err)).toContain('no_space_left_on_device');
    expect(await persistedCursor()).toBeLessThan(m.stream_position);
    await indexer().waitFor(m.stream_position);
    expect(docIds()).toContain(m.id);
  });

  it('resumes from the persisted cursor after a restart', async () => {
    await settled(t);
    await indexer().stop();
    const a = await sendMessage(t.url, bob, r1, 'Written while the indexer was stopped: cashews');
    const b = await sendMessage(t.url, bob, r2, 'Also while stopped: chestnuts');
    expect(docIds()).not.toContain(a.id);
    const restarted = new SearchIndexer(t.hub.db, new MeilisearchIndex(t.config.search, t.hub.db), silent);
    t.hub.searchIndexer = restarted; // the hub stops it on close; later tests use it
    await restarted.start(t.hub.stream);
    await restarted.waitFor(b.stream_position);
    expect(docIds()).toEqual(expect.arrayContaining([a.id, b.id]));
    expect(await persistedCursor()).toBeGreaterThanOrEqual(b.stream_position);
  });
});

describe('reindex', () => {
  it('rebuilds the index from the database: live messages back, redacted ones absent', async () => {
    const live = await sendMessage(t.url, alice, r1, 'Before the rebuild: peanuts');
    const gone = await sendMessage(t.url, alice, r1, 'Redacted before the rebuild');
    await api(t.url, 'DELETE', `/api/messages/${gone.id}`, { token: alice.token });
    const { rows } = await t.hub.db.query<{ id: string }>('SELECT id FROM messages WHERE deleted_at IS NULL');
    double.indexes.get('messages')!.docs.clear();
    double.indexes.get('messages')!.docs.set(gone.id, { id: gone.id, content: 'stale' });

    const position = await reindex(t.config, t.hub.db, silent);

    expect(position).toBe(await t.hub.stream.maxPosition());
    expect(docIds().sort()).toEqual(rows.map((r) => r.id).sort());
    expect(docIds()).toContain(live.id);
    expect(docIds()).not.toContain(gone.id);
    expect(await persistedCursor()).toBe(position);
  });

  // The CLI is a second process on the hub's database: that needs a server (DATABASE_URL); an embedded one has one session.
  it.skipIf(!process.env.DATABASE_URL)('runs as `switchboard search reindex`', async () => {
    double.indexes.get('messages')!.docs.clear();
    // Asynchronous on purpose: the double answers from this process.
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'src/cli.ts', 'search', 'reindex'], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: t.config.database.url,
        SWITCHBOARD_SEARCH__BACKEND: 'meilisearch',
        SWITCHBOARD_SEARCH__URL: double.url,
        SWITCHBOARD_SEARCH__API_KEY: MASTER_KEY,
        SWITCHBOARD_LOG_LEVEL: 'silent',
      },
      timeout: 60_000,
    });
    expect(stdout).toMatch(/^reindexed "messages" up to stream position \d+\n$/);
    expect(docIds().length).toBeGreaterThan(0);
  });
});

describe('tenant tokens', () => {
  it('issues a signed, expiring token limited to the caller\'s rooms', async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await api(t.url, 'GET', '/api/search/token', { token: alice.token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ host: double.url, index_uid: 'messages' });
    const claims = JSON.parse(Buffer.from(res.body.token.split('.')[1], 'base64url').toString());
    expect(claims).toEqual({ apiKeyUid: SEARCH_KEY.uid, searchRules: { messages: { filter: `room_id IN ["${r1}"]` } }, exp: expect.any(Number) });
    expect(claims.exp).toBeGreaterThanOrEqual(before + t.config.search.tenant_token_ttl_s);
    expect(claims.exp).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + t.config.search.tenant_token_ttl_s);
    expect(Date.parse(res.body.expires_at)).toBe(claims.exp * 1000);
  });

  it('lets a web client search Meilisearch directly, only within its rooms', async () => {
    const ours = await sendMessage(t.url, bob, r1, 'Shared macadamia news');
    const theirs = await sendMessage(t.url, bob, r2, 'Private macadamia news');
    await settled(t);
    const { body } = await api(t.url, 'GET', '/api/search/token', { token: alice.token });
    const client = new Meilisearch({ host: body.host, apiKey: body.token });

    const direct = await client.index(body.index_uid).search('macadamia');
    expect(direct.hits.map((h) => h.id)).toEqual([ours.id]);
    const multi = await client.multiSearch({ queries: [{ indexUid: body.index_uid, q: 'macadamia', filter: `room_id = "${r2}"` }] });
    expect(multi.results[0].hits).toEqual([]);
    const bobs = new Meilisearch({ host: body.host, apiKey: (await api(t.url, 'GET', '/api/search/token', { token: bob.token })).body.token });
    expect((await bobs.index('messages').search('macadamia')).hits.map((h) => h.id).sort()).toEqual([ours.id, theirs.id].sort());

    const write = await client.index('messages').addDocuments([{ id: 'x' }]).catch((e) => e);
    expect(write).toBeInstanceOf(MeilisearchApiError);
    expect(write.cause).toMatchObject({ code: 'invalid_api_key', type: 'auth' });
  });

  it('is 404 NOT_FOUND without the Meilisearch backend', async () => {
    const pg = await startTestHub();
    try {
      const carol = await register(pg.url, 'Carol');
      expectError(await api(pg.url, 'GET', '/api/search/token', { token: carol.token }), 404, 'NOT_FOUND');
    } finally {
      await pg.close();
    }
  });
});

describe('several nodes', () => {
  it('an indexer that loses the lease mid-batch does not move the cursor it no longer owns', async () => {
    await settled(t);
    const m = await sendMessage(t.url, alice, r1, 'in flight while the lease moves');
    const index = (indexer() as unknown as { index: MeilisearchIndex }).index;
    const upsert = vi.spyOn(index, 'upsert').mockImplementationOnce(async function (this: MeilisearchIndex, docs) {
      // A reindex elsewhere takes the lease over and resets the cursor while this batch is in flight.
      await t.hub.db.query(`UPDATE search_index_cursor SET leader = 'reindex', lease_until = now() + interval '1 hour', position = 0 WHERE index_name = 'messages'`);
      return MeilisearchIndex.prototype.upsert.call(this, docs);
    });
    try {
      await indexer().catchUp();
      await indexer().idle(); // a background run that took the batch
      expect(upsert).toHaveBeenCalled();
      expect(await persistedCursor()).toBe(0);
      expect(indexer().position).toBeLessThan(m.stream_position);
    } finally {
      upsert.mockRestore();
      // Hand the lease back so the following tests index again.
      await t.hub.db.query(`UPDATE search_index_cursor SET leader = NULL, lease_until = NULL WHERE index_name = 'messages'`);
      await indexer().catchUp();
    }
  });

  // Two hubs on one database need a server (DATABASE_URL); an embedded database serves one process.
  it.skipIf(!process.env.DATABASE_URL)('lets one indexer work at a time; another takes over when the leader stops', async () => {
    // A second node on the same database and Meilisearch: the first node's indexer holds the lease.
    const second = await startTestHub(t.config, { shareWith: t });
    try {
      const standby = second.hub.searchIndexer!;
      const leaderWrites = () => double.requests.filter((r) => r.path === '/indexes/messages/documents' && r.method === 'POST').length;
      const m1 = await sendMessage(t.url, alice, r1, 'first under the old leader');
      await indexer().waitFor(m1.stream_position);
      const { rows } = await t.hub.db.query(`SELECT leader FROM search_index_cursor WHERE index_name = 'messages'`);
      expect(rows[0].leader).not.toBeNull();
      await standby.catchUp(); // asked to work now, it stands by: the lease is taken
      expect(standby.position).toBeLessThan(m1.stream_position);
      // The leader stops, releasing the lease: the standby takes over.
      await indexer().stop();
      const before = leaderWrites();
      const m2 = await sendMessage(t.url, alice, r1, 'second under the new leader');
      await standby.catchUp();
      expect(standby.position).toBeGreaterThanOrEqual(m2.stream_position);
      expect(leaderWrites()).toBeGreaterThan(before);
      expect(docIds()).toContain(m2.id);
    } finally {
      await second.close();
    }
  });
});
