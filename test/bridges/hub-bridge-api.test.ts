/** Hub side of the bridge API: as_token auth and masquerading, ghosts, portals, remote ids, transactions. */
import crypto from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgesService } from '../../src/modules/bridges/bridges.service.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { bridgeConfig } from './bridge-config.js';
import { FakeBridge } from './fake-bridge.js';

const token = () => crypto.randomBytes(24).toString('hex');
const WA = { as: token(), hs: token() };
const GC = { as: token(), hs: token() };

let t: TestHub;
let bridge: FakeBridge;
let other: FakeBridge;
let alice: Session;
let bob: Session;

/** A REST call as the whatsapp bridge, optionally acting as `userId`. */
const asBridge = (method: string, url: string, opts: { userId?: string; body?: unknown; tokenOf?: string } = {}) =>
  api(t.url, method, opts.userId ? `${url}${url.includes('?') ? '&' : '?'}user_id=${opts.userId}` : url, { token: opts.tokenOf ?? WA.as, body: opts.body });

beforeAll(async () => {
  bridge = new FakeBridge();
  other = new FakeBridge();
  await bridge.start();
  await other.start();
  t = await startTestHub({
    bridges: [
      bridgeConfig({ id: 'whatsapp', network: 'whatsapp', url: bridge.url, as_token: WA.as, hs_token: WA.hs, retry_max_ms: 200, whatsapp: {} }),
      bridgeConfig({ id: 'gchat', network: 'whatsapp', url: other.url, as_token: GC.as, hs_token: GC.hs, namespace: 'gchat_', retry_max_ms: 200, whatsapp: {} }),
    ],
  });
  alice = await register(t.url, 'Alice');
  bob = await register(t.url, 'Bob');
});
afterAll(async () => {
  await t?.close();
  await bridge?.close();
  await other?.close();
});

describe('as_token authentication', () => {
  it('acts as the bridge bot without user_id', async () => {
    const me = await asBridge('GET', '/api/me');
    expect(me.status).toBe(200);
    expect(me.body.name).toBe('whatsapp bridge');
    const who = await asBridge('GET', '/api/bridge/whoami');
    expect(who.body).toEqual({ id: 'whatsapp', bot_user_id: me.body.id, namespace: 'whatsapp_' });
  });

  it('refuses the bridge API to ordinary users', async () => {
    const res = await api(t.url, 'POST', '/api/bridge/ghosts', { token: alice.token, body: { localpart: 'whatsapp_1', name: 'X' } });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
  });

  it('masquerades as its ghosts and nobody else', async () => {
    const ghost = await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'whatsapp_111', name: 'Gina' } });
    const foreign = await asBridge('POST', '/api/bridge/ghosts', { tokenOf: GC.as, body: { localpart: 'gchat_9', name: 'Gus' } });
    expect((await asBridge('GET', '/api/me', { userId: ghost.body.id })).body.name).toBe('Gina');
    const asPerson = await asBridge('GET', '/api/me', { userId: alice.user.id });
    expect(asPerson.status).toBe(403);
    expect((await asBridge('GET', '/api/me', { userId: foreign.body.id })).status).toBe(403);
    expect((await asBridge('GET', '/api/me', { userId: 'not-a-uuid' })).status).toBe(403);
  });
});

describe('ghosts', () => {
  it('creates once, then updates name and avatar', async () => {
    const first = await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'whatsapp_222', name: 'Old' } });
    expect(first.status).toBe(201);
    const second = await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'whatsapp_222', name: 'New', avatar_url: 'https://x.test/a.png' } });
    expect(second.status).toBe(200);
    expect(second.body).toEqual({ id: first.body.id, localpart: 'whatsapp_222', name: 'New', avatar_url: 'https://x.test/a.png' });
    const seen = await api(t.url, 'GET', `/api/users/${first.body.id}`, { token: alice.token });
    expect(seen.body).toMatchObject({ name: 'New', bridge_id: 'whatsapp' });
    expect((await api(t.url, 'GET', `/api/users/${alice.user.id}`, { token: alice.token })).body.bridge_id).toBeNull();
    // The creation (not the update) is in the audit trail, as the bridge's.
    const audited = (await t.hub.audit.list({ limit: 200, action: 'bridge.ghost_create' })).entries.filter((e) => e.target_id === first.body.id);
    expect(audited).toEqual([expect.objectContaining({ via: 'bridge:whatsapp', actor_id: null, detail: { localpart: 'whatsapp_222' } })]);
  });

  it('refuses localparts outside the namespace and the bot localpart', async () => {
    expect((await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'gchat_1', name: 'X' } })).status).toBe(403);
    expect((await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'whatsapp_bot', name: 'X' } })).status).toBe(403);
  });
});

