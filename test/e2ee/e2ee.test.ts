/**
 * Signal-protocol E2EE against real hubs (docs/E2EE.md): the SDK's E2EE client on libsignal, the
 * hub's key distribution and envelope checks, and what the hub keeps (never the plaintext).
 * PostgreSQL when DATABASE_URL is set, PGlite otherwise; the two-node claim test needs PostgreSQL.
 */
import crypto from 'node:crypto';
import { IdentityKeyPair, KEMKeyPair, PrivateKey } from '@signalapp/libsignal-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { columnsHolding } from '../helpers/columns.js';
import { api, register, startTestHub, WsClient, type TestHub } from '../helpers/hub.js';
import { SwitchboardClient, type ClientOptions, type ServerEvent, type WebSocketConstructor } from '../../sdk/src/index.js';
import { E2eeClient, MemoryStore } from '../../sdk/src/e2ee/index.js';

const WS = WebSocket as unknown as WebSocketConstructor;
const options = (baseUrl: string): ClientOptions => ({ baseUrl, WebSocket: WS, reconnectDelayMs: 50, maxReconnectDelayMs: 200 });
const password = 'correct horse battery';
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => {
  await t?.close();
});

interface Device {
  client: SwitchboardClient;
  e2ee: E2eeClient;
  /** Plaintexts of decrypted `message.new`s, in order. */
  received: { room_id: string; content: string; user_id: string }[];
}

async function device(client: SwitchboardClient): Promise<Device> {
  const e2ee = await E2eeClient.start(client, new MemoryStore());
  const received: Device['received'] = [];
  client.on('message.new', (e: Extract<ServerEvent, { type: 'message.new' }>) => received.push({ room_id: e.room_id, content: e.message.content, user_id: e.message.user_id }));
  await client.connect();
  return { client, e2ee, received };
}

async function account(name: string): Promise<{ email: string; first: SwitchboardClient }> {
  const email = `${name.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}@example.test`;
  return { email, first: await SwitchboardClient.register(options(t.url), { email, name, password }) };
}

async function until(check: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}


