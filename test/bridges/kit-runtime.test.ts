/**
 * The kit's runtime with a scripted connector against a real hub: what every connector gets without
 * writing it (several-part sends, threads, edits and deletions with all parts, reaction semantics
 * both ways, echoes dropped even while the send is in flight, connector state written atomically
 * with the events, unknown event types ignored, failures surfaced in the room).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bridge } from '../../bridges/kit/bridge.js';
import type { HubMessageRecord } from '../../bridges/kit/state.js';
import { RemoteError, type BridgeContext, type BridgedMessage, type Connector, type EditHandlingConnector, type MediaDownloadingConnector, type MediaFile, type OutboundMessage, type ReactionHandlingConnector, type RedactionHandlingConnector, type RemoteEvent, type RemoteUser, type SentMessage } from '../../bridges/kit/types.js';
import { freePort } from '../e2e/spawn.js';
import { WsClient, api, register, startTestHub, type Session, type TestHub } from '../helpers/hub.js';
import { bridgeConfig } from './bridge-config.js';

/** A network that exists only in this test: it records what the kit asks of it. */
class ScriptedConnector implements Connector, EditHandlingConnector, RedactionHandlingConnector, ReactionHandlingConnector, MediaDownloadingConnector {
  readonly network = 'fake';
  readonly displayName = 'Fakechat';
  ctx!: BridgeContext;
  members: string[] = [];
  readonly sent: OutboundMessage[] = [];
  readonly edits: { msg: BridgedMessage; text: string }[] = [];
  readonly redactions: BridgedMessage[] = [];
  readonly reactions: { op: 'add' | 'remove'; targetId: string; emoji: string; reactionId?: string }[] = [];
  readonly files = new Map<string, MediaFile>();
  /** One remote part per `|`-separated piece of the text, in the thread replied in or a new one. */
  onSend = async (msg: OutboundMessage): Promise<SentMessage> => ({ ids: msg.text.split('|').map((_, i) => `${msg.hubId}-${i}`), thread: msg.thread ?? `t-${msg.hubId}` });

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
  }
  async stop(): Promise<void> {}
  portalMembers(): string[] {
    return this.members;
  }
  sendMessage(_portal: string, msg: OutboundMessage): Promise<SentMessage> {
    this.sent.push(msg);
    return this.onSend(msg);
  }
  async sendEdit(_portal: string, msg: BridgedMessage, text: string): Promise<string[]> {
    this.edits.push({ msg, text });
    return msg.parts.slice(0, text.split('|').length);
  }
  async sendRedaction(_portal: string, msg: BridgedMessage): Promise<void> {
    this.redactions.push(msg);
  }
  async sendReaction(_portal: string, targetId: string, emoji: string): Promise<string> {
    this.reactions.push({ op: 'add', targetId, emoji });
    return `r-${this.reactions.length}`;
  }
  async sendReactionRemove(_portal: string, targetId: string, emoji: string, reactionId: string | undefined): Promise<void> {
    this.reactions.push({ op: 'remove', targetId, emoji, reactionId });
  }
  async downloadMedia(media: { id: string }): Promise<MediaFile> {
    const file = this.files.get(media.id);
    if (!file) throw new RemoteError('file expired', false, 404);
    return file;
  }
}

const chat = { id: 'chat-1', name: 'Fake chat' };
const bob: RemoteUser = { id: 'bob', name: 'Bob', avatarUrl: 'https://example.test/bob.png' };
const carol: RemoteUser = { id: 'carol', name: 'Carol' };
let seq = 0;
const base = () => ({ id: `ev-${++seq}`, portal: chat, ts: Date.now() });
const message = (text: string, extra: Partial<Extract<RemoteEvent, { type: 'message' }>> = {}): RemoteEvent => ({ ...base(), type: 'message', sender: bob, text, ...extra });

let t: TestHub;
let fake: ScriptedConnector;
let bridge: Bridge;
let alice: Session;
let dave: Session;
let ws: WsClient;
let dataDir: string;
let roomId: string;

/** Hands events to the kit as the connector does, and waits until they are handled. */
async function receive(...events: RemoteEvent[]): Promise<void> {
  await fake.ctx.receive(events);
  await bridge.queue.idle();
}

