/**
 * Google Chat bridge end to end: hub <-> bridge (in this process, built as `switchboard bridge
 * googlechat` builds it) <-> the Google Chat simulator. Bob and Carol are Google Chat users in the
 * space "Project X"; Alice is a hub user. Each test drives one side and awaits the other.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bridge } from '../../bridges/kit/bridge.js';
import { freePort } from '../e2e/spawn.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { roomHistory, say } from '../helpers/portal.js';
import { googleChatBridge, googleChatBridgeConfig } from './setup.js';
import { GoogleChatSimulator, type SimMessage, type SimUser } from './sim.js';

let sim: GoogleChatSimulator;
let t: TestHub;
let bridge: Bridge;
let alice: Session;
let ws: WsClient;
let dir: string;
let space: string;
let bob: SimUser;
let carol: SimUser;
/** The portal room of "Project X". */
let roomId: string;
/** Bob's first message on both sides. */
let bobFirst: { hub: string; chat: SimMessage };

beforeAll(async () => {
  sim = new GoogleChatSimulator();
  await sim.start();
  space = sim.addSpace('Project X');
  bob = sim.user('Bob');
  carol = sim.user('Carol');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-gchat-'));
  const port = await freePort();
  // Subscriptions live 3 s and are renewed 2 s before they expire: renewals happen within the test.
  t = await startTestHub({ bridges: [googleChatBridgeConfig(sim, dir, port, { subscription_ttl_s: 3, subscription_renew_before_s: 2 })] });
  alice = await register(t.url, 'Alice');
  t.config.bridges[0].googlechat!.portal_members = [alice.user.id];
  bridge = googleChatBridge(t.config, t.url);
  const url = await bridge.start();
  sim.interactionUrl = `${url}/googlechat/events`;
  sim.pushEndpoint = sim.pushAudience = `${url}/googlechat/pubsub`;
  ws = await WsClient.connect(t.wsUrl, alice.token);
});
afterAll(async () => {
  ws?.close();
  await bridge?.stop();
  await t?.close();
  await sim?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const history = () => roomHistory(t, alice, roomId);
const aliceSays = (content: string, extra: Record<string, unknown> = {}) => say(t, alice, roomId, content, extra);

/** The simulator's copy of what the app posted with this text. */
function inChat(text: string): Promise<SimMessage> {
  return sim.until(() => sim.in(space).find((m) => m.text === text));
}

describe('verification', () => {
  it('refuses interaction events without a valid Chat token (401) and stores nothing', async () => {
    const event = { type: 'ADDED_TO_SPACE', space: { name: space, displayName: 'Project X', spaceType: 'SPACE', type: 'ROOM' }, user: bob };
    for (const forge of ['key', 'audience', 'issuer', 'none', 'expired'] as const) expect(await sim.interact(event, { forge })).toBe(401);
    expect(bridge.queue.size).toBe(0);
    expect(bridge.state.connector.entries('space:')).toHaveLength(0);
  });

  it('refuses Pub/Sub pushes without the push service account token (401)', async () => {
    const body = JSON.stringify({ message: { data: Buffer.from('{}').toString('base64'), attributes: {}, messageId: '1', publishTime: new Date().toISOString() }, subscription: sim.pubsubSubscription });
    const send = (token: string) => fetch(sim.pushEndpoint, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body }).then((r) => r.status);
    expect(await send(await sim.oidcToken({ aud: sim.pushAudience, email: sim.pushServiceAccount }, { foreignKey: true }))).toBe(401);
    expect(await send(await sim.oidcToken({ aud: 'https://elsewhere.example.test/push', email: sim.pushServiceAccount }))).toBe(401);
    expect(await send(await sim.oidcToken({ aud: sim.pushAudience, email: 'intruder@example.test' }))).toBe(401);
    expect(await send(await sim.oidcToken({ aud: sim.pushAudience, email: sim.pushServiceAccount }))).toBe(204);
  });
});

describe('the space', () => {
  it('becomes a portal room when the app is added, and gets a Workspace Events subscription', async () => {
    expect(await sim.interact({ type: 'ADDED_TO_SPACE', space: { name: space, displayName: 'Project X', spaceType: 'SPACE', type: 'ROOM' }, user: bob })).toBe(200);
    const notice = await ws.next('message.new', (e) => e.message.content.includes('mirrors'));
    roomId = notice.room_id;
    expect(notice.message.user_name).toBe('googlechat bridge');
    const room = await api(t.url, 'GET', `/api/rooms/${roomId}`, { token: alice.token });
    expect(room.body.name).toBe('Project X');
    expect(room.body.members.map((m: any) => m.name).sort()).toEqual(['Alice', 'Bob', 'googlechat bridge']);
    const sub = await sim.until(() => [...sim.subscriptions.values()].find((s) => s.targetResource === `//chat.googleapis.com/${space}`));
    expect(sub.eventTypes).toContain('google.workspace.chat.reaction.v1.created');
    expect(sub.notificationEndpoint.pubsubTopic).toBe(sim.topic);
    expect(sub.payloadOptions.includeResource).toBe(true);
  });

  it('renews the subscription before it expires', async () => {
    const sub = [...sim.subscriptions.values()][0];
    const firstExpiry = sub.expireTime;
    await sim.until(() => sim.requests.some((r) => r.method === 'PATCH' && r.path === `/v1/${sub.name}` && r.query.updateMask === 'ttl' && r.status === 200), 5000);
    expect(sim.subscriptions.get(sub.name)!.expireTime > firstExpiry).toBe(true);
  });
});

describe('a threaded conversation both ways', () => {
  it('brings a Google Chat message in as the person, with the original time', async () => {
    const m = await sim.post(space, bob, 'Hello from Chat');
    const ev = await ws.next('message.new', (e) => e.message.content === 'Hello from Chat');
    expect(ev.room_id).toBe(roomId);
    expect(ev.message.user_name).toBe('Bob');
    expect(ev.message.created_at).toBe(m.createTime);
    bobFirst = { hub: ev.message.id, chat: m };
    // The same message as an interaction event (Bob mentioned the app) is not a second message.
    expect(await sim.interact(sim.messageEvent(m))).toBe(200);
    await bridge.queue.idle();
    expect((await history()).filter((x) => x.content === 'Hello from Chat')).toHaveLength(1);
  });

  it('turns a Chat thread reply into a hub reply to the thread', async () => {
    await sim.post(space, carol, 'Carol here, in the thread', { thread: bobFirst.chat.thread.name });
    const ev = await ws.next('message.new', (e) => e.message.content === 'Carol here, in the thread');
    expect(ev.message.user_name).toBe('Carol');
    expect(ev.message.reply_to).toBe(bobFirst.hub);
  });

  it('posts a hub reply into the Chat thread, relay-formatted, and does not echo it back', async () => {
    await aliceSays('Hi Bob and Carol!', { reply_to: bobFirst.hub });
    const out = await inChat('*Alice*: Hi Bob and Carol!');
    expect(out.sender.type).toBe('BOT');
    expect(out.thread.name).toBe(bobFirst.chat.thread.name);
    expect(out.threadReply).toBe(true);
    expect(out.clientAssignedMessageId).toMatch(/^client-sb-/);
    // Its created event came back by push; nothing new appears on the hub.
    await sim.until(() => sim.pushes.some((p) => p.status === 204 && Buffer.from(p.body.message.data, 'base64').toString().includes(out.name)));
    await bridge.queue.idle();
    expect((await history()).filter((x) => x.content.includes('Hi Bob and Carol!'))).toHaveLength(1);
  });

  it('carries a Chat reply to a hub message back as a hub reply', async () => {
    const id = await aliceSays('Question for you');
    const out = await inChat('*Alice*: Question for you');
    expect(out.threadReply).toBe(false);
    await sim.post(space, bob, 'Answer!', { thread: out.thread.name });
    const ev = await ws.next('message.new', (e) => e.message.content === 'Answer!');
    expect(ev.message.reply_to).toBe(id);
  });

  it('carries reactions both ways', async () => {
    const id = await aliceSays('react to this');
    const out = await inChat('*Alice*: react to this');
    const reaction = await sim.reactAs(bob, out.name, '👍');
    const added = await ws.next('reaction.added', (e) => e.message_id === id);
    expect(added.key).toBe('👍');
    await sim.unreact(reaction);
    expect((await ws.next('reaction.removed', (e) => e.message_id === id)).key).toBe('👍');

    await api(t.url, 'PUT', `/api/messages/${bobFirst.hub}/reactions/${encodeURIComponent('🎉')}`, { token: alice.token });
    const mine = await sim.until(() => [...sim.reactions.values()].find((r) => r.message === bobFirst.chat.name && r.emoji.unicode === '🎉'));
    expect(mine.user.name).toBe(sim.delegatedUser.name);
    await bridge.queue.idle();
    // The delegated user's reaction came back by push and is not mirrored onto the hub message.
    const bobsMessage = (await api(t.url, 'GET', `/api/messages/${bobFirst.hub}`, { token: alice.token })).body;
    expect(bobsMessage.reactions).toEqual([expect.objectContaining({ key: '🎉', count: 1 })]);
    await api(t.url, 'DELETE', `/api/messages/${bobFirst.hub}/reactions/${encodeURIComponent('🎉')}`, { token: alice.token });
    await sim.until(() => !sim.reactions.has(mine.name));
  });

  it('carries edits both ways', async () => {
    const m = await sim.post(space, bob, 'draft from Bob');
    const ev = await ws.next('message.new', (e) => e.message.content === 'draft from Bob');
    await sim.edit(m, 'final from Bob');
    const edited = await ws.next('message.edited', (e) => e.message_id === ev.message.id);
    expect(edited.content).toBe('final from Bob');

    const id = await aliceSays('draft from Alice');
    const out = await inChat('*Alice*: draft from Alice');
    const res = await api(t.url, 'PATCH', `/api/messages/${id}`, { token: alice.token, body: { content: 'final from Alice' } });
    expect(res.status).toBe(200);
    await sim.until(() => out.text === '*Alice*: final from Alice');
  });

  it('carries deletions both ways', async () => {
    const m = await sim.post(space, bob, 'oops from Bob');
    const ev = await ws.next('message.new', (e) => e.message.content === 'oops from Bob');
    await sim.remove(m);
    await ws.next('message.deleted', (e) => e.message_id === ev.message.id);

    const id = await aliceSays('oops from Alice');
    const out = await inChat('*Alice*: oops from Alice');
    expect((await api(t.url, 'DELETE', `/api/messages/${id}`, { token: alice.token })).status).toBe(204);
    await sim.until(() => out.deleteTime);
  });

  it('carries files both ways', async () => {
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n');
    await sim.post(space, bob, 'the spec', { file: { data: pdf, mimeType: 'application/pdf', filename: 'spec.pdf' } });
    const ev = await ws.next('message.new', (e) => e.message.content === 'the spec');
    expect(ev.message.attachments).toHaveLength(1);
    expect(ev.message.attachments[0]).toMatchObject({ filename: 'spec.pdf', mime_type: 'application/pdf' });
    const file = await fetch(`${t.url}/api/attachments/${ev.message.attachments[0].id}`, { headers: { authorization: `Bearer ${alice.token}` } });
    expect(Buffer.from(await file.arrayBuffer()).equals(pdf)).toBe(true);

    const data = crypto.randomBytes(2048);
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(data)], { type: 'application/octet-stream' }), 'report.bin');
    const up = await fetch(`${t.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}` }, body: form });
    expect(up.status).toBe(201);
    await aliceSays('the report', { attachments: [(await up.json()).id] });
    const out = await inChat('*Alice*: the report');
    expect(out.sender.name).toBe(sim.delegatedUser.name);
    expect(out.attachment).toHaveLength(1);
    expect(out.attachment![0].contentName).toBe('report.bin');
    expect(sim.uploads.get(out.attachment![0].attachmentDataRef.resourceName)!.data.equals(data)).toBe(true);
  });
});