describe('portals and remote ids', () => {
  let ghostId: string;
  let roomId: string;

  beforeAll(async () => {
    ghostId = (await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'whatsapp_333', name: 'Paula' } })).body.id;
  });

  it('creates one room per remote chat, also under concurrent calls', async () => {
    const body = { remote_id: '333', name: 'Paula (WhatsApp)', members: [ghostId, alice.user.id] };
    const [a, b] = await Promise.all([asBridge('POST', '/api/bridge/portals', { body }), asBridge('POST', '/api/bridge/portals', { body })]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(a.body.room_id).toBe(b.body.room_id);
    roomId = a.body.room_id;
    const room = await api(t.url, 'GET', `/api/rooms/${roomId}`, { token: alice.token });
    expect(room.body.members.map((m: any) => m.user_id).sort()).toEqual([ghostId, alice.user.id, (await asBridge('GET', '/api/me')).body.id].sort());
    const again = await asBridge('POST', '/api/bridge/portals', { body: { ...body, members: [bob.user.id] } });
    expect(again.body).toEqual({ room_id: roomId, created: false });
    expect((await api(t.url, 'GET', `/api/rooms/${roomId}`, { token: bob.token })).status).toBe(200);
    const audited = (await t.hub.audit.list({ limit: 200, action: 'bridge.portal_create' })).entries.filter((e) => e.target_id === roomId);
    expect(audited).toEqual([expect.objectContaining({ via: 'bridge:whatsapp', detail: { remote_id: '333' } })]);
  });

  it('posts as a ghost with the original timestamp, once per remote id, and finds it by remote id', async () => {
    const ts = Date.parse('2024-05-01T10:00:00.000Z');
    const body = { content: 'hola', ts, remote_id: 'wamid.A1' };
    const first = await asBridge('POST', `/api/rooms/${roomId}/messages`, { userId: ghostId, body });
    expect(first.status).toBe(201);
    expect(first.body.created_at).toBe('2024-05-01T10:00:00.000Z');
    const again = await asBridge('POST', `/api/rooms/${roomId}/messages`, { userId: ghostId, body });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const found = await asBridge('GET', '/api/bridge/messages/by-remote-id/wamid.A1');
    expect(found.body).toMatchObject({ id: first.body.id, user_id: ghostId, content: 'hola' });
    expect((await asBridge('GET', '/api/bridge/messages/by-remote-id/wamid.A1', { tokenOf: GC.as })).status).toBe(404);
    const history = await api(t.url, 'GET', `/api/rooms/${roomId}/messages`, { token: alice.token });
    expect(history.body.messages.filter((m: any) => m.content === 'hola')).toHaveLength(1);
  });

  it('announces a ghost rename to its rooms (its next message carries the new name), and a repeat that changes nothing announces nothing', async () => {
    const updates = async () =>
      (await t.hub.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM room_events WHERE room_id = $1 AND type = 'room.updated'`, [roomId])).rows[0].n;
    const before = await updates();
    expect((await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'whatsapp_333', name: 'Paula' } })).status).toBe(200);
    expect(await updates()).toBe(before);

    const ws = await WsClient.connect(t.wsUrl, alice.token);
    try {
      expect((await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'whatsapp_333', name: 'Paula M.' } })).status).toBe(200);
      const update = await ws.next('room.updated', (m) => m.room_id === roomId);
      expect(update.room.members.find((m: any) => m.user_id === ghostId).name).toBe('Paula M.');
      expect(await updates()).toBe(before + 1);
      await asBridge('POST', `/api/rooms/${roomId}/messages`, { userId: ghostId, body: { content: 'renamed', remote_id: 'wamid.A2' } });
      const message = await ws.next('message.new', (m) => m.message.content === 'renamed');
      expect(message.message.user_name).toBe('Paula M.');
    } finally {
      ws.close();
    }
  });

  it('refuses ts and remote_id from ordinary users', async () => {
    const res = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'x', ts: 1 } });
    expect(res.status).toBe(403);
  });
});

describe('transactions', () => {
  let ghostId: string;
  let roomId: string;
  let plainRoom: string;

  beforeAll(async () => {
    ghostId = (await asBridge('POST', '/api/bridge/ghosts', { body: { localpart: 'whatsapp_444', name: 'Tom' } })).body.id;
    roomId = (await asBridge('POST', '/api/bridge/portals', { body: { remote_id: '444', name: 'Tom', members: [ghostId, alice.user.id] } })).body.room_id;
    plainRoom = (await api(t.url, 'POST', '/api/rooms', { token: alice.token, body: { type: 'direct', members: [bob.user.id] } })).body.id;
  });

  it("pushes the events of the bridge's rooms, in order, with the hs_token, and nothing else", async () => {
    await api(t.url, 'POST', `/api/rooms/${plainRoom}/messages`, { token: alice.token, body: { content: 'private' } });
    const sent = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'to whatsapp' } });
    const ev = await bridge.until(() => bridge.acceptedEvents().find((e) => e.type === 'message.new' && e.message.id === sent.body.id));
    expect(ev).toMatchObject({ room_id: roomId, stream_position: sent.body.stream_position, message: { content: 'to whatsapp', user_id: alice.user.id } });
    expect(bridge.received.every((r) => r.authorization === `Bearer ${WA.hs}`)).toBe(true);
    expect(bridge.acceptedEvents().some((e) => e.room_id === plainRoom)).toBe(false);
    expect(other.acceptedEvents().some((e) => e.room_id === roomId)).toBe(false);
    const positions = bridge.acceptedEvents().map((e) => e.stream_position);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(new Set(bridge.received.filter((r) => r.status === 200).map((r) => r.txnId)).size).toBe(bridge.received.filter((r) => r.status === 200).length);
  });

  it('sends read receipts and typing as ephemeral', async () => {
    const ghostMsg = await asBridge('POST', `/api/rooms/${roomId}/messages`, { userId: ghostId, body: { content: 'read me', remote_id: 'wamid.R1' } });
    await api(t.url, 'POST', `/api/rooms/${roomId}/read`, { token: alice.token, body: { message_id: ghostMsg.body.id } });
    const receipt = await bridge.until(() => bridge.acceptedEphemeral().find((e) => e.type === 'message.read' && e.message_id === ghostMsg.body.id));
    expect(receipt.user_id).toBe(alice.user.id);
    const ws = await WsClient.connect(t.wsUrl, alice.token);
    ws.send({ type: 'typing.start', room_id: roomId });
    const typing = await bridge.until(() => bridge.acceptedEphemeral().find((e) => e.type === 'typing' && e.typing === true));
    expect(typing).toMatchObject({ room_id: roomId, user_id: alice.user.id });
    ws.close();
  });

  it('retries a refused transaction unchanged, with backoff, and puts later events in the next one', async () => {
    bridge.failNext = 2;
    bridge.failWhere = (body) => body.events.some((e) => e.message?.content === 'retry me');
    const before = bridge.received.length;
    const first = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'retry me' } });
    await bridge.until(() => bridge.received.length >= before + 1);
    const second = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'after' } });
    await bridge.until(() => bridge.acceptedEvents().find((e) => e.message?.id === second.body.id));
    const tries = bridge.received.slice(before).filter((r) => r.body.events.some((e) => e.message?.id === first.body.id));
    expect(tries.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(new Set(tries.map((r) => r.txnId)).size).toBe(1);
    expect(new Set(tries.map((r) => JSON.stringify(r.body))).size).toBe(1);
    expect(tries[0].body.events.some((e) => e.message?.id === second.body.id)).toBe(false);
    expect(bridge.acceptedEvents().filter((e) => e.message?.id === first.body.id)).toHaveLength(1);
  });

  it('keeps a pending transaction across a restart of the pusher and sends it again with the same id', async () => {
    bridge.failNext = 1000;
    bridge.failWhere = () => true;
    const before = bridge.received.length;
    const sent = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: alice.token, body: { content: 'survives restart' } });
    await bridge.until(() => bridge.received.length > before);
    const pendingId = bridge.received[before].txnId;
    t.hub.bridges.close();
    const restarted = new BridgesService(t.hub.db, t.hub.stream, t.hub.pubsub, t.hub.rooms, t.hub.users, t.hub.audit, t.hub.auth, t.config, pino({ level: 'silent' }));
    bridge.failNext = 0;
    await restarted.start();
    try {
      const accepted = await bridge.until(() => bridge.received.find((r) => r.status === 200 && r.txnId === pendingId));
      expect(accepted.body.events.some((e) => e.message?.id === sent.body.id)).toBe(true);
      expect(bridge.received.slice(before).every((r) => r.txnId === pendingId)).toBe(true);
    } finally {
      restarted.close();
    }
  });
});