async function say(who: Session, content: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await api(t.url, 'POST', `/api/rooms/${roomId}/messages`, { token: who.token, body: { content, ...extra } });
  expect(res.status).toBe(201);
  return res.body.id;
}

/** Polls `check` until it returns something truthy (the hub pushes to the bridge in the background). */
async function until<T>(check: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until the bridge has sent hub message `hubId` and stored what came back. @returns that record. */
function bridged(hubId: string): Promise<HubMessageRecord> {
  return until(() => bridge.state.hubMessages.get(hubId));
}

async function history(): Promise<any[]> {
  return (await api(t.url, 'GET', `/api/rooms/${roomId}/messages?limit=100`, { token: alice.token })).body.messages;
}

beforeAll(async () => {
  const port = await freePort();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-kit-rt-'));
  const config = bridgeConfig({ id: 'fake', network: 'whatsapp', url: `http://127.0.0.1:${port}`, as_token: crypto.randomBytes(24).toString('hex'), hs_token: crypto.randomBytes(24).toString('hex'), data_dir: dataDir, retry_max_ms: 100, max_attempts: 2, whatsapp: {} });
  t = await startTestHub({ bridges: [config] });
  alice = await register(t.url, 'Alice');
  dave = await register(t.url, 'Dave');
  fake = new ScriptedConnector();
  fake.members = [alice.user.id, dave.user.id];
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  bridge = new Bridge({ id: 'fake', hubUrl: t.url, asToken: config.as_token, hsToken: config.hs_token, url: config.url, dataDir, retryMaxMs: 100, maxAttempts: 2, log }, fake);
  await bridge.start();
  ws = await WsClient.connect(t.wsUrl, alice.token);
});
afterAll(async () => {
  ws?.close();
  await bridge?.stop();
  await t?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('remote -> hub', () => {
  it('posts a remote message as the ghost, with its avatar, and a join puts the person in the room', async () => {
    await receive(message('hello'));
    const ev = await ws.next('message.new', (e) => e.message.content === 'hello');
    roomId = ev.room_id;
    expect(ev.message.user_name).toBe('Bob');
    const ghost = await api(t.url, 'GET', `/api/users/${ev.message.user_id}`, { token: alice.token });
    expect(ghost.body.avatar_url).toBe('https://example.test/bob.png');

    await receive({ ...base(), type: 'join', sender: carol });
    const room = await api(t.url, 'GET', `/api/rooms/${roomId}`, { token: alice.token });
    expect(room.body.members.map((m: any) => m.name).sort()).toEqual(['Alice', 'Bob', 'Carol', 'Dave', 'fake bridge']);
  });

  it('names a file that cannot be fetched in the text instead of losing the message', async () => {
    fake.files.set('f1', { data: Buffer.from('%PDF-1.4\n%%EOF\n'), mimeType: 'application/pdf', fileName: 'ok.pdf' });
    await receive(message('two files', { media: [{ id: 'f1', mimeType: 'application/pdf', fileName: 'ok.pdf' }, { id: 'f2', mimeType: 'image/png', fileName: 'lost.png' }] }));
    const ev = await ws.next('message.new', (e) => e.message.content.startsWith('two files'));
    expect(ev.message.attachments.map((a: any) => a.filename)).toEqual(['ok.pdf']);
    expect(ev.message.content).toBe('two files\n📎 lost.png (not bridged: file expired)');
  });

  it('ignores remote events of unknown types instead of taking them for receipts', async () => {
    const id = await say(alice, 'receipt me');
    const rec = await bridged(id);
    // An event type this kit does not know (from a newer connector, say), shaped like a receipt.
    await receive({ ...base(), type: 'typing', sender: bob, targetId: rec.remoteId, receipt: 'delivered' } as unknown as RemoteEvent);
    await receive({ ...base(), type: 'notice', text: 'after the unknown event' });
    await ws.next('message.new', (e) => e.message.content === 'after the unknown event');
    expect(ws.events.some((e) => e.type === 'message.delivered' && e.message_id === id)).toBe(false);
    // A real receipt does arrive.
    await receive({ ...base(), type: 'receipt', sender: bob, targetId: rec.remoteId, receipt: 'delivered' });
    await ws.next('message.delivered', (e) => e.message_id === id);
  });

  it('surfaces a remote event that fails for good as a notice in the room', async () => {
    const id = await say(alice, 'react badly');
    const rec = await bridged(id);
    // The hub refuses reaction keys over 64 characters: a permanent failure.
    await receive({ ...base(), type: 'reaction', sender: bob, targetId: rec.remoteId, reactionId: 'too-long', emoji: 'x'.repeat(65) });
    const notice = await ws.next('message.new', (e) => e.message.content.startsWith('⚠️ A Fakechat reaction could not be bridged'));
    expect(notice.message).toMatchObject({ user_name: 'fake bridge', reply_to: id });
  });
});

describe('hub -> remote', () => {
  let long: string;
  let parts: string[];

  it('maps every part of a several-part send back to the hub message: replies, thread replies, echoes', async () => {
    long = await say(alice, 'one|two');
    const rec = await bridged(long);
    parts = [`${long}-0`, `${long}-1`];
    expect(rec).toMatchObject({ remoteId: parts[0], parts, dir: 'out', thread: `t-${long}`, name: 'Alice' });
    expect(fake.sent.at(-1)).toMatchObject({ hubId: long, text: 'one|two', senderName: 'Alice' });

    await receive(message('to the second part', { replyTo: parts[1] }), message('in the thread', { thread: `t-${long}`, threadReply: true }), { ...message('echo'), id: parts[1] });
    const h = await history();
    expect(h.find((m) => m.content === 'to the second part').reply_to).toBe(long);
    expect(h.find((m) => m.content === 'in the thread').reply_to).toBe(long);
    expect(h.some((m) => m.content === 'echo')).toBe(false);
  });

  it('sends a reply into the thread of the message it answers', async () => {
    const starter = message('thread starter', { thread: 'bob-thread' });
    await receive(starter);
    const id = await say(alice, 'answer', { reply_to: (await history()).find((m) => m.content === 'thread starter').id });
    await bridged(id);
    expect(fake.sent.at(-1)).toMatchObject({ hubId: id, replyTo: starter.id, thread: 'bob-thread' });
  });

  it('hands edits and deletions all parts and the sender name, and keeps the mapping to the parts left', async () => {
    expect((await api(t.url, 'PATCH', `/api/messages/${long}`, { token: alice.token, body: { content: 'just one' } })).status).toBe(200);
    await until(() => bridge.state.hubMessages.get(long)!.parts.length === 1);
    expect(fake.edits.at(-1)).toEqual({ msg: { hubId: long, parts, thread: `t-${long}`, senderName: 'Alice' }, text: 'just one' });
    expect(bridge.state.hubMessages.get(long)!.parts).toEqual([parts[0]]);
    expect(bridge.state.remoteMessages.has(parts[1])).toBe(false);
    // The network deleting the dropped part is not a deletion of the hub message.
    await receive({ ...base(), type: 'delete', targetId: parts[1] });
    // An edit coming back for a message the bridge sent is its own echo.
    await receive({ ...base(), type: 'edit', sender: bob, targetId: parts[0], text: 'changed remotely' });
    expect((await history()).find((m) => m.id === long).content).toBe('just one');

    expect((await api(t.url, 'DELETE', `/api/messages/${long}`, { token: alice.token })).status).toBe(204);
    await until(() => fake.redactions.length);
    expect(fake.redactions.at(-1)).toEqual({ hubId: long, parts: [parts[0]], thread: `t-${long}`, senderName: 'Alice' });
  });

  it('drops the echo of a send that is received before the send is answered', async () => {
    const plain = fake.onSend;
    fake.onSend = async (msg) => {
      // The network delivers the echo first, and answers the send a little later.
      await fake.ctx.receive([{ ...message(`echo of ${msg.text}`), id: `${msg.hubId}-0` }]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { ids: [`${msg.hubId}-0`] };
    };
    const id = await say(alice, 'racing');
    await bridged(id);
    await receive(message('after the race'));
    const h = await history();
    expect(h.some((m) => m.content === 'echo of racing')).toBe(false);
    expect(h.some((m) => m.content === 'after the race')).toBe(true);
    fake.onSend = plain;
  });
});

describe('reactions', () => {
  let target: string;
  let remote: string;

  it('keeps one emoji per remote reaction id: a new emoji replaces it, a removal takes it back', async () => {
    target = await say(alice, 'react to me');
    remote = (await bridged(target)).remoteId;
    await receive({ ...base(), type: 'reaction', sender: bob, targetId: remote, reactionId: 'bob-on-it', emoji: '👍' });
    expect((await ws.next('reaction.added', (e) => e.message_id === target)).key).toBe('👍');
    await receive({ ...base(), type: 'reaction', sender: bob, targetId: remote, reactionId: 'bob-on-it', emoji: '❤️' });
    expect((await ws.next('reaction.removed', (e) => e.message_id === target)).key).toBe('👍');
    expect((await ws.next('reaction.added', (e) => e.message_id === target)).key).toBe('❤️');
    await receive({ ...base(), type: 'unreaction', reactionId: 'bob-on-it' });
    expect((await ws.next('reaction.removed', (e) => e.message_id === target)).key).toBe('❤️');
  });

  it('makes one bridge reaction per emoji for all hub users, taken back with the last one, and drops its echo', async () => {
    // Each change is awaited in the bridge's record of who holds the reaction.
    const held = () => bridge.state.hubReactions.get({ message: target, emoji: '🎉' })?.users ?? [];
    const react = async (who: Session, add: boolean) => {
      const res = await api(t.url, add ? 'PUT' : 'DELETE', `/api/messages/${target}/reactions/${encodeURIComponent('🎉')}`, { token: who.token });
      expect(res.status).toBeLessThan(300);
      await until(() => held().includes(who.user.id) === add);
    };
    const before = fake.reactions.length;
    await react(alice, true);
    await react(dave, true);
    expect(fake.reactions.slice(before)).toEqual([{ op: 'add', targetId: remote, emoji: '🎉' }]);
    const id = `r-${before + 1}`;
    // The network shows the bridge's reaction back: not a ghost's reaction.
    await receive({ ...base(), type: 'reaction', sender: { id: 'relay', name: 'Relay' }, targetId: remote, reactionId: id, emoji: '🎉' });
    expect((await api(t.url, 'GET', `/api/messages/${target}`, { token: alice.token })).body.reactions).toEqual([expect.objectContaining({ key: '🎉', count: 2 })]);
    await react(alice, false);
    expect(fake.reactions.slice(before)).toHaveLength(1);
    await react(dave, false);
    expect(fake.reactions.slice(before)).toEqual([
      { op: 'add', targetId: remote, emoji: '🎉' },
      { op: 'remove', targetId: remote, emoji: '🎉', reactionId: id },
    ]);
  });
});

describe('connector state', () => {
  it('is written in the same atomic write as the events it goes with', async () => {
    const ev = message('marked');
    await fake.ctx.receive([ev], [{ put: 'lastseen:chat-1', value: ev.ts }]);
    expect(fake.ctx.state.get('lastseen:chat-1')).toBe(ev.ts);
    expect(bridge.state.store.get('c:lastseen:chat-1')).toBe(ev.ts);
    expect(fake.ctx.state.entries('lastseen:')).toEqual([['lastseen:chat-1', ev.ts]]);
    // One line of the store's log is one atomic batch: the mark and the queued event share it.
    const batches = fs.readFileSync(path.join(dataDir, 'state.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as any[]);
    const batch = batches.find((ops) => ops.some((op) => op.put === 'c:lastseen:chat-1'))!;
    expect(batch.some((op) => op.put?.startsWith('q:') && op.value.key === `fake:${ev.id}`)).toBe(true);
    await ws.next('message.new', (e) => e.message.content === 'marked');

    await fake.ctx.state.batch([{ del: 'lastseen:chat-1' }]);
    expect(bridge.state.store.has('c:lastseen:chat-1')).toBe(false);
  });
});