describe('delivery', () => {
  it('yields nothing twice from redelivered pushes and interaction events', async () => {
    await bridge.queue.idle();
    const before = await history();
    const delivered = sim.pushes.filter((p) => p.status === 204 && p.body.message.attributes['ce-type']?.startsWith('google.workspace.chat.'));
    expect(delivered.length).toBeGreaterThan(10);
    for (const p of delivered) expect(await sim.redeliver(p)).toBe(204);
    for (const m of sim.in(space).filter((x) => x.sender.type === 'HUMAN')) await sim.interact(sim.messageEvent(m));
    await bridge.queue.idle();
    const after = await history();
    expect(after.map((m) => [m.id, m.content, m.reactions.length])).toEqual(before.map((m) => [m.id, m.content, m.reactions.length]));
  });

  it('splits a hub message over 32,000 bytes into parts in the same thread', async () => {
    const long = `${'ü'.repeat(12_000)}\n${'word '.repeat(4_000)}`;
    expect(Buffer.byteLength(long)).toBeGreaterThan(32_000);
    const id = await aliceSays(long);
    const parts = await sim.until(() => {
      const found = sim.in(space).filter((m) => m.clientAssignedMessageId?.startsWith(`client-sb-${id}-`));
      return found.length === 2 && found;
    });
    for (const p of parts) expect(Buffer.byteLength(p.text)).toBeLessThanOrEqual(32_000);
    expect(parts[0].text.startsWith('*Alice*: ')).toBe(true);
    expect(parts[0].text.endsWith(' (1/2)')).toBe(true);
    expect(parts[1].text.endsWith(' (2/2)')).toBe(true);
    expect(parts[1].thread.name).toBe(parts[0].thread.name);
    const joined = parts.map((p) => p.text.replace(/^\*Alice\*: /, '').replace(/ \(\d\/2\)$/, '')).join('');
    expect(joined).toBe(long);
  });

  it('retries 429/5xx with backoff and delivers once', async () => {
    const create = (method: string, p: string) => method === 'POST' && p === `/v1/${space}/messages`;
    sim.failNext(1, 429, create);
    sim.failNext(1, 503, create);
    await aliceSays('eventually');
    await inChat('*Alice*: eventually');
    await bridge.queue.idle();
    const tries = () => sim.requests.filter((r) => r.method === 'POST' && r.path === `/v1/${space}/messages`).slice(-3).map((r) => r.status);
    await sim.until(() => tries().at(-1) === 200);
    expect(tries()).toEqual([429, 503, 200]);
    expect(sim.in(space).filter((m) => m.text === '*Alice*: eventually')).toHaveLength(1);
  });

  it('shows a permanent error in the room as a notice', async () => {
    sim.failNext(1, 403, (method, p) => method === 'POST' && p === `/v1/${space}/messages`);
    const id = await aliceSays('forbidden');
    const notice = await ws.next('message.new', (e) => e.message.reply_to === id && e.message.content.startsWith('⚠️'));
    expect(notice.message.user_name).toBe('googlechat bridge');
    expect(notice.message.content).toContain('PERMISSION_DENIED');
  });
});

