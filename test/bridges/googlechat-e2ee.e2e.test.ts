/**
 * End-to-bridge encryption with Google Chat (docs/BRIDGES.md): an encrypted portal room carries
 * messages and edits both ways through the bridge's E2EE device. Alice is a hub user (the SDK's
 * E2EE client on libsignal); Bob posts in the Google Chat simulator's space.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bridge } from '../../bridges/kit/bridge.js';
import { SwitchboardClient } from '../../sdk/src/index.js';
import { freePort } from '../e2e/spawn.js';
import { googleChatBridge, googleChatBridgeConfig } from '../googlechat/setup.js';
import { GoogleChatSimulator, type SimUser } from '../googlechat/sim.js';
import { api, startTestHub, type TestHub } from '../helpers/hub.js';
import { columnsHolding } from '../helpers/columns.js';
import { device, options, password, until, type Device } from './e2ee-helpers.js';

let sim: GoogleChatSimulator;
let t: TestHub;
let bridge: Bridge;
let alice: Device;
let dir: string;
let space: string;
let bob: SimUser;
let roomId: string;

beforeAll(async () => {
  sim = new GoogleChatSimulator();
  await sim.start();
  space = sim.addSpace('Secret X');
  bob = sim.user('Bob');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-gchat-e2ee-'));
  const entry = { ...googleChatBridgeConfig(sim, dir, await freePort()), e2ee: true };
  t = await startTestHub({ bridges: [entry] });
  alice = await device(await SwitchboardClient.register(options(t.url), { email: `alice-${crypto.randomBytes(4).toString('hex')}@example.test`, name: 'Alice', password }));
  t.config.bridges[0].googlechat!.portal_members = [alice.client.user.id];
  bridge = googleChatBridge(t.config, t.url);
  const url = await bridge.start();
  sim.interactionUrl = `${url}/googlechat/events`;
  sim.pushEndpoint = sim.pushAudience = `${url}/googlechat/pubsub`;
});
afterAll(async () => {
  alice?.client.disconnect();
  await bridge?.stop();
  await t?.close();
  await sim?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('an encrypted Google Chat portal room through an E2EE bridge', () => {
  it('carries messages and edits both ways, the hub holding only ciphertext', async () => {
    expect(await sim.interact({ type: 'ADDED_TO_SPACE', space: { name: space, displayName: 'Secret X', spaceType: 'SPACE', type: 'ROOM' }, user: bob })).toBe(200);
    const notice = await until(() => alice.received.find((m) => m.content.includes('mirrors')), 'the portal');
    roomId = notice.room_id;
    expect((await api(t.url, 'PATCH', `/api/rooms/${roomId}`, { token: t.config.bridges[0].as_token, body: { encrypted: true } })).status).toBe(200);
    await until(() => bridge.state.encryptedRooms.has(roomId), 'the bridge to see the room encrypted');
    const marker = `gc-${crypto.randomBytes(8).toString('hex')}`;

    // Google Chat -> hub: a message and its edit, encrypted by the bridge for Alice's device.
    const m = await sim.post(space, bob, `draft from Bob ${marker}`);
    const got = await until(() => alice.received.find((x) => x.content === `draft from Bob ${marker}`), 'Bob\'s message');
    expect(got.encrypted).toBe(true);
    await sim.edit(m, `final from Bob ${marker}`);
    await until(() => alice.edits.find((e) => e.message_id === got.id && e.content === `final from Bob ${marker}`), 'Bob\'s edit');

    // Hub -> Google Chat: Alice's encrypted message and edit arrive as plaintext.
    const sent = await alice.e2ee.send(roomId, `draft from Alice ${marker}`);
    const out = await sim.until(() => sim.in(space).find((x) => x.text === `*Alice*: draft from Alice ${marker}`));
    await alice.e2ee.edit(roomId, sent.id, `final from Alice ${marker}`);
    await sim.until(() => out.text === `*Alice*: final from Alice ${marker}`);

    await bridge.queue.idle();
    expect(await columnsHolding(t, marker)).toEqual([]);
  });
});