describe('encrypted direct room and group: Alice (one device) and Bob (two devices)', () => {
  let alice: Device;
  let bob1: Device;
  let bob2: Device;

  beforeAll(async () => {
    const a = await account('Alice');
    const b = await account('Bob');
    alice = await device(a.first);
    bob1 = await device(b.first);
    bob2 = await device(await SwitchboardClient.login(options(t.url), { email: b.email, password }));
  });
  afterAll(() => {
    for (const d of [alice, bob1, bob2]) d?.client.disconnect();
  });

  it('every device decrypts, and the marker is in no column of any table and in no search result', async () => {
    const marker = `marker-${crypto.randomBytes(8).toString('hex')}`;
    const direct = await alice.client.call(alice.client.api.POST('/api/rooms', { body: { type: 'direct', members: [bob1.client.user.id], encrypted: true } }));
    expect(direct.encrypted).toBe(true);

    await alice.e2ee.send(direct.id, `hello bob ${marker}`);
    for (const bob of [bob1, bob2]) await until(() => bob.received.some((m) => m.content === `hello bob ${marker}`), 'Bob to decrypt');
    await bob1.e2ee.send(direct.id, `hi alice ${marker}`);
    await until(() => alice.received.some((m) => m.content === `hi alice ${marker}`), 'Alice to decrypt');
    await until(() => bob2.received.some((m) => m.content === `hi alice ${marker}`), 'Bob\'s other device to decrypt');

    const group = await alice.client.call(alice.client.api.POST('/api/rooms', { body: { type: 'group', name: 'Secret', members: [bob1.client.user.id], encrypted: true } }));
    await alice.e2ee.send(group.id, `group envelopes ${marker}`);
    await alice.e2ee.sendWithSenderKey(group.id, `group sender key ${marker}`);
    await alice.e2ee.sendWithSenderKey(group.id, `group sender key again ${marker}`);
    for (const bob of [bob1, bob2]) {
      await until(() => bob.received.filter((m) => m.room_id === group.id).length >= 3, 'the group messages');
      expect(bob.received.filter((m) => m.room_id === group.id).map((m) => m.content)).toEqual([
        `group envelopes ${marker}`, `group sender key ${marker}`, `group sender key again ${marker}`,
      ]);
    }
    // A sender-key message is one ciphertext, stored once.
    const { rows } = await t.hub.db.query<{ envelopes: Record<string, unknown> }>('SELECT envelopes FROM messages WHERE room_id = $1 ORDER BY stream_position', [group.id]);
    expect(rows.map((r) => Object.keys(r.envelopes).length)).toEqual([2, 1, 1]);

    // History: each device gets its own envelope; the SDK shows what it decrypted before.
    const page = await bob2.client.call(bob2.client.api.GET('/api/rooms/{room_id}/messages', { params: { path: { room_id: direct.id }, query: {} } }));
    expect(page.messages.every((m) => m.encrypted && m.content === '')).toBe(true);
    expect(page.messages[0].envelope).not.toBeNull();
    expect((await bob2.e2ee.decryptMessage(page.messages[0])).content).toBe(`hello bob ${marker}`);

    expect(await columnsHolding(t, marker)).toEqual([]);
    for (const d of [alice, bob1]) {
      const found = await api(t.url, 'GET', `/api/search/messages?q=${marker}`, { token: await tokenOf(d.client) });
      expect(found.status).toBe(200);
      expect(found.body.results).toEqual([]);
    }
  });

  it('refuses a missing, extra or stale device with 409/410 and stores nothing; plaintext with 400', async () => {
    const room = await alice.client.call(alice.client.api.POST('/api/rooms', { body: { type: 'group', name: 'Checks', members: [bob1.client.user.id], encrypted: true } }));
    const token = await tokenOf(alice.client);
    const devices = (await api(t.url, 'GET', `/api/e2ee/users/${bob1.client.user.id}/devices`, { token })).body.devices as { device_id: number; registration_id: number }[];
    expect(devices).toHaveLength(2);
    const env = (d: { device_id: number; registration_id: number }, extra: Partial<{ registration_id: number; device_id: number }> = {}) => ({
      user_id: bob1.client.user.id, device_id: d.device_id, registration_id: d.registration_id, type: 3, body: b64(crypto.randomBytes(40)), ...extra,
    });
    const count = async () => (await t.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM messages WHERE room_id = $1', [room.id])).rows[0].n;
    const send = (body: unknown) => api(t.url, 'POST', `/api/rooms/${room.id}/messages`, { token, body });

    const missing = await send({ envelopes: [env(devices[0])] });
    expect(missing.status).toBe(409);
    expect(missing.body.error).toMatchObject({ code: 'MISMATCHED_DEVICES', missing: [{ user_id: bob1.client.user.id, device_id: devices[1].device_id }], extra: [] });
    const extra = await send({ envelopes: [env(devices[0]), env(devices[1]), env(devices[1], { device_id: 99 })] });
    expect(extra.status).toBe(409);
    expect(extra.body.error).toMatchObject({ code: 'MISMATCHED_DEVICES', missing: [], extra: [{ user_id: bob1.client.user.id, device_id: 99 }] });
    const stale = await send({ envelopes: [env(devices[0]), env(devices[1], { registration_id: (devices[1].registration_id % 16380) + 1 })] });
    expect(stale.status).toBe(410);
    expect(stale.body.error).toMatchObject({ code: 'STALE_DEVICES', stale: [{ user_id: bob1.client.user.id, device_id: devices[1].device_id }] });
    const plain = await send({ content: 'not secret', envelopes: [env(devices[0]), env(devices[1])] });
    expect(plain.status).toBe(400);
    expect(plain.body.error.code).toBe('PLAINTEXT_IN_ENCRYPTED_ROOM');
    expect(await count()).toBe(0);

    // The same over the socket: an error event with the fields and the txn_id.
    const ws = await WsClient.connect(t.wsUrl, token);
    ws.send({ type: 'message.send', room_id: room.id, envelopes: [env(devices[0])], txn_id: 'e2ee-1' });
    expect(await ws.next('error')).toMatchObject({ code: 'MISMATCHED_DEVICES', txn_id: 'e2ee-1', missing: [{ device_id: devices[1].device_id }] });
    ws.close();
    expect(await count()).toBe(0);

    const sent = await send({ envelopes: [env(devices[0]), env(devices[1])] });
    expect(sent.status).toBe(201);
    expect(await count()).toBe(1);
    // A redaction deletes the ciphertext too, in the message and in its stored event.
    expect((await api(t.url, 'DELETE', `/api/messages/${sent.body.id}`, { token })).status).toBe(204);
    expect((await t.hub.db.query('SELECT envelopes FROM messages WHERE id = $1', [sent.body.id])).rows[0].envelopes).toEqual({});
    const stored = await t.hub.db.query<{ payload: any }>(`SELECT payload FROM room_events WHERE type = 'message.new' AND payload->'message'->>'id' = $1`, [sent.body.id]);
    expect(stored.rows[0].payload.message.envelopes).toEqual({});
    // One way: encryption cannot be turned off.
    expect((await api(t.url, 'PATCH', `/api/rooms/${room.id}`, { token, body: { encrypted: false } })).status).toBe(400);
  });

  it('carries edits as envelopes: every device decrypts the new text; content in an edit is refused', async () => {
    const room = await alice.client.call(alice.client.api.POST('/api/rooms', { body: { type: 'group', name: 'Edits', members: [bob1.client.user.id], encrypted: true } }));
    const sent = await alice.e2ee.send(room.id, 'first version');
    const edits: { device: string; content: string }[] = [];
    bob1.e2ee.on('message-edited', (e) => edits.push({ device: 'bob1', content: e.content }));
    bob2.e2ee.on('message-edited', (e) => edits.push({ device: 'bob2', content: e.content }));
    await alice.e2ee.edit(room.id, sent.id, 'second version');
    await until(() => edits.length === 2, 'both of Bob\'s devices to decrypt the edit');
    expect(edits.map((e) => e.content)).toEqual(['second version', 'second version']);
    const plain = await api(t.url, 'PATCH', `/api/messages/${sent.id}`, { token: await tokenOf(alice.client), body: { content: 'in the clear' } });
    expect(plain.status).toBe(400);
    expect(plain.body.error.code).toBe('PLAINTEXT_IN_ENCRYPTED_ROOM');
    const { rows } = await t.hub.db.query<{ content: string; edited_at: Date | null }>('SELECT content, edited_at FROM messages WHERE id = $1', [sent.id]);
    expect(rows[0].content).toBe('');
    expect(rows[0].edited_at).not.toBeNull();
  });

  it('raises identity-changed at Alice when Bob\'s device gets a new identity key', async () => {
    const room = await alice.client.call(alice.client.api.POST('/api/rooms', { body: { type: 'group', name: 'Ids', members: [bob1.client.user.id], encrypted: true } }));
    await alice.e2ee.send(room.id, 'before');
    const changes: { user_id: string; device_id: number }[] = [];
    alice.e2ee.on('identity-changed', (c) => changes.push(c));
    const told: string[] = [];
    const off = alice.client.on('*', (e) => (e as { type: string }).type === 'e2ee.devices_changed' && told.push((e as unknown as { user_id: string }).user_id));
    await bob2.e2ee.resetIdentity();
    await until(() => told.includes(bob2.client.user.id), 'e2ee.devices_changed at Alice');
    off();
    await until(() => changes.length > 0, 'identity-changed');
    expect(changes[0]).toMatchObject({ user_id: bob2.client.user.id, device_id: bob2.e2ee.deviceId });
    await alice.e2ee.send(room.id, 'after the new key');
    await until(() => bob2.received.some((m) => m.content === 'after the new key'), 'Bob\'s new identity to decrypt');
  });
});

describe('an offline device', () => {
  it('gets its to-device messages and the room ciphertext when it comes back', async () => {
    const a = await account('Ann');
    const b = await account('Ben');
    const ann = await device(a.first);
    const ben = await device(b.first);
    const room = await ann.client.call(ann.client.api.POST('/api/rooms', { body: { type: 'direct', members: [ben.client.user.id], encrypted: true } }));
    await ann.e2ee.send(room.id, 'while online');
    await until(() => ben.received.some((m) => m.content === 'while online'), 'the first message');

    ben.client.disconnect();
    const toDevice: string[] = [];
    ben.e2ee.on('to-device', (m) => toDevice.push(m.body));
    await ann.e2ee.sendToDevice(ben.client.user.id, ben.e2ee.deviceId, 'a key for you');
    await ann.e2ee.send(room.id, 'while away');
    await ann.e2ee.sendWithSenderKey(room.id, 'sender key while away');
    const pending = await t.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM e2ee_to_device WHERE device_id = $1', [ben.client.deviceId]);
    expect(pending.rows[0].n).toBe(2); // the app message and the sender-key distribution

    await ben.client.connect();
    await until(() => ben.received.some((m) => m.content === 'sender key while away'), 'the resumed messages');
    expect(ben.received.map((m) => m.content)).toEqual(['while online', 'while away', 'sender key while away']);
    await until(() => toDevice.length === 1, 'the to-device message');
    expect(toDevice).toEqual(['a key for you']);
    // Acknowledged: the mailbox empties.
    const end = Date.now() + 5000;
    while ((await t.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM e2ee_to_device WHERE device_id = $1', [ben.client.deviceId])).rows[0].n > 0) {
      if (Date.now() > end) throw new Error('to-device messages were not acknowledged');
      await new Promise((r) => setTimeout(r, 50));
    }
    ann.client.disconnect();
    ben.client.disconnect();
  });
});

describe('keys', () => {
  /** A session registered as an E2EE device with `n` one-time keys of each kind, uploaded by hand. */
  async function deviceWithKeys(base: string, n: number) {
    const s = await register(base, 'Keys');
    const identity = IdentityKeyPair.generate();
    expect((await api(base, 'POST', '/api/e2ee/devices', { token: s.token, body: { registration_id: 7, identity_key: b64(identity.publicKey.serialize()) } })).status).toBe(201);
    const signedKey = PrivateKey.generate().getPublicKey().serialize();
    const kem = () => {
      const pk = KEMKeyPair.generate().getPublicKey().serialize();
      return { public_key: b64(pk), signature: b64(identity.privateKey.sign(pk)) };
    };
    const res = await api(base, 'PUT', '/api/e2ee/keys', {
      token: s.token,
      body: {
        signed_pre_key: { key_id: 1, public_key: b64(signedKey), signature: b64(identity.privateKey.sign(signedKey)) },
        kyber_last_resort_key: { key_id: 1000, ...kem() },
        pre_keys: Array.from({ length: n }, (_, i) => ({ key_id: i + 1, public_key: b64(PrivateKey.generate().getPublicKey().serialize()) })),
        kyber_pre_keys: Array.from({ length: n }, (_, i) => ({ key_id: i + 1, ...kem() })),
      },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ pre_keys: n, kyber_pre_keys: n });
    return { s, identity, kem };
  }

  it('checks signatures (422) and never stores a used key id again (409)', async () => {
    const { s, identity, kem } = await deviceWithKeys(t.url, 2);
    const other = IdentityKeyPair.generate();
    const pk = KEMKeyPair.generate().getPublicKey().serialize();
    const bad = await api(t.url, 'PUT', '/api/e2ee/keys', { token: s.token, body: { kyber_pre_keys: [{ key_id: 50, public_key: b64(pk), signature: b64(other.privateKey.sign(pk)) }] } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe('INVALID_SIGNATURE');
    const ws = await WsClient.connect(t.wsUrl, s.token);
    expect(ws.events.find((e) => e.type === 'ready').e2ee).toEqual({ device_id: 1, pre_keys: 2, kyber_pre_keys: 2 });
    const claimer = await register(t.url, 'Claimer');
    const claim = await api(t.url, 'POST', '/api/e2ee/keys/claim', { token: claimer.token, body: { user_id: s.user.id } });
    expect(claim.status).toBe(200);
    expect(claim.body.devices[0].pre_key.key_id).toBe(1);
    expect(await ws.next('e2ee.keys_low')).toMatchObject({ pre_keys: 1, kyber_pre_keys: 1 });
    ws.close();
    // Key 1 was handed out: uploading it again is refused, the counts stay.
    const again = await api(t.url, 'PUT', '/api/e2ee/keys', { token: s.token, body: { pre_keys: [{ key_id: 1, public_key: b64(PrivateKey.generate().getPublicKey().serialize()) }] } });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('KEY_ID_REUSED');
    expect((await api(t.url, 'GET', '/api/e2ee/keys', { token: s.token })).body).toEqual({ pre_keys: 1, kyber_pre_keys: 1 });
    expect((await api(t.url, 'PUT', '/api/e2ee/keys', { token: s.token, body: { kyber_pre_keys: [{ key_id: 1001, ...kem() }] } })).body).toEqual({ pre_keys: 1, kyber_pre_keys: 2 });
    void identity;
    // Revoking the session deletes its keys.
    expect((await api(t.url, 'POST', '/api/auth/logout', { token: s.token })).status).toBe(204);
    expect((await api(t.url, 'GET', `/api/e2ee/users/${s.user.id}/devices`, { token: claimer.token })).body.devices).toEqual([]);
    const left = await t.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM e2ee_one_time_keys WHERE device_id = $1', [s.device_id]);
    expect(left.rows[0].n).toBe(0);
  });

  it.skipIf(!process.env.DATABASE_URL)('(needs PostgreSQL: DATABASE_URL; PGlite has one node only) hands 5 one-time keys to 5 of 20 concurrent claims on two nodes; the other 15 get the last-resort key', async () => {
    const second = await startTestHub({}, { shareWith: t });
    try {
      const { s } = await deviceWithKeys(t.url, 5);
      const claimers = await Promise.all([register(t.url, 'C1'), register(t.url, 'C2')]);
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => api(i % 2 ? second.url : t.url, 'POST', '/api/e2ee/keys/claim', { token: claimers[Math.floor(i / 10)].token, body: { user_id: s.user.id } })),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
      const bundles = answers.map((a) => a.body.devices[0]);
      const ec = bundles.filter((b) => b.pre_key).map((b) => b.pre_key.key_id);
      expect(ec.sort()).toEqual([1, 2, 3, 4, 5]);
      const kyber = bundles.map((b) => b.kyber_pre_key.key_id);
      expect(kyber.filter((id) => id !== 1000).sort()).toEqual([1, 2, 3, 4, 5]);
      expect(kyber.filter((id) => id === 1000)).toHaveLength(15);
    } finally {
      await second.close();
    }
  });
});

async function tokenOf(client: SwitchboardClient): Promise<string> {
  return (client as unknown as { auth: { accessToken(): Promise<string> } }).auth.accessToken();
}
