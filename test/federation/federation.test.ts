/**
 * Federation between real hubs, each on its own database (a scratch database on DATABASE_URL, or its
 * own PGlite data dir), on loopback ports: addresses and shadow users, signed requests and their
 * refusals, a group room hosted by A with users of B and C, ordering, and a network cut through a
 * loopback TCP proxy.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { api, register, startTestHub, WsClient, type Session, type TestHub } from '../helpers/hub.js';
import { CutProxy } from '../helpers/tcp-proxy.js';
import { loadFederationKey } from '../../src/modules/federation/federation.keys.js';
import { signRequest } from '../../src/modules/federation/federation.signatures.js';


const names = ['a.test', 'b.test', 'c.test'];
let hubs: TestHub[] = [];
const proxies: CutProxy[] = [];

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 15000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Uploads `bytes` to hub `t` as `s`. @returns the attachment. */
async function upload(t: TestHub, s: Session, bytes: Uint8Array, filename: string): Promise<any> {
  const form = new FormData();
  form.append('file', new Blob([Uint8Array.from(bytes)]), filename);
  const res = await fetch(`${t.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${s.token}` }, body: form });
  expect(res.status).toBe(201);
  return res.json();
}

/** GETs `url` on hub `t` as `s`: status, headers and the bytes. */
async function download(t: TestHub, s: Session, url: string, headers: Record<string, string> = {}) {
  const res = await fetch(t.url + url, { headers: { authorization: `Bearer ${s.token}`, ...headers } });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** A signed GET from hub `from` to hub `to`. */
async function signedGet(from: number, to: number, path: string) {
  const key = loadFederationKey(hubs[from].config.data_dir);
  const headers = await signRequest(key, names[from], { method: 'GET', destination: names[to], path, body: '' });
  const res = await fetch(`${hubs[to].url}${path}`, { headers });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

async function history(t: TestHub, s: Session, roomId: string): Promise<any[]> {
  const res = await api(t.url, 'GET', `/api/rooms/${roomId}/messages?limit=100`, { token: s.token });
  expect(res.status).toBe(200);
  const list = res.body.messages;
  return [...list].sort((x: any, y: any) => x.stream_position - y.stream_position);
}

beforeAll(async () => {
  hubs = await Promise.all(names.map((n) => startTestHub({ federation: { enabled: true, server_name: n, retry_max_ms: 500 } })));
  // Every hub reaches the others through a proxy in front of each (so a test can cut one).
  for (const h of hubs) {
    const p = new CutProxy(Number(new URL(h.url).port));
    await p.listen();
    proxies.push(p);
  }
  for (const [i, h] of hubs.entries()) {
    h.config.federation.peers = names.flatMap((n, j) => (j === i ? [] : [{ server_name: n, url: `http://127.0.0.1:${proxies[j].port}`, public_key: '' }]));
  }
}, 60000);

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(hubs.map((h) => h.close()));
});

