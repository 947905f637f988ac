/**
 * The Google Chat simulator against the real client libraries (`@googleapis/chat`,
 * `google-auth-library`) through the bridge's `GoogleChat` wrapper: the service-account token flow,
 * the Chat endpoints the bridge uses and the Workspace Events subscriptions.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GoogleChat } from '../../bridges/googlechat/google.js';
import { RemoteError } from '../../bridges/kit/types.js';
import { GoogleChatSimulator } from './sim.js';

let sim: GoogleChatSimulator;
let dir: string;
let google: GoogleChat;
let space: string;

function client(credentials: string, delegatedUser = ''): GoogleChat {
  const file = path.join(dir, `${crypto.randomBytes(4).toString('hex')}.json`);
  fs.writeFileSync(file, credentials);
  return new GoogleChat({ credentialsFile: file, delegatedUser, apiBaseUrl: sim.url, tokenUrl: `${sim.url}/token`, eventsBaseUrl: sim.url });
}

beforeAll(async () => {
  sim = new GoogleChatSimulator();
  await sim.start();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-gcsim-'));
  google = client(sim.credentialsJson(), sim.delegatedUser.email);
  space = sim.addSpace('Project X');
});
afterAll(async () => {
  await sim?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('OAuth token endpoint', () => {
  it('issues tokens for assertions signed with the service account key only', async () => {
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const forged = client(JSON.stringify({ ...JSON.parse(sim.credentialsJson()), private_key: other }));
    const err = await forged.getSpace(space).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(sim.tokenRefusals.at(-1)).toMatch(/Invalid JWT/);
    expect((await google.getSpace(space)).displayName).toBe('Project X');
  });

  it('impersonates only the user the domain allows', async () => {
    const stranger = client(sim.credentialsJson(), 'someone-else@example.test');
    await expect(stranger.addReaction('spaces/x/messages/y', '👍')).rejects.toBeInstanceOf(RemoteError);
    expect(sim.tokenRefusals.at(-1)).toMatch(/unauthorized/);
  });
});

describe('messages', () => {
  it('creates idempotently by requestId and replies in threads', async () => {
    const id = `client-sb-${crypto.randomUUID()}-0`;
    const first = await google.createMessage(space, { id, text: '*Alice*: hello' });
    const again = await google.createMessage(space, { id, text: '*Alice*: hello' });
    expect(again.name).toBe(first.name);
    expect(first.clientAssignedMessageId).toBe(id);
    expect(sim.in(space)).toHaveLength(1);
    const reply = await google.createMessage(space, { id: `client-sb-${crypto.randomUUID()}-0`, text: 'in thread', thread: first.thread!.name! });
    expect(reply.thread!.name).toBe(first.thread!.name);
    expect(reply.threadReply).toBe(true);
  });

  it('refuses text over 32,000 bytes as a permanent error', async () => {
    const err = await google.createMessage(space, { id: `client-sb-${crypto.randomUUID()}-0`, text: 'é'.repeat(16_001) }).catch((e) => e);
    expect(err).toMatchObject({ transient: false, code: 'INVALID_ARGUMENT' });
  });

  it('updates and deletes, and lists what was created after a time', async () => {
    const before = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    const m = await google.createMessage(space, { id: `client-sb-${crypto.randomUUID()}-0`, text: 'draft' });
    await google.updateText(m.name!, 'final', false);
    expect(sim.messages.find((x) => x.name === m.name)!.text).toBe('final');
    const listed = await google.listSince(space, before);
    expect(listed.map((x) => x.text)).toEqual(['final']);
    await google.deleteMessage(m.name!, false);
    await google.deleteMessage(m.name!, false);
    expect(await google.listSince(space, before)).toEqual([]);
  });

  it('marks 429 and 5xx transient', async () => {
    sim.failNext(1, 429);
    expect(await google.getSpace(space).catch((e) => e)).toMatchObject({ transient: true, code: 'RESOURCE_EXHAUSTED' });
    sim.failNext(1, 503);
    expect(await google.getSpace(space).catch((e) => e)).toMatchObject({ transient: true });
    sim.failNext(1, 403);
    expect(await google.getSpace(space).catch((e) => e)).toMatchObject({ transient: false, code: 'PERMISSION_DENIED' });
  });
});

describe('media and reactions (user authentication)', () => {
  it('uploads as the delegated user, attaches, and downloads as the app', async () => {
    const data = crypto.randomBytes(3000);
    const ref = await google.upload(space, { data, mimeType: 'application/octet-stream', fileName: 'blob.bin' });
    const m = await google.createMessage(space, { id: `client-sb-${crypto.randomUUID()}-0`, text: 'a file', attachments: [ref] });
    expect(m.sender!.name).toBe(sim.delegatedUser.name);
    expect(m.attachment![0].contentName).toBe('blob.bin');
    expect((await google.download(m.attachment![0].attachmentDataRef!.resourceName!)).equals(data)).toBe(true);
  });

  it('adds and removes reactions; the app alone may not', async () => {
    const m = await google.createMessage(space, { id: `client-sb-${crypto.randomUUID()}-0`, text: 'react' });
    const made = await google.addReaction(m.name!, '🎉');
    expect(made!.name).toMatch(/\/reactions\//);
    expect(made!.user).toBe(sim.delegatedUser.name);
    const name = made!.name;
    expect(await google.addReaction(m.name!, '🎉')).toBeNull();
    await google.removeReaction(name);
    expect(sim.reactions.has(name)).toBe(false);
    await expect(client(sim.credentialsJson()).addReaction(m.name!, '🎉')).rejects.toMatchObject({ transient: false });
  });
});

describe('Workspace Events subscriptions', () => {
  it('creates, reuses on conflict, renews and deletes', async () => {
    const s2 = sim.addSpace('Events');
    const sub = await google.subscribe(s2, sim.topic, 60);
    expect(Date.parse(sub.expireTime) - Date.now()).toBeLessThanOrEqual(60_000);
    const again = await google.subscribe(s2, sim.topic, 120);
    expect(again.name).toBe(sub.name);
    expect(Date.parse(again.expireTime)).toBeGreaterThan(Date.parse(sub.expireTime));
    const renewed = await google.renew(sub.name, 600);
    expect(Date.parse(renewed!.expireTime) - Date.now()).toBeGreaterThan(500_000);
    await google.unsubscribe(sub.name);
    expect(await google.renew(sub.name, 600)).toBeNull();
  });
});
