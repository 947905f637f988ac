/**
 * Push notifications against a real hub: Web Push through a push service simulated from RFC 8030
 * (payloads decrypted with the subscription's keys per RFC 8291, VAPID JWTs checked per RFC 8292),
 * and an HTTP pusher through a fake Matrix push gateway. Who is notified (direct messages and
 * mentions; nobody with a socket open; not in muted rooms), retries of 429 and 5xx, dropping of
 * gone subscriptions, encrypted rooms without content, and a restart of the push module that
 * neither loses nor repeats a notification.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { pushRepository } from '../../src/modules/push/push.repository.js';
import { PushService } from '../../src/modules/push/push.service.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { createRoom, expectError, sendMessage } from '../helpers/rest.js';
import { PushGatewaySim } from './push-gateway-sim.js';
import { PushServiceSim } from './push-service-sim.js';

let t: TestHub;
let sim: PushServiceSim;
let gateway: PushGatewaySim;
let alice: Session;
let bob: Session;
let carol: Session;
let direct: { id: string };

/** Waits until the notifier has handled every event so far and the queue is empty: nothing more will be sent. */
async function settled(): Promise<void> {
  const end = await t.hub.stream.maxPosition();
  for (const deadline = Date.now() + 10_000; ; ) {
    const { rows } = await t.hub.db.query<{ last_position: number; queued: number }>(
      'SELECT last_position, (SELECT count(*)::int FROM push_deliveries) AS queued FROM push_cursor',
    );
    if (rows[0].last_position >= end && rows[0].queued === 0) return;
    if (Date.now() > deadline) throw new Error(`push not settled: ${JSON.stringify(rows[0])} (stream at ${end})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function subscribe(s: Session, body: unknown) {
  return api(t.url, 'POST', '/api/push/subscriptions', { token: s.token, body });
}

beforeAll(async () => {
  sim = new PushServiceSim();
  await sim.listen();
  gateway = new PushGatewaySim();
  await gateway.listen();
  const caFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sb-push-ca-')), 'ca.pem');
  fs.writeFileSync(caFile, sim.certificate);
  t = await startTestHub({ push: { ca_file: caFile, retry_max_ms: 40, max_attempts: 4, gateway_urls: [gateway.url], vapid_subject: 'mailto:ops@example.com' } });
  [alice, bob, carol] = [await register(t.url, 'Alice'), await register(t.url, 'Bob'), await register(t.url, 'Carol')];
  direct = await createRoom(t.url, alice, { type: 'direct', members: [bob.user.id] });
});
afterAll(async () => {
  await t?.close();
  await sim?.close();
  await gateway?.close();
});

describe('Web Push', () => {
  let endpoint: string;

  it('registers a subscription (201, again 200) and gives the VAPID key', async () => {
    const config = await api(t.url, 'GET', '/api/push/config', { token: bob.token });
    expect(Buffer.from(config.body.vapid_public_key, 'base64url')).toHaveLength(65);
    const sub = sim.newSubscription();
    endpoint = sub.endpoint;
    const created = await subscribe(bob, { kind: 'webpush', ...sub, expirationTime: null });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ kind: 'webpush', url: sub.endpoint, device_id: bob.device_id });
    const again = await subscribe(bob, { kind: 'webpush', ...sub });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(created.body.id);
    expect((await api(t.url, 'GET', '/api/push/subscriptions', { token: bob.token })).body).toHaveLength(1);
    expectError(await subscribe(bob, { kind: 'webpush', endpoint: 'ftp://x.example/1', keys: sub.keys }), 400, 'VALIDATION_FAILED');
    expectError(await subscribe(bob, { kind: 'webpush', endpoint: 'http://x.example/1', keys: sub.keys }), 400, 'VALIDATION_FAILED');
    expectError(await subscribe(bob, { kind: 'webpush', endpoint: sub.endpoint, keys: { p256dh: 'not base64!', auth: sub.keys.auth } }), 400, 'VALIDATION_FAILED');
  });

  it('pushes a direct message to a user with no socket: encrypted for the subscription, signed with VAPID', async () => {
    const sent = await sendMessage(t.url, alice, direct.id, `Lunch at noon, <@${bob.user.id}>?`);
    const [push] = await sim.waitFor(1);
    expect(sim.problems).toEqual([]);
    expect(push.payload).toMatchObject({
      type: 'message',
      reason: 'direct',
      room_id: direct.id,
      room_type: 'direct',
      message_id: sent.id,
      sender_id: alice.user.id,
      sender_name: 'Alice',
      body: 'Lunch at noon, @Bob?',
      encrypted: false,
      stream_position: sent.stream_position,
    });
    const config = await api(t.url, 'GET', '/api/push/config', { token: bob.token });
    expect(push.vapid).toMatchObject({ aud: sim.origin, sub: 'mailto:ops@example.com', k: config.body.vapid_public_key });
    expect(push.headers).toMatchObject({ ttl: String(t.config.push.ttl_s), urgency: 'high' });
    expect(push.headers.topic).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    await settled();
  });

  it('does not push to a user with a socket open, nor from a muted room', async () => {
    const socket = await WsClient.connect(t.wsUrl, bob.token);
    await sendMessage(t.url, alice, direct.id, 'You are online');
    await socket.next('message.new');
    await settled();
    socket.close();
    await vi.waitFor(async () => expect(await t.hub.presence.hasOpenSocket(bob.user.id)).toBe(false));

    expect((await api(t.url, 'PUT', `/api/rooms/${direct.id}/notifications`, { token: bob.token, body: { muted: true } })).body).toEqual({ room_id: direct.id, muted: true });
    expect((await api(t.url, 'GET', `/api/rooms/${direct.id}/notifications`, { token: bob.token })).body.muted).toBe(true);
    await sendMessage(t.url, alice, direct.id, 'Muted');
    await settled();
    expect(sim.received).toHaveLength(1);
    await api(t.url, 'PUT', `/api/rooms/${direct.id}/notifications`, { token: bob.token, body: { muted: false } });
    expectError(await api(t.url, 'GET', `/api/rooms/${direct.id}/notifications`, { token: carol.token }), 403, 'NOT_A_MEMBER');
  });

  it('in a group, pushes mentions only', async () => {
    const group = await createRoom(t.url, alice, { type: 'group', name: 'Team', members: [bob.user.id, carol.user.id] });
    await sendMessage(t.url, alice, group.id, 'Hello everyone');
    await sendMessage(t.url, alice, group.id, `<@${bob.user.id}> can you review?`);
    const pushes = await sim.waitFor(2);
    await settled();
    expect(pushes).toHaveLength(2);
    expect(pushes[1].payload).toMatchObject({ reason: 'mention', room_name: 'Team', room_type: 'group', body: '@Bob can you review?' });
  });

  it('retries 429 and 5xx with backoff, then delivers once', async () => {
    sim.answerNext(endpoint, { status: 503 }, { status: 429, retryAfterS: 0 }, { status: 500 });
    const sent = await sendMessage(t.url, alice, direct.id, 'Third time lucky');
    const pushes = await sim.waitFor(3);
    await settled();
    expect(pushes).toHaveLength(3);
    expect(pushes[2].payload.message_id).toBe(sent.id);
    expect(sim.requests.slice(-4).map((r) => r.status)).toEqual([503, 429, 500, 201]);
  });

  it('gives up after push.max_attempts', async () => {
    sim.answerNext(endpoint, ...Array.from({ length: t.config.push.max_attempts }, () => ({ status: 502 })));
    await sendMessage(t.url, alice, direct.id, 'Never arrives');
    await settled();
    expect(sim.received).toHaveLength(3);
    expect(sim.requests.slice(-t.config.push.max_attempts).every((r) => r.status === 502)).toBe(true);
  });

  it('never puts the content of an encrypted room in a notification', async () => {
    const original = t.hub.rooms.get.bind(t.hub.rooms);
    // A hub with E2EE marks such rooms `encrypted: true` in their views.
    const spy = vi.spyOn(t.hub.rooms, 'get').mockImplementation(async (...args) => ({ ...(await original(...args)), encrypted: true }) as never);
    try {
      await sendMessage(t.url, alice, direct.id, 'secret plans');
      const pushes = await sim.waitFor(4);
      await settled();
      expect(pushes[3].payload.encrypted).toBe(true);
      expect(pushes[3].payload).not.toHaveProperty('body');
      expect(JSON.stringify(pushes[3].payload)).not.toContain('secret');
    } finally {
      spy.mockRestore();
    }
  });

  it('survives a restart of the push module: a queued notification is sent once, nothing is queued again', async () => {
    sim.answerNext(endpoint, ...Array.from({ length: 100 }, () => ({ status: 503 })));
    const sent = await sendMessage(t.url, alice, direct.id, 'Across a restart');
    await vi.waitFor(async () => expect((await t.hub.db.query('SELECT attempts FROM push_deliveries')).rows[0]?.attempts).toBeGreaterThanOrEqual(1), { timeout: 5000 });
    await t.hub.push.stop();
    sim.clearAnswers(); // the push service is back
    const restarted = new PushService(t.hub.db, t.hub.stream, t.hub.rooms, t.hub.presence, t.config, t.hub.log);
    t.hub.push = restarted;
    await restarted.start();
    const pushes = await sim.waitFor(5);
    await settled();
    expect(pushes).toHaveLength(5);
    expect(pushes[4].payload.message_id).toBe(sent.id);
  });

  it('drops a subscription the push service answers 404 or 410 for', async () => {
    sim.answerNext(endpoint, { status: 410 });
    await sendMessage(t.url, alice, direct.id, 'Gone');
    await settled();
    expect((await api(t.url, 'GET', '/api/push/subscriptions', { token: bob.token })).body).toEqual([]);
    expect(sim.received).toHaveLength(5);
  });

  it('stops when the device session ends, and a subscription can be deleted', async () => {
    const carolSub = await subscribe(carol, { kind: 'webpush', ...sim.newSubscription() });
    expectError(await api(t.url, 'DELETE', `/api/push/subscriptions/${carolSub.body.id}`, { token: bob.token }), 404, 'NOT_FOUND');
    expect((await api(t.url, 'DELETE', `/api/push/subscriptions/${carolSub.body.id}`, { token: carol.token })).status).toBe(204);
    // The same browser registered by another user now notifies only that user.
    const shared = sim.newSubscription();
    const frank = await register(t.url, 'Frank');
    await subscribe(carol, { kind: 'webpush', ...shared });
    expect((await subscribe(frank, { kind: 'webpush', ...shared })).status).toBe(201);
    expect((await api(t.url, 'GET', '/api/push/subscriptions', { token: carol.token })).body).toEqual([]);
    expect((await api(t.url, 'GET', '/api/push/subscriptions', { token: frank.token })).body.map((x: { url: string }) => x.url)).toEqual([shared.endpoint]);

    const dave = await register(t.url, 'Dave');
    await subscribe(dave, { kind: 'webpush', ...sim.newSubscription() });
    const room = await createRoom(t.url, alice, { type: 'direct', members: [dave.user.id] });
    await api(t.url, 'POST', '/api/auth/logout', { token: dave.token });
    await sendMessage(t.url, alice, room.id, 'After logout');
    await settled();
    expect(sim.received).toHaveLength(5);
  });
});

describe('HTTP pusher (Matrix push gateway)', () => {
  it('POSTs the push gateway notification JSON, retries a 5xx, and drops rejected pushkeys', async () => {
    const erin = await register(t.url, 'Erin');
    expectError(await subscribe(erin, { kind: 'http', app_id: 'com.example.chat', pushkey: 'tok-1', url: 'http://127.0.0.1:1/elsewhere' }), 403, 'FORBIDDEN');
    const pusher = await subscribe(erin, { kind: 'http', app_id: 'com.example.chat', pushkey: 'tok-1', url: gateway.url, data: { format: 'full' } });
    expect(pusher.status).toBe(201);
    expect(pusher.body).toMatchObject({ kind: 'http', app_id: 'com.example.chat', pushkey: 'tok-1', url: gateway.url });
    const room = await createRoom(t.url, alice, { type: 'direct', members: [erin.user.id] });
    gateway.failNext(503);
    const sent = await sendMessage(t.url, alice, room.id, 'Hi Erin');
    const [notification] = await gateway.waitFor(1);
    expect(gateway.statuses.slice(0, 2)).toEqual([503, 200]);
    expect(notification).toMatchObject({
      event_id: sent.id,
      room_id: room.id,
      type: 'm.room.message',
      sender: alice.user.id,
      sender_display_name: 'Alice',
      prio: 'high',
      content: { msgtype: 'm.text', body: 'Hi Erin' },
      devices: [{ app_id: 'com.example.chat', pushkey: 'tok-1', data: { format: 'full' }, tweaks: { sound: 'default' } }],
    });
    expect(notification.devices[0].pushkey_ts).toBeGreaterThan(1_600_000_000);
    await settled();

    gateway.reject.add('tok-1');
    await sendMessage(t.url, alice, room.id, 'Still there?');
    await gateway.waitFor(2);
    await settled();
    expect((await api(t.url, 'GET', '/api/push/subscriptions', { token: erin.token })).body).toEqual([]);
    await sendMessage(t.url, alice, room.id, 'Nobody home');
    await settled();
    expect(gateway.received).toHaveLength(2);
  });
});

describe('an empty queue', () => {
  it('is not polled: the sender sleeps until a delivery is queued, then sends it', async () => {
    await settled();
    const claims = vi.spyOn(pushRepository, 'claimDue');
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(claims).not.toHaveBeenCalled();
      // Woken by the next notification, it still sends at once.
      expect((await subscribe(carol, { kind: 'webpush', ...sim.newSubscription() })).status).toBe(201);
      const room = await createRoom(t.url, alice, { type: 'direct', members: [carol.user.id] });
      const before = sim.received.length;
      await sendMessage(t.url, alice, room.id, 'After a quiet spell');
      await sim.waitFor(before + 1);
      expect(claims).toHaveBeenCalled();
    } finally {
      claims.mockRestore();
    }
  });
});

const twoNodes = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);
if (!twoNodes) console.log('SKIPPED two-node push test: it needs both DATABASE_URL and REDIS_URL (a shared database and Redis).');

describe.skipIf(!twoNodes)('push on two nodes', () => {
  it('counts sockets cluster-wide and queues each notification once', async () => {
    // Both nodes sign with one VAPID pair, as a cluster must.
    const vapid = JSON.parse(fs.readFileSync(path.join(t.config.data_dir, 'vapid-keys.json'), 'utf8'));
    const nodeB = await startTestHub({ push: { ...t.config.push, vapid_public_key: vapid.publicKey, vapid_private_key: vapid.privateKey } }, { shareWith: t });
    try {
      const henry = await register(t.url, 'Henry');
      expect((await subscribe(henry, { kind: 'webpush', ...sim.newSubscription() })).status).toBe(201);
      const room = await createRoom(t.url, alice, { type: 'direct', members: [henry.user.id] });
      const before = sim.received.length;
      // Henry's socket is on node B; the message is sent through node A, whose notifier must see the socket.
      const socket = await WsClient.connect(nodeB.wsUrl, henry.token);
      await sendMessage(t.url, alice, room.id, 'On the other node');
      await socket.next('message.new');
      await settled();
      expect(sim.received.length).toBe(before);
      socket.close();
      await vi.waitFor(async () => expect(await t.hub.presence.hasOpenSocket(henry.user.id)).toBe(false));
      // Now both nodes' notifiers follow the log: one notification, not two.
      const sent = await sendMessage(nodeB.url, alice, room.id, 'Offline now');
      await sim.waitFor(before + 1);
      await settled();
      await new Promise((r) => setTimeout(r, 600));
      await settled();
      expect(sim.received.slice(before).map((p) => p.payload.message_id)).toEqual([sent.id]);
    } finally {
      await nodeB.close();
    }
  });
});