describe('federation', () => {
  let alice: Session, bob: Session, carol: Session, admin: Session;
  let roomId: string;

  it('gives users a username and an address, and serves the signing key', async () => {
    alice = await register(hubs[0].url, 'Alice');
    bob = await register(hubs[1].url, 'Bob');
    carol = await register(hubs[2].url, 'Carol');
    expect(alice.user.username).toMatch(/^alice-[0-9a-f]{8}$/);
    expect(alice.user.address).toBe(`@${alice.user.username}:a.test`);
    const key = await api(hubs[0].url, 'GET', '/_federation/v1/key');
    expect(key.status).toBe(200);
    expect(key.body.server_name).toBe('a.test');
    expect(key.body.keys[0].public_key).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('derives usernames with a numeric suffix on collision, and refuses a taken one', async () => {
    const local = `sam${crypto.randomBytes(3).toString('hex')}`;
    const one = await api(hubs[0].url, 'POST', '/api/auth/register', { body: { email: `${local}@x.test`, name: 'Sam', password: 'correct horse battery' } });
    const two = await api(hubs[0].url, 'POST', '/api/auth/register', { body: { email: `${local}@y.test`, name: 'Sam', password: 'correct horse battery' } });
    expect([one.body.user.username, two.body.user.username]).toEqual([local, `${local}2`]);
    const taken = await api(hubs[0].url, 'POST', '/api/auth/register', { body: { email: `${local}@z.test`, name: 'Sam', password: 'correct horse battery', username: local } });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe('USERNAME_TAKEN');
  });

  it('resolves remote addresses into shadow users and shares a group room hosted by A with B and C', async () => {
    const b = await api(hubs[0].url, 'GET', `/api/users/lookup?address=${encodeURIComponent(bob.user.address)}`, { token: alice.token });
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ address: bob.user.address, server: 'b.test', name: 'Bob' });
    const c = await api(hubs[0].url, 'GET', `/api/users/lookup?address=${encodeURIComponent(carol.user.address)}`, { token: alice.token });
    const missing = await api(hubs[0].url, 'GET', `/api/users/lookup?address=${encodeURIComponent('@nobody:b.test')}`, { token: alice.token });
    expect(missing.status).toBe(404);
    const room = await api(hubs[0].url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'Trio', members: [b.body.id, c.body.id] } });
    expect(room.status).toBe(201);
    roomId = room.body.id;
    for (const [i, s] of [[1, bob], [2, carol]] as const) {
      await until(`the room on ${names[i]}`, async () => (await api(hubs[i].url, 'GET', `/api/rooms/${roomId}`, { token: s.token })).status === 200);
    }
  });

  it('carries messages, replies, edits, reactions, receipts, redactions and a file both ways, in one order on every hub', async () => {
    const send = async (i: number, s: Session, content: string, reply_to?: string) => {
      const res = await api(hubs[i].url, 'POST', `/api/rooms/${roomId}/messages`, { token: s.token, body: { content, ...(reply_to ? { reply_to } : {}) } });
      expect(res.status).toBe(201);
      return res.body;
    };
    const m1 = await send(0, alice, 'hello from A');
    const onB = await until('m1 on B', async () => (await history(hubs[1], bob, roomId)).find((m) => m.id === m1.id));
    expect(onB.content).toBe('hello from A');
    const m2 = await send(1, bob, 'hi from B', m1.id);
    const m2OnA = await until('m2 on A', async () => (await history(hubs[0], alice, roomId)).find((m) => m.id === m2.id));
    expect(m2OnA.reply_to).toBe(m1.id);
    await until('m2 on C', async () => (await history(hubs[2], carol, roomId)).find((m) => m.id === m2.id));
    expect((await api(hubs[1].url, 'PATCH', `/api/messages/${m2.id}`, { token: bob.token, body: { content: 'hi from B (edited)' } })).status).toBe(200);
    expect((await api(hubs[2].url, 'PUT', `/api/messages/${m1.id}/reactions/${encodeURIComponent('👍')}`, { token: carol.token })).status).toBeLessThan(300);
    expect((await api(hubs[2].url, 'POST', `/api/rooms/${roomId}/read`, { token: carol.token, body: { message_id: m2.id } })).status).toBe(200);
    const carolOnA = await hubs[0].hub.users.findByUsername(carol.user.username, 'c.test');
    await until('C\'s read receipt on A', async () => {
      const receipts = (await api(hubs[0].url, 'GET', `/api/rooms/${roomId}/receipts`, { token: alice.token })).body as any[];
      return receipts.some((r) => r.user_id === carolOnA!.id && r.message_id === m2.id);
    });
    const m3 = await send(2, carol, 'oops');
    await until('m3 on A', async () => (await history(hubs[0], alice, roomId)).find((m) => m.id === m3.id));
    expect((await api(hubs[2].url, 'DELETE', `/api/messages/${m3.id}`, { token: carol.token })).status).toBeLessThan(300);

    // A file each way: Alice's from A (the host), Bob's image from B (a participant). Each hub lists
    // them at once and fetches the bytes from the hub they were uploaded to on the first download
    // through its own /api/attachments URL, then keeps them.
    const notes = crypto.randomBytes(300_000);
    const png = await sharp({ create: { width: 400, height: 200, channels: 3, background: { r: 20, g: 130, b: 90 } } }).png().toBuffer();
    const fileA = await upload(hubs[0], alice, notes, 'notes.bin');
    const fileB = await upload(hubs[1], bob, png, 'picture.png');
    const m4 = (await api(hubs[0].url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'notes attached', attachments: [fileA.id] } })).body;
    const m5res = await api(hubs[1].url, 'POST', `/api/rooms/${roomId}/messages`, { token: bob.token, body: { content: '', attachments: [fileB.id] } });
    expect(m5res.status).toBe(201);
    const m5 = m5res.body;
    // Someone else's upload is refused in a room hosted elsewhere as in a local one.
    const notBobs = await api(hubs[1].url, 'POST', `/api/rooms/${roomId}/messages`, { token: bob.token, body: { content: 'x', attachments: [fileA.id] } });
    expect(notBobs.status).toBe(404);
    expect(notBobs.body.error.code).toBe('INVALID_ATTACHMENT');
    const thumbOnB = await download(hubs[1], bob, fileB.thumbnail_url);
    expect(thumbOnB.status).toBe(200);
    for (const [i, s] of [[0, alice], [1, bob], [2, carol]] as const) {
      const h = await until(`the files on ${names[i]}`, async () => {
        const list = await history(hubs[i], s, roomId);
        return list.some((m) => m.id === m4.id) && list.some((m) => m.id === m5.id) ? list : undefined;
      });
      expect(h.find((m) => m.id === m4.id).attachments).toEqual([fileA]);
      expect(h.find((m) => m.id === m5.id).attachments).toEqual([fileB]);
    }
    const stored = (i: number, id: string) => hubs[i].hub.db.query('SELECT origin, missing FROM attachments WHERE id = $1', [id]).then((r) => r.rows[0]);
    expect(await stored(2, fileB.id)).toEqual({ origin: 'b.test', missing: [fileB.id, `${fileB.id}.thumb`] }); // listed, not fetched yet
    for (const [i, s, file, bytes] of [[1, bob, fileA, notes], [2, carol, fileA, notes], [0, alice, fileB, png], [2, carol, fileB, png]] as const) {
      const got = await download(hubs[i], s, file.url);
      expect(got.status, `${file.filename} on ${names[i]}`).toBe(200);
      expect(got.headers.get('content-type')).toBe(file.mime_type);
      expect(got.body.equals(bytes), `${file.filename} on ${names[i]}`).toBe(true);
    }
    for (const i of [0, 2]) {
      const thumb = await download(hubs[i], [alice, bob, carol][i], fileB.thumbnail_url);
      expect(thumb.status).toBe(200);
      expect(thumb.headers.get('content-type')).toBe('image/webp');
      expect(thumb.body.equals(thumbOnB.body)).toBe(true);
    }
    expect(await stored(2, fileB.id)).toEqual({ origin: 'b.test', missing: [] });
    expect(await stored(1, fileA.id)).toEqual({ origin: 'a.test', missing: [] });
    // Kept: a range is served from the copy, even with the origin out of reach.
    proxies[1].setCut(true);
    try {
      const part = await download(hubs[2], carol, fileB.url, { range: 'bytes=0-99' });
      expect(part.status).toBe(206);
      expect(part.body.equals(png.subarray(0, 100))).toBe(true);
    } finally {
      proxies[1].setCut(false);
    }

    for (const [i, s] of [[0, alice], [1, bob], [2, carol]] as const) {
      await until(`edit, reaction and redaction on ${names[i]}`, async () => {
        const h = await history(hubs[i], s, roomId);
        const e = h.find((m) => m.id === m2.id);
        const r = h.find((m) => m.id === m1.id);
        const d = h.find((m) => m.id === m3.id);
        return e?.content === 'hi from B (edited)' && r?.reactions?.some((x: any) => x.key === '👍' && x.count === 1) && d?.deleted === true;
      });
    }
    const orders = await Promise.all([[0, alice], [1, bob], [2, carol]].map(async ([i, s]) => (await history(hubs[i as number], s as Session, roomId)).map((m) => m.id)));
    expect(orders[1]).toEqual(orders[0]);
    expect(orders[2]).toEqual(orders[0]);
    expect(orders[0]).toEqual([m1.id, m2.id, m3.id, m4.id, m5.id]);
  });

  it('carries a direct room between A and B, with a mention that names the same person on both hubs', async () => {
    const bobOnA = (await api(hubs[0].url, 'GET', `/api/users/lookup?address=${encodeURIComponent(bob.user.address)}`, { token: alice.token })).body;
    const dm = await api(hubs[0].url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bobOnA.id] } });
    expect(dm.status).toBe(201);
    const dmId = dm.body.id;
    await until('the direct room on B', async () => (await api(hubs[1].url, 'GET', `/api/rooms/${dmId}`, { token: bob.token })).status === 200);
    const fromA = (await api(hubs[0].url, 'POST', `/api/rooms/${dmId}/messages`, { token: alice.token, body: { content: `hey <@${bobOnA.id}>` } })).body.id;
    const onB = await until('the mention on B', async () => (await history(hubs[1], bob, dmId)).find((m) => m.id === fromA));
    expect(onB.content).toBe(`hey <@${bob.user.id}>`);
    expect(onB.mentions).toEqual([bob.user.id]);
    const reply = await api(hubs[1].url, 'POST', `/api/rooms/${dmId}/messages`, { token: bob.token, body: { content: 'hey back', reply_to: fromA } });
    expect(reply.status).toBe(201);
    expect(reply.body.stream_position).toBeGreaterThan(0); // the host ordered it within the wait
    const onA = await until('the reply on A', async () => (await history(hubs[0], alice, dmId)).find((m) => m.id === reply.body.id));
    expect(onA.reply_to).toBe(fromA);
    const order = async (i: number, s: Session) => (await history(hubs[i], s, dmId)).map((m) => m.id);
    expect(await order(1, bob)).toEqual(await order(0, alice));

    // The media endpoint serves a file only to hubs that share a room where it was sent.
    const file = await upload(hubs[0], alice, crypto.randomBytes(1000), 'dm.bin');
    const path = `/_federation/v1/media/${file.id}`;
    expect((await signedGet(1, 0, path)).status).toBe(403); // uploaded, not sent anywhere yet
    await api(hubs[0].url, 'POST', `/api/rooms/${dmId}/messages`, { token: alice.token, body: { content: 'for Bob', attachments: [file.id] } });
    expect((await signedGet(1, 0, path)).status).toBe(200);
    expect((await signedGet(2, 0, path)).status).toBe(403); // C is not in the direct room
    expect((await signedGet(1, 0, `${path}/thumbnail`)).status).toBe(404); // no thumbnail
    expect((await signedGet(1, 0, `/_federation/v1/media/${crypto.randomUUID()}`)).status).toBe(404);
    expect((await fetch(`${hubs[0].url}${path}`)).status).toBe(401); // unsigned
  });

  it('shows typing on the other hubs (best effort, straight to them)', async () => {
    const bobWs = await WsClient.connect(hubs[1].wsUrl, bob.token);
    const aliceWs = await WsClient.connect(hubs[0].wsUrl, alice.token);
    try {
      const aliceOnB = await hubs[1].hub.users.findByUsername(alice.user.username, 'a.test');
      aliceWs.send({ type: 'typing.start', room_id: roomId });
      const typing = await bobWs.next('typing', (e) => e.user_id === aliceOnB!.id && e.typing === true, 10000);
      expect(typing.room_id).toBe(roomId);
      aliceWs.send({ type: 'typing.stop', room_id: roomId });
      await bobWs.next('typing', (e) => e.user_id === aliceOnB!.id && e.typing === false, 10000);
    } finally {
      bobWs.close();
      aliceWs.close();
    }
  });

  it('shows presence on the other hubs: online at the first socket, a status set, offline after the last', async () => {
    const bobWs = await WsClient.connect(hubs[1].wsUrl, bob.token);
    try {
      const aliceOnB = (await hubs[1].hub.users.findByUsername(alice.user.username, 'a.test'))!;
      const aliceWs = await WsClient.connect(hubs[0].wsUrl, alice.token);
      await vi.waitFor(async () => expect((await api(hubs[1].url, 'GET', `/api/presence/${aliceOnB.id}`, { token: bob.token })).body.status).toBe('online'), { timeout: 10000 });
      aliceWs.send({ type: 'presence.update', status: 'busy', status_text: 'in a meeting' });
      const busy = await bobWs.next('presence', (e) => e.user_id === aliceOnB.id && e.status === 'busy', 10000);
      expect(busy.status_text).toBe('in a meeting');
      aliceWs.close();
      await bobWs.next('presence', (e) => e.user_id === aliceOnB.id && e.status === 'offline', 10000);
      // Only the origin speaks for its users: B cannot set the presence of A's user on C.
      const aliceOnC = (await hubs[2].hub.users.findByUsername(alice.user.username, 'a.test'))!;
      const onC = async () => (await api(hubs[2].url, 'GET', `/api/presence/${aliceOnC.id}`, { token: carol.token })).body.status;
      await vi.waitFor(async () => expect(await onC()).toBe('offline'), { timeout: 10000 });
      const key = loadFederationKey(hubs[1].config.data_dir);
      const body = JSON.stringify({ events: [], ephemeral: [{ type: 'presence', user: `@${alice.user.username}:a.test`, status: 'online' }] });
      const path = `/_federation/v1/send/forged-presence-${crypto.randomUUID()}`;
      const headers = await signRequest(key, names[1], { method: 'PUT', destination: names[2], path, body });
      expect((await fetch(`${hubs[2].url}${path}`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/json' }, body })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 200));
      expect(await onC()).toBe('offline');
    } finally {
      bobWs.close();
    }
  });

  it('applies a transaction once however often it is sent, and an event once under any txn_id', async () => {
    const key = loadFederationKey(hubs[0].config.data_dir);
    const bobOnA = await hubs[0].hub.users.findByUsername(bob.user.username, 'b.test');
    const [pdu] = (await hubs[0].hub.db.query(`SELECT pdu FROM federation_events WHERE room_id = $1 AND pdu->>'type' = 'message' ORDER BY room_seq DESC LIMIT 1`, [roomId])).rows.map((r) => r.pdu);
    expect(bobOnA).not.toBeNull();
    const before = (await history(hubs[1], bob, roomId)).length;
    for (const txn of ['replay-1', 'replay-1', 'replay-2']) {
      const text = JSON.stringify({ events: [pdu], ephemeral: [] });
      const res = await fetch(`${hubs[1].url}/_federation/v1/send/${txn}`, {
        method: 'PUT',
        body: text,
        headers: await signRequest(key, 'a.test', { method: 'PUT', destination: 'b.test', path: `/_federation/v1/send/${txn}`, body: text }),
      });
      expect(res.status).toBe(200);
    }
    expect((await history(hubs[1], bob, roomId)).length).toBe(before);
  });

  it('heals a network cut (both ways, then one way) and drains the queue to 0 in the admin view and /metrics', async () => {
    admin = await register(hubs[0].url, 'Root');
    await hubs[0].hub.db.query('UPDATE users SET is_admin = true WHERE id = $1', [admin.user.id]);
    const peersOfA = async () => (await api(hubs[0].url, 'GET', '/api/admin/federation/peers', { token: admin.token })).body as any[];
    const sendAs = async (i: number, s: Session, content: string) =>
      (await api(hubs[i].url, 'POST', `/api/rooms/${roomId}/messages`, { token: s.token, body: { content } })).body.id as string;

    // Both ways: nothing reaches A or B.
    proxies[0].setCut(true);
    proxies[1].setCut(true);
    const sent = [await sendAs(0, alice, 'cut both 1'), await sendAs(1, bob, 'cut both 2'), await sendAs(0, alice, 'cut both 3')];
    const stuck = await until('a retrying queue from A to B', async () => (await peersOfA()).find((p) => p.server_name === 'b.test' && p.queue_depth > 0 && p.failures > 0));
    expect(stuck.state).toBe('retrying');
    expect(stuck.oldest_pending_age_ms).toBeGreaterThanOrEqual(0);
    proxies[0].setCut(false);
    proxies[1].setCut(false);
    await until('the queues drained', async () => (await peersOfA()).every((p) => p.queue_depth === 0 && p.last_success_at));

    // One way: A cannot reach B, B still reaches A.
    proxies[1].setCut(true);
    sent.push(await sendAs(0, alice, 'cut one way 1'), await sendAs(1, bob, 'cut one way 2'));
    await until('a retrying queue from A to B', async () => (await peersOfA()).find((p) => p.server_name === 'b.test' && p.queue_depth > 0));
    proxies[1].setCut(false);
    await until('the queues drained', async () => (await peersOfA()).every((p) => p.queue_depth === 0));
    for (const [i, s] of [[0, alice], [1, bob], [2, carol]] as const) {
      await until(`every message on ${names[i]}`, async () => {
        const ids = (await history(hubs[i], s, roomId)).map((m) => m.id);
        return sent.every((id) => ids.includes(id));
      });
    }
    const metrics = await fetch(`${hubs[0].url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/switchboard_federation_queue_depth\{peer="b.test"\} 0/);
    expect(metrics).toMatch(/switchboard_federation_last_success_timestamp_seconds\{peer="b.test"\} [1-9]/);
  });

  it('carries a reply sent in the same transaction as the message it answers', async () => {
    const peerB = async () => (await hubs[0].hub.federation.peerStatus()).find((p) => p.server_name === 'b.test')!;
    const send = async (content: string, reply_to?: string) =>
      (await api(hubs[0].url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content, ...(reply_to ? { reply_to } : {}) } })).body.id as string;
    // While A cannot reach B, a first message takes a transaction of its own; the next three queue
    // behind it and go together once B is reachable (B writes the first of them alone, then the
    // others as a group).
    proxies[1].setCut(true);
    await send('ahead');
    await until('A retrying a transaction to B', async () => (await peerB()).failures > 0);
    await send('first of the group');
    const question = await send('question');
    const answer = await send('answer', question);
    proxies[1].setCut(false);
    const onB = await until('the answer on B', async () => (await history(hubs[1], bob, roomId)).find((m) => m.id === answer));
    expect(onB.reply_to).toBe(question);
    // In B's copy of the room's log: written in the transaction after the group's messages commit
    // (a crash between them is mended by the host's retry, the messages being known by id).
    const rows = await until('the answer in B\'s room log', async () => {
      const { rows } = await hubs[1].hub.db.query('SELECT room_seq FROM federation_events WHERE event_id = $1', [`m:${answer}`]);
      return rows.length > 0 && rows;
    });
    expect(rows).toHaveLength(1);
  });

  it('keeps sends in a room whose host is unreachable pending, then sequences them once, in order', async () => {
    proxies[0].setCut(true); // nobody reaches A, the host
    const sent: any[] = [];
    for (const content of ['while A is away 1', 'while A is away 2']) {
      const res = await api(hubs[1].url, 'POST', `/api/rooms/${roomId}/messages`, { token: bob.token, body: { content, txn_id: `away-${content}` } });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ pending: true, stream_position: 0 });
      sent.push(res.body.id);
    }
    const again = await api(hubs[1].url, 'POST', `/api/rooms/${roomId}/messages`, { token: bob.token, body: { content: 'while A is away 1', txn_id: 'away-while A is away 1' } });
    expect(again.body.id).toBe(sent[0]); // the same txn_id names the same message
    // The WebSocket acknowledgement says pending too.
    const bobWs = await WsClient.connect(hubs[1].wsUrl, bob.token);
    bobWs.send({ type: 'message.send', room_id: roomId, content: 'while A is away 3', txn_id: 'away-ws-3' });
    const ack = await bobWs.next('message.sent', (e) => e.txn_id === 'away-ws-3', 10000);
    expect(ack).toMatchObject({ pending: true, stream_position: 0, duplicate: false, room_id: roomId });
    sent.push(ack.message_id);
    bobWs.close();
    proxies[0].setCut(false);
    for (const [i, s] of [[0, alice], [1, bob], [2, carol]] as const) {
      const ids = await until(`the pending sends on ${names[i]}`, async () => {
        const h = (await history(hubs[i], s, roomId)).map((m) => m.id);
        return sent.every((id) => h.includes(id)) ? h : undefined;
      });
      expect(ids.filter((id) => sent.includes(id))).toEqual(sent);
    }
  }, 30000);

  it('puts the same 200 messages, once each, in one order on every hub when A and B each send 100 at once', async () => {
    const burst = (i: number, s: Session) =>
      Promise.all(Array.from({ length: 100 }, (_, k) => api(hubs[i].url, 'POST', `/api/rooms/${roomId}/messages`, { token: s.token, body: { content: `${names[i]} ${k}` } })));
    const [fromA, fromB] = await Promise.all([burst(0, alice), burst(1, bob)]);
    const ids = [...fromA, ...fromB].map((r) => r.body.id);
    expect(new Set(ids).size).toBe(200);
    const lists = await Promise.all(
      [[0, alice], [1, bob], [2, carol]].map(([i, s]) =>
        until(`200 on ${names[i as number]}`, async () => {
          const res = await api(hubs[i as number].url, 'GET', `/api/rooms/${roomId}/messages?limit=100`, { token: (s as Session).token });
          const all: any[] = [];
          let page = res.body.messages;
          all.push(...page);
          while (page.length === 100) {
            const oldest = [...page].sort((x: any, y: any) => x.stream_position - y.stream_position)[0];
            const next = await api(hubs[i as number].url, 'GET', `/api/rooms/${roomId}/messages?limit=100&before=${oldest.id}`, { token: (s as Session).token });
            page = next.body.messages;
            all.push(...page);
          }
          const got = all.filter((m) => ids.includes(m.id));
          return got.length >= 200 ? got.sort((x, y) => x.stream_position - y.stream_position).map((m) => m.id) : undefined;
        }, 90000), // the embedded PGlite on a loaded machine is slow; PostgreSQL takes a few seconds

      ),
    );
    for (const list of lists) expect(new Set(list).size).toBe(200);
    expect(lists[1]).toEqual(lists[0]);
    expect(lists[2]).toEqual(lists[0]);
  }, 150000);

  describe('refuses forged requests with 401 and changes nothing', () => {
    const path = '/_federation/v1/send/forged-1';
    const body = () => JSON.stringify({ events: [], ephemeral: [] });
    const put = (headers: Record<string, string>, text: string) =>
      fetch(`${hubs[0].url}${path}`, { method: 'PUT', headers, body: text }).then(async (r) => ({ status: r.status, body: await r.json() }));
    let realKey: ReturnType<typeof loadFederationKey>;
    beforeAll(() => {
      realKey = loadFederationKey(hubs[1].config.data_dir);
    });

    it('refuses an unsigned request and accepts a well-signed one (the control)', async () => {
      const text = body();
      const unsigned = await fetch(`${hubs[0].url}/_federation/v1/send/control-1`, { method: 'PUT', body: text, headers: { 'content-type': 'application/json' } });
      expect(unsigned.status).toBe(401);
      const ok = await fetch(`${hubs[0].url}/_federation/v1/send/control-2`, {
        method: 'PUT',
        body: text,
        headers: await signRequest(realKey, 'b.test', { method: 'PUT', destination: 'a.test', path: '/_federation/v1/send/control-2', body: text }),
      });
      expect(ok.status).toBe(200);
    });

    it.each([
      ['an unknown peer', async () => ({ key: realKey, origin: 'evil.test', dest: 'a.test', text: body(), sent: body() })],
      ['a wrong key', async () => ({ key: loadFederationKey(`${hubs[0].config.data_dir}/other`), origin: 'b.test', dest: 'a.test', text: body(), sent: body() })],
      ['a tampered body', async () => ({ key: realKey, origin: 'b.test', dest: 'a.test', text: body(), sent: JSON.stringify({ events: [], ephemeral: [1] }) })],
      ['a wrong destination', async () => ({ key: realKey, origin: 'b.test', dest: 'c.test', text: body(), sent: body() })],
    ])('%s', async (_name, make) => {
      const { key, origin, dest, text, sent } = await make();
      const headers = await signRequest(key, origin, { method: 'PUT', destination: dest, path, body: text });
      const res = await put(headers, sent);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('FEDERATION_UNAUTHORIZED');
    });

    it('a bad signature and a created time more than 5 minutes off', async () => {
      const text = body();
      const headers = await signRequest(realKey, 'b.test', { method: 'PUT', destination: 'a.test', path, body: text });
      const bad = { ...headers, signature: headers.signature.replace(/:(.)/, (_m, c) => `:${c === 'A' ? 'B' : 'A'}`) };
      expect((await put(bad, text)).status).toBe(401);
      const old = Math.floor(Date.now() / 1000) - 600;
      const stale = { ...headers, 'signature-input': headers['signature-input'].replace(/created=\d+/, `created=${old}`) };
      expect((await put(stale, text)).status).toBe(401);
    });

    it('a denied server', async () => {
      hubs[0].config.federation.deny = ['b.test'];
      try {
        const text = body();
        const res = await put(await signRequest(realKey, 'b.test', { method: 'PUT', destination: 'a.test', path, body: text }), text);
        expect(res.status).toBe(401);
      } finally {
        hubs[0].config.federation.deny = [];
      }
    });

    it('an event for another hub\'s user: 403 and nothing stored', async () => {
      const before = (await history(hubs[0], alice, roomId)).length;
      const forged = {
        event_id: 'm:x', room_id: roomId, type: 'message', sender: carol.user.address, origin: 'b.test', origin_ts: Date.now(),
        content: { id: crypto.randomUUID(), content: 'forged', reply_to: null, created_at: new Date().toISOString() }, signatures: {},
      };
      const text = JSON.stringify({ events: [forged], ephemeral: [] });
      const res = await fetch(`${hubs[0].url}/_federation/v1/send/forged-2`, {
        method: 'PUT',
        body: text,
        headers: await signRequest(realKey, 'b.test', { method: 'PUT', destination: 'a.test', path: '/_federation/v1/send/forged-2', body: text }),
      });
      expect(res.status).toBe(403);
      expect((await history(hubs[0], alice, roomId)).length).toBe(before);
    });
  });

  it('a room that denies hub C stops sending to C and refuses C\'s events; C dead-letters the refusal and its queue goes on', async () => {
    // A second room with Carol, which does not deny C.
    const carolOnA = await hubs[0].hub.users.findByUsername(carol.user.username, 'c.test');
    const room2 = (await api(hubs[0].url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'group', name: 'Duo', members: [carolOnA!.id] } })).body.id;
    await until('the second room on C', async () => (await api(hubs[2].url, 'GET', `/api/rooms/${room2}`, { token: carol.token })).status === 200);

    const res = await api(hubs[0].url, 'PUT', `/api/admin/federation/rooms/${roomId}/deny`, { token: admin.token, body: { deny: ['c.test'] } });
    expect(res.status).toBe(200);
    expect(res.body.servers).toEqual(['b.test']);
    const fromA = (await api(hubs[0].url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'not for C' } })).body.id;
    await until('the message on B', async () => (await history(hubs[1], bob, roomId)).some((m) => m.id === fromA));

    const send = (room: string, content: string) => api(hubs[2].url, 'POST', `/api/rooms/${room}/messages`, { token: carol.token, body: { content } });
    const peerA = async () => (await hubs[2].hub.federation.peerStatus()).find((p) => p.server_name === 'a.test')!;
    // While C cannot reach A, a first send takes a transaction of its own (retried as it is), and
    // the refused one and a good one queue behind it: one transaction of two once A is back.
    proxies[0].setCut(true);
    const first = send(room2, 'first, while A is away');
    await until('C retrying a transaction to A', async () => (await peerA()).failures > 0);
    const [refusedSend, goodSend] = await Promise.all([send(roomId, 'from C, refused'), send(room2, 'from C, accepted')]);
    proxies[0].setCut(false);
    const ids = { first: (await first).body.id, refused: refusedSend.body.id, good: goodSend.body.id };
    await until('C\'s queue to A drained', async () => {
      const p = await peerA();
      return p.queue_depth === 0 && p.dead_letters === 1 && p.failures === 0;
    });
    const onA = await until('the accepted sends on A', async () => {
      const h = (await history(hubs[0], alice, room2)).map((m) => m.id);
      return h.includes(ids.first) && h.includes(ids.good) ? h : undefined;
    });
    expect(onA).toEqual([ids.first, ids.good]);
    expect((await history(hubs[0], alice, roomId)).some((m) => m.id === ids.refused)).toBe(false);
    expect((await history(hubs[2], carol, roomId)).some((m) => m.id === fromA)).toBe(false);
    const [dead] = (await hubs[2].hub.db.query('SELECT peer, status, body FROM federation_dead_letters')).rows;
    expect(dead).toMatchObject({ peer: 'a.test', status: 403 });
    expect(dead.body.events.map((e: any) => e.content.id)).toEqual([ids.refused]);
    const metrics = await fetch(`${hubs[2].url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/switchboard_federation_dead_letters\{peer="a.test"\} 1/);
  }, 30000);

  it('prunes received transaction ids older than federation.txn_retention_s', async () => {
    const db = hubs[1].hub.db;
    await db.query("INSERT INTO federation_txns (origin, txn_id, received_at) VALUES ('a.test', 'old-1', now() - interval '25 hours'), ('a.test', 'recent-1', now() - interval '23 hours')");
    expect(hubs[1].config.federation.txn_retention_s).toBe(86400);
    expect(await hubs[1].hub.federation.pruneReceivedTxns()).toBeGreaterThanOrEqual(1);
    const left = (await db.query("SELECT txn_id FROM federation_txns WHERE txn_id IN ('old-1', 'recent-1')")).rows.map((r) => r.txn_id);
    expect(left).toEqual(['recent-1']);
  });

  it('forwards a participant\'s user leaving a room to the host, which sequences the new member list', async () => {
    const bobOnA = (await hubs[0].hub.users.findByUsername(bob.user.username, 'b.test'))!;
    const membersOnA = async () => ((await api(hubs[0].url, 'GET', `/api/rooms/${roomId}`, { token: alice.token })).body.members as any[]).map((m) => m.user_id);
    expect(await membersOnA()).toContain(bobOnA.id);
    const left = await api(hubs[1].url, 'POST', `/api/rooms/${roomId}/leave`, { token: bob.token });
    expect(left.status).toBe(200);
    expect((await api(hubs[1].url, 'GET', `/api/rooms/${roomId}`, { token: bob.token })).status).toBe(403); // at once on B
    await until('Bob gone from the room on A', async () => !(await membersOnA()).includes(bobOnA.id));
    // B has no member left: the host sends it nothing more of the room.
    await until('B no longer a destination', async () => {
      const { rows } = await hubs[0].hub.db.query('SELECT servers FROM federation_rooms WHERE room_id = $1', [roomId]);
      return !rows[0].servers.includes('b.test');
    });
    const { rows } = await hubs[1].hub.db.query("SELECT count(*)::int AS n FROM federation_dead_letters WHERE peer = 'a.test'");
    expect(rows[0].n).toBe(0); // the host took the leave
  });
});

describe('the per-peer rate limit on inbound federation requests', () => {
  it('answers 429 RATE_LIMITED with Retry-After past rate_limits.federation_per_peer_per_min requests of one peer, counting each peer apart', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-fed-keys-'));
    const keys = { 'x.test': loadFederationKey(path.join(dir, 'x')), 'y.test': loadFederationKey(path.join(dir, 'y')) };
    const limited = await startTestHub({
      federation: { enabled: true, server_name: 'limited.test', peers: Object.entries(keys).map(([name, k]) => ({ server_name: name, url: 'http://127.0.0.1:9', public_key: k.publicKey })) },
      rate_limits: { federation_per_peer_per_min: 5 },
    });
    try {
      const get = async (peer: keyof typeof keys) => {
        const p = '/_federation/v1/users/nobody';
        const res = await fetch(`${limited.url}${p}`, { headers: await signRequest(keys[peer], peer, { method: 'GET', destination: 'limited.test', path: p, body: '' }) });
        return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
      };
      expect((await fetch(`${limited.url}/_federation/v1/users/nobody`)).status).toBe(401); // unsigned: refused, not counted
      const fromX = [];
      for (let i = 0; i < 6; i++) fromX.push(await get('x.test'));
      expect(fromX.slice(0, 5).map((r) => r.status)).toEqual([404, 404, 404, 404, 404]);
      expect(fromX[5]).toMatchObject({ status: 429, body: { error: { code: 'RATE_LIMITED' } } });
      expect(Number(fromX[5].retryAfter)).toBeGreaterThan(0);
      expect((await get('y.test')).status).toBe(404);
    } finally {
      await limited.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
