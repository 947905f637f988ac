/**
 * WhatsApp bridge end to end: hub <-> bridge (kit + WhatsApp connector, in this process) <-> the
 * Cloud API simulator. Each test drives one side and awaits the other.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bridge } from '../../bridges/kit/bridge.js';
import { createBridge } from '../../bridges/run.js';
import { freePort } from '../e2e/spawn.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { roomHistory, say } from '../helpers/portal.js';
import { bridgeConfig } from './bridge-config.js';
import { WhatsAppSimulator } from './whatsapp-sim.js';

const MARIA = '15550001111';
const VERIFY = 'verify-me-please';
let sim: WhatsAppSimulator;
let t: TestHub;
let bridge: Bridge;
let alice: Session;
let ws: WsClient;
let dataDir: string;
/** The portal room of Maria's chat (known after her first message). */
let roomId: string;
/** Maria's first message, hub side and WhatsApp side. */
let firstIn: { hubId: string; wamid: string };

beforeAll(async () => {
  sim = new WhatsAppSimulator();
  await sim.start();
  const port = await freePort();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-wa-'));
  t = await startTestHub({
    bridges: [bridgeConfig({
      id: 'whatsapp',
      network: 'whatsapp',
      url: `http://127.0.0.1:${port}`,
      as_token: crypto.randomBytes(24).toString('hex'),
      hs_token: crypto.randomBytes(24).toString('hex'),
      data_dir: dataDir,
      retry_max_ms: 200,
      max_attempts: 3,
      whatsapp: { api_base_url: sim.apiBaseUrl, phone_number_id: sim.phoneNumberId, access_token: sim.accessToken, app_secret: sim.appSecret, verify_token: VERIFY, send_rate_per_s: 50 },
    })],
  });
  alice = await register(t.url, 'Alice');
  t.config.bridges[0].whatsapp!.portal_members = [alice.user.id];
  bridge = createBridge(t.config, 'whatsapp', pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }), t.url);
  sim.webhookUrl = `${await bridge.start()}/whatsapp/webhook`;
  ws = await WsClient.connect(t.wsUrl, alice.token);
});
afterAll(async () => {
  ws?.close();
  await bridge?.stop();
  await t?.close();
  await sim?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const history = () => roomHistory(t, alice, roomId);
const aliceSays = (content: string, extra: Record<string, unknown> = {}) => say(t, alice, roomId, content, extra);

describe('webhook', () => {
  it('answers the verification challenge with the right token only', async () => {
    const base = sim.webhookUrl;
    const ok = await fetch(`${base}?hub.mode=subscribe&hub.verify_token=${VERIFY}&hub.challenge=1158201444`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('1158201444');
    expect((await fetch(`${base}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1`)).status).toBe(403);
  });

  it('accepts hub transactions only with the hs_token, and each txn_id once', async () => {
    const put = (token: string | null, txn: string) =>
      fetch(`${t.config.bridges[0].url}/transactions/${txn}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...(token !== null ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ events: [], ephemeral: [] }),
      });
    expect((await put(null, 'probe-1')).status).toBe(401);
    expect((await put('wrong', 'probe-1')).status).toBe(403);
    expect((await put(t.config.bridges[0].hs_token, 'probe-1')).status).toBe(200);
    expect((await put(t.config.bridges[0].hs_token, 'probe-1')).status).toBe(200);
    expect(bridge.state.transactions.has('probe-1')).toBe(true);
  });

  it('refuses a forged signature and stores nothing', async () => {
    const { payload } = sim.text(MARIA, 'Maria', 'forged');
    const forged = `sha256=${crypto.createHmac('sha256', 'not-the-app-secret').update(JSON.stringify(payload)).digest('hex')}`;
    expect(await sim.deliver(payload, { signature: forged })).toBe(401);
    expect(await sim.deliver(payload, { signature: '' })).toBe(401);
    expect(bridge.queue.size).toBe(0);
    expect(bridge.state.portals.values()).toHaveLength(0);
  });
});

describe('hostile input to the bridge (400 with a stable code, never a 500 or internal text)', () => {
  /** A raw request to the bridge. @returns status and parsed body. */
  async function raw(url: string, init: RequestInit) {
    const res = await fetch(url, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
  const signed = (body: string) => ({ 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${crypto.createHmac('sha256', sim.appSecret).update(body).digest('hex')}` });

  it('refuses a verify token given twice (an array) with 400', async () => {
    const res = await raw(`${sim.webhookUrl}?hub.mode=subscribe&hub.verify_token=${VERIFY}&hub.verify_token=${VERIFY}&hub.challenge=1`, {});
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('BAD_REQUEST');
  });

  it('refuses correctly signed payloads whose messages, contacts or entries are not what the API sends, storing nothing', async () => {
    const { payload } = sim.text(MARIA, 'Maria', 'shape');
    const value = (payload as any).entry[0].changes[0].value;
    for (const broken of [{ ...value, messages: { not: 'an array' } }, { ...value, contacts: 'nope' }, { ...value, messages: [null] }, { ...value, contacts: [{ wa_id: 1, profile: 'x' }] }, { ...value, messages: [{ ...value.messages[0], text: { body: { not: 'a string' } } }] }]) {
      const body = JSON.stringify({ ...(payload as any), entry: [{ ...(payload as any).entry[0], changes: [{ field: 'messages', value: broken }] }] });
      const res = await raw(sim.webhookUrl, { method: 'POST', headers: signed(body), body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('BAD_REQUEST');
    }
    for (const body of ['null', '[]', '"x"', '{"object":"whatsapp_business_account","entry":{}}', `{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`, '{"object":1e400}']) {
      const res = await raw(sim.webhookUrl, { method: 'POST', headers: signed(body), body });
      expect(res.status, body.slice(0, 40)).toBe(400);
    }
    expect(bridge.queue.size).toBe(0);
  });

  it('refuses a transaction that is not one (body null, events not a list, an event without a room) with 400', async () => {
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${t.config.bridges[0].hs_token}` };
    for (const body of ['null', '[]', '{"events":{}}', '{"events":[{"type":"message.new"}]}', '{"ephemeral":[null]}', `{"events":${'['.repeat(5000)}${']'.repeat(5000)}}`]) {
      const res = await raw(`${t.config.bridges[0].url}/transactions/hostile-1`, { method: 'PUT', headers, body });
      expect(res.status, body.slice(0, 40)).toBe(400);
      expect(res.body.error.code).toBe('BAD_REQUEST');
    }
    expect(bridge.state.transactions.has('hostile-1')).toBe(false);
  });
});

describe('WhatsApp -> hub', () => {
  it('puts a WhatsApp text into a portal room, from the ghost, with the original time', async () => {
    const timestamp = Math.floor(Date.now() / 1000) - 60;
    const { payload, wamid } = sim.text(MARIA, 'Maria', 'Hola, Alice!', { timestamp });
    expect(await sim.deliver(payload)).toBe(200);
    const ev = await ws.next('message.new', (e) => e.message.content === 'Hola, Alice!');
    expect(ev.message.user_name).toBe('Maria');
    expect(ev.message.created_at).toBe(new Date(timestamp * 1000).toISOString());
    roomId = ev.room_id;
    firstIn = { hubId: ev.message.id, wamid };
    const room = await api(t.url, 'GET', `/api/rooms/${roomId}`, { token: alice.token });
    expect(room.body.name).toBe('Maria');
    expect(room.body.members.map((m: any) => m.name).sort()).toEqual(['Alice', 'Maria', 'whatsapp bridge']);
  });

  it('turns the same webhook delivered three times into one message', async () => {
    const { payload } = sim.text(MARIA, 'Maria', 'only once');
    expect(await Promise.all([sim.deliver(payload), sim.deliver(payload)])).toEqual([200, 200]);
    expect(await sim.deliver(payload)).toBe(200);
    await ws.next('message.new', (e) => e.message.content === 'only once');
    await bridge.queue.idle();
    expect((await history()).filter((m) => m.content === 'only once')).toHaveLength(1);
  });

  it('adds portal members configured later when the chat next moves', async () => {
    const bob = await register(t.url, 'Bob');
    t.config.bridges[0].whatsapp!.portal_members.push(bob.user.id);
    await sim.deliver(sim.text(MARIA, 'Maria', 'is Bob here?').payload);
    await ws.next('message.new', (e) => e.message.content === 'is Bob here?');
    const seen = await api(t.url, 'GET', `/api/rooms/${roomId}/messages?limit=1`, { token: bob.token });
    expect(seen.status).toBe(200);
    expect(seen.body.messages[0].content).toBe('is Bob here?');
  });

  it('renders location and contacts readably and says so for unsupported messages', async () => {
    await sim.deliver(sim.inbound(MARIA, 'Maria', { type: 'location', location: { latitude: 52.52, longitude: 13.405, name: 'Cafe', address: 'Unter den Linden 1' } }).payload);
    const loc = await ws.next('message.new', (e) => e.message.content.startsWith('📍'));
    expect(loc.message.content).toContain('Cafe, Unter den Linden 1');
    expect(loc.message.content).toContain('52.52');
    await sim.deliver(sim.inbound(MARIA, 'Maria', { type: 'contacts', contacts: [{ name: { formatted_name: 'Juan Perez' }, phones: [{ phone: '+1 555 0100', type: 'CELL' }] }] }).payload);
    const card = await ws.next('message.new', (e) => e.message.content.startsWith('👤'));
    expect(card.message.content).toBe('👤 Contact: Juan Perez — +1 555 0100');
    await sim.deliver(sim.inbound(MARIA, 'Maria', { type: 'unsupported', errors: [{ code: 131051, title: 'Message type unknown' }] }).payload);
    const notice = await ws.next('message.new', (e) => e.message.content.includes('cannot show'));
    expect(notice.message.user_name).toBe('whatsapp bridge');
    expect(notice.message.content).toContain('131051');
  });

  it('re-uploads WhatsApp media to the hub', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201e2272f8a0000000049454e44ae426082', 'hex');
    const mediaId = sim.host({ data: png, mimeType: 'image/png', fileName: 'x.png' });
    await sim.deliver(sim.inbound(MARIA, 'Maria', { type: 'image', image: { id: mediaId, mime_type: 'image/png', sha256: 'x', caption: 'a dot' } }).payload);
    const ev = await ws.next('message.new', (e) => e.message.content === 'a dot');
    expect(ev.message.attachments).toHaveLength(1);
    expect(ev.message.attachments[0].mime_type).toBe('image/png');
    const file = await fetch(`${t.url}/api/attachments/${ev.message.attachments[0].id}`, { headers: { authorization: `Bearer ${alice.token}` } });
    expect(Buffer.from(await file.arrayBuffer()).equals(png)).toBe(true);
  });
});

describe('hub -> WhatsApp', () => {
  it('sends a hub reply to WhatsApp, prefixed with the sender (relay) and quoting the original', async () => {
    const id = await aliceSays('Hi Maria!', { reply_to: firstIn.hubId });
    const out = await sim.until(() => sim.sent.find((s) => s.payload.text?.body === 'Alice: Hi Maria!'));
    expect(out.to).toBe(MARIA);
    expect(out.payload.context).toEqual({ message_id: firstIn.wamid });
    await bridge.queue.idle();
    expect(bridge.state.hubMessages.get(id)).toMatchObject({ remoteId: out.wamid, dir: 'out' });
    // The ghost's own messages never go back out (no echo).
    expect(sim.sent.some((s) => s.payload.text?.body?.includes('Hola, Alice!'))).toBe(false);
  });

  it('carries a WhatsApp reply to a hub message back as a hub reply', async () => {
    const id = await aliceSays('Question?');
    const out = await sim.until(() => sim.sent.find((s) => s.payload.text?.body === 'Alice: Question?'));
    await sim.deliver(sim.text(MARIA, 'Maria', 'Answer!', { context: out.wamid }).payload);
    const ev = await ws.next('message.new', (e) => e.message.content === 'Answer!');
    expect(ev.message.reply_to).toBe(id);
  });

  it('uploads hub attachments and sends them as WhatsApp media with the caption', async () => {
    const data = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n');
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(data)], { type: 'application/pdf' }), 'report.pdf');
    const up = await fetch(`${t.url}/api/attachments`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}` }, body: form });
    const attachment = await up.json();
    expect(up.status).toBe(201);
    await aliceSays('the report', { attachments: [attachment.id] });
    const out = await sim.until(() => sim.sent.find((s) => s.type === 'document'));
    expect(out.payload.document.caption).toBe('Alice: the report');
    expect(out.payload.document.filename).toBe('report.pdf');
    expect(sim.uploaded(out.payload.document.id)!.data.equals(data)).toBe(true);
  });
});

describe('reactions, receipts and typing', () => {
  it('carries reactions both ways; a new WhatsApp emoji replaces the old, an empty one removes it', async () => {
    const id = await aliceSays('react to this');
    const out = await sim.until(() => sim.sent.find((s) => s.payload.text?.body === 'Alice: react to this'));
    const react = (emoji: string) => sim.deliver(sim.inbound(MARIA, 'Maria', { type: 'reaction', reaction: { message_id: out.wamid, emoji } }).payload);
    await react('👍');
    expect((await ws.next('reaction.added', (e) => e.message_id === id)).key).toBe('👍');
    await react('❤️');
    expect((await ws.next('reaction.removed', (e) => e.message_id === id)).key).toBe('👍');
    expect((await ws.next('reaction.added', (e) => e.message_id === id)).key).toBe('❤️');
    await react('');
    expect((await ws.next('reaction.removed', (e) => e.message_id === id)).key).toBe('❤️');

    await api(t.url, 'PUT', `/api/messages/${firstIn.hubId}/reactions/${encodeURIComponent('🎉')}`, { token: alice.token });
    const added = await sim.until(() => sim.sent.find((s) => s.type === 'reaction' && s.payload.reaction.emoji === '🎉'));
    expect(added.payload.reaction.message_id).toBe(firstIn.wamid);
    await api(t.url, 'DELETE', `/api/messages/${firstIn.hubId}/reactions/${encodeURIComponent('🎉')}`, { token: alice.token });
    await sim.until(() => sim.sent.find((s) => s.type === 'reaction' && s.payload.reaction.emoji === '' && s.payload.reaction.message_id === firstIn.wamid));
  });

  it('marks WhatsApp messages read when a hub user reads them', async () => {
    const { payload, wamid } = sim.text(MARIA, 'Maria', 'did you read this?');
    await sim.deliver(payload);
    const ev = await ws.next('message.new', (e) => e.message.content === 'did you read this?');
    await api(t.url, 'POST', `/api/rooms/${roomId}/read`, { token: alice.token, body: { message_id: ev.message.id } });
    const read = await sim.until(() => sim.reads.find((r) => r.message_id === wamid && !r.typing));
    expect(read).toBeTruthy();
  });

  it('turns WhatsApp delivered/read statuses into hub receipts', async () => {
    const id = await aliceSays('status please');
    const out = await sim.until(() => sim.sent.find((s) => s.payload.text?.body === 'Alice: status please'));
    await sim.deliver(sim.status(out.wamid, MARIA, 'sent'));
    await sim.deliver(sim.status(out.wamid, MARIA, 'delivered'));
    expect((await ws.next('message.delivered', (e) => e.message_id === id)).room_id).toBe(roomId);
    await sim.deliver(sim.status(out.wamid, MARIA, 'read'));
    const read = await ws.next('message.read', (e) => e.message_id === id);
    expect(read.user_id).not.toBe(alice.user.id);
  });

  it('shows the WhatsApp typing indicator while a hub user types', async () => {
    const before = sim.reads.filter((r) => r.typing).length;
    ws.send({ type: 'typing.start', room_id: roomId });
    await sim.until(() => sim.reads.filter((r) => r.typing).length > before);
    ws.send({ type: 'typing.stop', room_id: roomId });
  });

  it('drops typing that was held up (older than 10 s) and passes fresh typing on', async () => {
    const zoe = sim.text('15550003333', 'Zoe', 'hello from Zoe');
    await sim.deliver(zoe.payload);
    const zoeRoom = (await ws.next('message.new', (e) => e.message.content === 'hello from Zoe')).room_id;
    const mariaLast = bridge.state.lastInbound.get(MARIA)!;
    const typing = (room: string, ts: number, txn: string) =>
      fetch(`${t.config.bridges[0].url}/transactions/${txn}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.config.bridges[0].hs_token}` },
        body: JSON.stringify({ events: [], ephemeral: [{ type: 'typing', room_id: room, user_id: alice.user.id, user_name: 'Alice', typing: true, ts }] }),
      });
    const before = sim.reads.length;
    // The stale one goes first: had it been sent on, it would reach the simulator before the fresh one.
    expect((await typing(zoeRoom, Date.now() - 60_000, 'stale-typing')).status).toBe(200);
    expect((await typing(roomId, Date.now(), 'fresh-typing')).status).toBe(200);
    await sim.until(() => sim.reads.slice(before).find((r) => r.typing && r.message_id === mariaLast));
    expect(sim.reads.some((r) => r.typing && r.message_id === zoe.wamid)).toBe(false);
  });
});

describe('errors', () => {
  it('retries 130429 and 5xx with backoff and delivers once', async () => {
    // max_attempts is 3: two refusals, then the third try goes through.
    sim.failNext(1, 400, 130429);
    sim.failNext(1, 500, 131000);
    await aliceSays('eventually');
    await sim.until(() => sim.sent.find((s) => s.payload.text?.body === 'Alice: eventually'));
    expect(sim.refused.slice(-2).map((r) => r.code)).toEqual([130429, 131000]);
    await bridge.queue.idle();
    expect(sim.sent.filter((s) => s.payload.text?.body === 'Alice: eventually')).toHaveLength(1);
  });

  it('shows the 24-hour window error (131047) in the room instead of retrying', async () => {
    sim.windowClosed.add(MARIA);
    const attempts = sim.attempts;
    const dead = bridge.state.store.entries('dead:').length;
    const id = await aliceSays('too late');
    const notice = await ws.next('message.new', (e) => e.message.content.includes('131047'));
    sim.windowClosed.delete(MARIA);
    expect(notice.message).toMatchObject({ user_name: 'whatsapp bridge', reply_to: id });
    expect(sim.attempts - attempts).toBe(1);
    expect(bridge.state.store.entries('dead:')).toHaveLength(dead + 1);
  });

  it('gives up on a message after max_attempts transient failures and says so', async () => {
    sim.failNext(3, 503, 131016);
    const id = await aliceSays('never arrives');
    const notice = await ws.next('message.new', (e) => e.message.reply_to === id && e.message.content.startsWith('⚠️'));
    expect(notice.message.content).toContain('131016');
  });

  it('turns a failed status webhook into a notice naming the error code', async () => {
    const id = await aliceSays('will fail later');
    const out = await sim.until(() => sim.sent.find((s) => s.payload.text?.body === 'Alice: will fail later'));
    await sim.deliver(sim.status(out.wamid, MARIA, 'failed', { code: 131026, title: 'Message undeliverable' }));
    const notice = await ws.next('message.new', (e) => e.message.content.includes('131026'));
    expect(notice.message.reply_to).toBe(id);
  });

  it('spaces sends to respect the per-number rate', async () => {
    const start = sim.sent.length;
    await Promise.all(['r1', 'r2', 'r3', 'r4', 'r5'].map((c) => aliceSays(c)));
    await sim.until(() => sim.sent.length >= start + 5);
    const times = sim.sent.slice(start).map((s) => s.at);
    // 50 per second: 20 ms apart, so five sends take at least 80 ms.
    expect(times[4] - times[0]).toBeGreaterThanOrEqual(70);
  });
});

describe('figures', () => {
  it('measures one-message latency both ways (printed, not asserted beyond sanity)', async () => {
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const inbound: number[] = [];
    const outbound: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = performance.now();
      await sim.deliver(sim.text(MARIA, 'Maria', `latency in ${i}`).payload);
      await ws.next('message.new', (e) => e.message.content === `latency in ${i}`);
      inbound.push(performance.now() - started);
      const sentAt = performance.now();
      await aliceSays(`latency out ${i}`);
      await sim.until(() => sim.sent.find((s) => s.payload.text?.body === `Alice: latency out ${i}`));
      outbound.push(performance.now() - sentAt);
    }
    console.log(`[figures] WhatsApp webhook -> hub message: median ${median(inbound).toFixed(1)} ms; hub send -> Cloud API: median ${median(outbound).toFixed(1)} ms (10 each, loopback)`);
    expect(median(inbound)).toBeLessThan(2000);
    expect(median(outbound)).toBeLessThan(2000);
  });
});