describe('downtime', () => {
  it('catches up on what was said while the bridge was stopped, once', async () => {
    await bridge.queue.idle();
    await bridge.stop();
    const missed = [await sim.post(space, bob, 'while you were out 1'), await sim.post(space, carol, 'while you were out 2')];
    missed.push(await sim.post(space, bob, 'while you were out 3', { thread: missed[0].thread.name }));
    const failedPushes = sim.pushes.filter((p) => p.status === 0);
    expect(failedPushes.length).toBe(3);
    // Long enough for the subscription to lapse: Google deletes it.
    sim.expireSubscriptions();
    await aliceSays('sent while the bridge was down');

    bridge = googleChatBridge(t.config, t.url);
    await bridge.start();
    for (const text of ['while you were out 1', 'while you were out 2', 'while you were out 3']) {
      const ev = await ws.next('message.new', (e) => e.message.content === text);
      expect(ev.message.created_at).toBe(missed.find((m) => m.text === text)!.createTime);
    }
    await inChat('*Alice*: sent while the bridge was down');
    await sim.until(() => sim.subscriptions.size === 1);
    // Pub/Sub delivers what failed once the endpoint is back: nothing twice.
    for (const p of failedPushes) expect(await sim.redeliver(p)).toBe(204);
    await bridge.queue.idle();
    const h = await history();
    for (const text of ['while you were out 1', 'while you were out 2', 'while you were out 3']) expect(h.filter((m) => m.content === text)).toHaveLength(1);
    const first = h.find((m) => m.content === 'while you were out 1');
    expect(h.find((m) => m.content === 'while you were out 3').reply_to).toBe(first.id);
  });
});

describe('direct messages', () => {
  it('makes a portal room per DM, named after the person', async () => {
    const dm = sim.addSpace('', 'DIRECT_MESSAGE');
    const dave = sim.user('Dave');
    const m = sim.messages.length;
    expect(await sim.interact({ type: 'MESSAGE', space: { name: dm, spaceType: 'DIRECT_MESSAGE', type: 'DM', singleUserBotDm: true }, user: dave, message: { name: `${dm}/messages/dm1.dm1`, sender: dave, createTime: new Date().toISOString(), text: 'hi app', thread: { name: `${dm}/threads/dm1` } } })).toBe(200);
    const ev = await ws.next('message.new', (e) => e.message.content === 'hi app');
    expect(ev.room_id).not.toBe(roomId);
    expect(ev.message.user_name).toBe('Dave');
    const room = await api(t.url, 'GET', `/api/rooms/${ev.room_id}`, { token: alice.token });
    expect(room.body.name).toBe('Dave');
    expect(sim.messages.length).toBe(m);
  });
});
