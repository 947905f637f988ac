/**
 * End-to-bridge encryption (docs/BRIDGES.md, `[[bridges]] e2ee = true`): a WhatsApp portal room
 * turned encrypted carries messages both ways through the bridge's E2EE device. Alice has two
 * devices (the SDK's E2EE client on libsignal); the bridge (kit + WhatsApp connector, in this
 * process) talks to the Cloud API simulator. The hub must never hold the plaintext.
 * PostgreSQL when DATABASE_URL is set, PGlite otherwise.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bridge } from '../../bridges/kit/bridge.js';
import { createBridge } from '../../bridges/run.js';
import { BridgesService } from '../../src/modules/bridges/bridges.service.js';
import { E2eeClient, MemoryStore } from '../../sdk/src/e2ee/index.js';
import { SwitchboardClient } from '../../sdk/src/index.js';
import { freePort } from '../e2e/spawn.js';
import { api, startTestHub, type TestHub } from '../helpers/hub.js';
import { bridgeConfig } from './bridge-config.js';
import { columnsHolding } from '../helpers/columns.js';
import { device, options, password, until, type Device } from './e2ee-helpers.js';
import { WhatsAppSimulator } from './whatsapp-sim.js';

const MARIA = '15550002222';

let sim: WhatsAppSimulator;
let t: TestHub;
let bridge: Bridge;
let dataDir: string;
let asToken: string;
let alice1: Device;
let alice2: Device;
let roomId: string;

beforeAll(async () => {
  sim = new WhatsAppSimulator();
  await sim.start();
  const port = await freePort();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-wa-e2ee-'));
  asToken = crypto.randomBytes(24).toString('hex');
  t = await startTestHub({
    bridges: [bridgeConfig({
      id: 'whatsapp',
      network: 'whatsapp',
      url: `http://127.0.0.1:${port}`,
      as_token: asToken,
      hs_token: crypto.randomBytes(24).toString('hex'),
      data_dir: dataDir,
      e2ee: true,
      retry_max_ms: 200,
      max_attempts: 3,
      whatsapp: { api_base_url: sim.apiBaseUrl, phone_number_id: sim.phoneNumberId, access_token: sim.accessToken, app_secret: sim.appSecret, verify_token: 'v', send_rate_per_s: 50 },
    })],
  });
  const email = `alice-${crypto.randomBytes(4).toString('hex')}@example.test`;
  alice1 = await device(await SwitchboardClient.register(options(t.url), { email, name: 'Alice', password }));
  alice2 = await device(await SwitchboardClient.login(options(t.url), { email, password }));
  t.config.bridges[0].whatsapp!.portal_members = [alice1.client.user.id];
  bridge = createBridge(t.config, 'whatsapp', pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), t.url);
  sim.webhookUrl = `${await bridge.start()}/whatsapp/webhook`;
});
afterAll(async () => {
  for (const d of [alice1, alice2]) d?.client.disconnect();
  await bridge?.stop();
  await t?.close();
  await sim?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('an encrypted WhatsApp portal room through an E2EE bridge', () => {
  it('registers the bridge bot as an E2EE device with keys, its Signal state in the data dir', async () => {
    const whoami = await api(t.url, 'GET', '/api/bridge/whoami', { token: asToken });
    const devices = await api(t.url, 'GET', `/api/e2ee/users/${whoami.body.bot_user_id}/devices`, { token: await alice1.client.accessToken() });
    expect(devices.body.devices).toHaveLength(1);
    const keys = await api(t.url, 'GET', '/api/e2ee/keys', { token: asToken });
    expect(keys.body).toEqual({ pre_keys: 100, kyber_pre_keys: 100 });
    expect(fs.existsSync(path.join(dataDir, 'e2ee.json'))).toBe(true);
    // A ghost sends with the bot's device but does not manage it.
    const ghost = await api(t.url, 'POST', '/api/bridge/ghosts', { token: asToken, body: { localpart: 'whatsapp_probe', name: 'Probe' } });
    const asGhost = await api(t.url, 'GET', `/api/e2ee/keys?user_id=${ghost.body.id}`, { token: asToken });
    expect(asGhost.status).toBe(403);
    expect(asGhost.body.error.code).toBe('E2EE_DEVICE_REQUIRED');
  });

  it('carries messages both ways as ciphertext on the hub and plaintext on WhatsApp', async () => {
    await sim.deliver(sim.text(MARIA, 'Maria', 'before encryption').payload);
    const first = await until(() => alice1.received.find((m) => m.content === 'before encryption'), 'the portal');
    roomId = first.room_id;
    const turnedOn = await api(t.url, 'PATCH', `/api/rooms/${roomId}`, { token: asToken, body: { encrypted: true } });
    expect(turnedOn.status).toBe(200);
    expect(turnedOn.body.encrypted).toBe(true);
    await until(() => bridge.state.encryptedRooms.has(roomId), 'the bridge to see the room encrypted');

    const toWhatsApp = `to-wa-${crypto.randomBytes(8).toString('hex')}`;
    await alice1.e2ee.send(roomId, `hi Maria ${toWhatsApp}`);
    const out = await sim.until(() => sim.sent.find((s) => s.payload.text?.body?.includes(toWhatsApp)));
    expect(out.to).toBe(MARIA);
    expect(out.payload.text.body).toBe(`Alice: hi Maria ${toWhatsApp}`);

    const fromWhatsApp = `from-wa-${crypto.randomBytes(8).toString('hex')}`;
    await sim.deliver(sim.text(MARIA, 'Maria', `hola Alice ${fromWhatsApp}`).payload);
    const ghostId = first.user_id;
    for (const d of [alice1, alice2]) {
      const got = await until(() => d.received.find((m) => m.content === `hola Alice ${fromWhatsApp}`), 'Alice\'s devices to decrypt');
      expect(got.user_id).toBe(ghostId);
      expect(got.encrypted).toBe(true);
    }
    // On the wire each device got its own envelope, from the bot's device, and no content.
    const whoami = await api(t.url, 'GET', '/api/bridge/whoami', { token: asToken });
    for (const d of [alice1, alice2]) {
      const page = await api(t.url, 'GET', `/api/rooms/${roomId}/messages?limit=5`, { token: await d.client.accessToken() });
      const last = page.body.messages[page.body.messages.length - 1];
      expect(last).toMatchObject({ user_id: ghostId, encrypted: true, content: '' });
      expect(last.envelope.sender_user_id).toBe(whoami.body.bot_user_id);
    }
    const { rows } = await t.hub.db.query<{ envelopes: Record<string, unknown> }>('SELECT envelopes FROM messages WHERE room_id = $1 ORDER BY stream_position DESC LIMIT 1', [roomId]);
    expect(Object.keys(rows[0].envelopes)).toHaveLength(2);

    await bridge.queue.idle();
    expect(await columnsHolding(t, toWhatsApp)).toEqual([]);
    expect(await columnsHolding(t, fromWhatsApp)).toEqual([]);
  });

  it('encrypts the bot\'s notices too; the SDK refuses a ghost\'s envelope relabelled as another sender', async () => {
    await sim.deliver(sim.inbound(MARIA, 'Maria', { type: 'unsupported', errors: [{ code: 131051, title: 'Message type unknown' }] }).payload);
    const whoami = await api(t.url, 'GET', '/api/bridge/whoami', { token: asToken });
    const notice = await until(() => alice1.received.find((m) => m.user_id === whoami.body.bot_user_id && m.content.includes('131051')), 'the notice');
    expect(notice.encrypted).toBe(true);

    // A device that has not seen the room yet (no socket: nothing decrypted, nothing cached).
    const email = (await api(t.url, 'GET', '/api/me', { token: await alice1.client.accessToken() })).body.email;
    const client = await SwitchboardClient.login(options(t.url), { email, password });
    const fresh = await E2eeClient.start(client, new MemoryStore());
    const failures: string[] = [];
    fresh.on('decrypt-failed', (f) => failures.push(f.error.message));
    const text = `relabel-${crypto.randomBytes(4).toString('hex')}`;
    await sim.deliver(sim.text(MARIA, 'Maria', text).payload);
    await until(() => alice1.received.find((m) => m.content === text), 'the message');
    const page = await client.call(client.api.GET('/api/rooms/{room_id}/messages', { params: { path: { room_id: roomId }, query: { limit: 1 } } }));
    const sealed = page.messages[0];
    expect(sealed.envelope?.sender_user_id).toBe(whoami.body.bot_user_id);
    // The hub claiming that the bot's words are Alice's (or another ghost's) does not get through.
    const relabelled = await fresh.decryptMessage({ ...sealed, user_id: alice1.client.user.id });
    expect(relabelled.content).toBe('');
    expect(failures).toEqual([expect.stringContaining('did not send it on behalf of')]);
    fresh.stop();
  });

  it('re-fetches the devices and encrypts again when Alice adds a device (409)', async () => {
    const alice3 = await device(await SwitchboardClient.login(options(t.url), { email: (await api(t.url, 'GET', '/api/me', { token: await alice1.client.accessToken() })).body.email, password }));
    try {
      const text = `third-${crypto.randomBytes(4).toString('hex')}`;
      await sim.deliver(sim.text(MARIA, 'Maria', text).payload);
      for (const d of [alice1, alice2, alice3]) {
        const got = await until(() => d.received.find((m) => m.content === text), 'every device, the new one too');
        expect(got).toMatchObject({ room_id: roomId, encrypted: true });
      }
    } finally {
      alice3.client.disconnect();
    }
  });
});

describe('turning e2ee off', () => {
  it('revokes the bot\'s device at the next hub start, so members stop encrypting for it', async () => {
    const bot = (await api(t.url, 'GET', '/api/bridge/whoami', { token: asToken })).body.bot_user_id;
    const devicesOfBot = async () => (await api(t.url, 'GET', `/api/e2ee/users/${bot}/devices`, { token: await alice1.client.accessToken() })).body.devices;
    expect(await devicesOfBot()).toHaveLength(1);
    t.hub.bridges.close();
    const restarted = new BridgesService(t.hub.db, t.hub.stream, t.hub.pubsub, t.hub.rooms, t.hub.users, t.hub.audit, t.hub.auth, { ...t.config, bridges: [{ ...t.config.bridges[0], e2ee: false }] }, pino({ level: 'silent' }));
    await restarted.start();
    try {
      expect(await devicesOfBot()).toEqual([]);
      const sent = await alice1.e2ee.send(roomId, 'nobody at the bridge reads this');
      const { rows } = await t.hub.db.query<{ envelopes: Record<string, unknown> }>('SELECT envelopes FROM messages WHERE id = $1', [sent.id]);
      // Envelopes for Alice's other three devices (alice2 and the two the tests above logged in), none for the bot.
      expect(Object.keys(rows[0].envelopes)).toHaveLength(3);
    } finally {
      restarted.close();
    }
  });
});

describe('an encrypted WhatsApp portal room and a bridge without e2ee', () => {
  let sim2: WhatsAppSimulator;
  let t2: TestHub;
  let plain: Bridge;
  let dir: string;
  let token: string;
  let alice: Device;

  beforeAll(async () => {
    sim2 = new WhatsAppSimulator();
    await sim2.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-wa-plain-'));
    token = crypto.randomBytes(24).toString('hex');
    t2 = await startTestHub({
      bridges: [bridgeConfig({
        id: 'whatsapp',
        network: 'whatsapp',
        url: `http://127.0.0.1:${await freePort()}`,
        as_token: token,
        hs_token: crypto.randomBytes(24).toString('hex'),
        data_dir: dir,
        retry_max_ms: 200,
        max_attempts: 3,
        whatsapp: { api_base_url: sim2.apiBaseUrl, phone_number_id: sim2.phoneNumberId, access_token: sim2.accessToken, app_secret: sim2.appSecret, verify_token: 'v', send_rate_per_s: 50 },
      })],
    });
    alice = await device(await SwitchboardClient.register(options(t2.url), { email: `alice-${crypto.randomBytes(4).toString('hex')}@example.test`, name: 'Alice', password }));
    t2.config.bridges[0].whatsapp!.portal_members = [alice.client.user.id];
    plain = createBridge(t2.config, 'whatsapp', pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), t2.url);
    sim2.webhookUrl = `${await plain.start()}/whatsapp/webhook`;
  });
  afterAll(async () => {
    alice?.client.disconnect();
    await plain?.stop();
    await t2?.close();
    await sim2?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('carries nothing either way, and the bot has no E2EE device', async () => {
    await sim2.deliver(sim2.text(MARIA, 'Maria', 'plain portal').payload);
    const first = await until(() => alice.received.find((m) => m.content === 'plain portal'), 'the portal');
    expect((await api(t2.url, 'PATCH', `/api/rooms/${first.room_id}`, { token, body: { encrypted: true } })).status).toBe(200);
    await until(() => plain.state.encryptedRooms.has(first.room_id), 'the bridge to see the room encrypted');
    expect((await api(t2.url, 'GET', '/api/e2ee/keys', { token })).body.error.code).toBe('E2EE_DEVICE_REQUIRED');

    await alice.e2ee.send(first.room_id, 'not for whatsapp');
    await sim2.deliver(sim2.text(MARIA, 'Maria', 'not for the hub').payload);
    await sim2.deliver(sim2.text(MARIA, 'Maria', 'nor this').payload);
    await plain.queue.idle();
    expect(sim2.sent.filter((m) => m.payload.text?.body?.includes('not for whatsapp'))).toEqual([]);
    const page = await api(t2.url, 'GET', `/api/rooms/${first.room_id}/messages?limit=10`, { token: await alice.client.accessToken() });
    expect(page.body.messages.map((m: { content: string; encrypted: boolean }) => m.encrypted || m.content)).toEqual(['plain portal', true]);
  });
});
