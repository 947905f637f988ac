/**
 * Google Chat conversion and token checks in isolation: Workspace event payloads (single and batch)
 * to bridge events, echo detection, the 32,000-byte split, and the endpoint-URL audience variant of
 * interaction-event tokens (Google's OIDC certificates, served by the simulator).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, fromInteraction, fromPush, outboundTexts, splitBytes } from '../../bridges/googlechat/convert.js';
import { TokenVerifier } from '../../bridges/googlechat/verify.js';
import { GoogleChatSimulator } from './sim.js';

const msg = (id: string, extra: Record<string, unknown> = {}) => ({
  name: `spaces/S1/messages/${id}`,
  sender: { name: 'users/42', displayName: 'Bob', type: 'HUMAN' },
  createTime: '2025-03-01T10:00:00.123456Z',
  text: `text ${id}`,
  thread: { name: 'spaces/S1/threads/T1' },
  ...extra,
});

describe('Workspace events', () => {
  it('reads single and batch message events, and drops echoes of the bridge', () => {
    const one = fromPush({ 'ce-type': 'google.workspace.chat.message.v1.created' }, { message: msg('a') }).events;
    expect(one).toEqual([expect.objectContaining({ type: 'message', id: 'spaces/S1/messages/a', portal: { id: 'spaces/S1', name: 'spaces/S1' }, ts: Date.parse('2025-03-01T10:00:00.123Z'), sender: { id: '42', name: 'Bob' }, thread: 'spaces/S1/threads/T1' })]);
    const batch = fromPush({ 'ce-type': 'google.workspace.chat.message.v1.batchCreated' }, { messages: [{ message: msg('b') }, { message: msg('c', { clientAssignedMessageId: 'client-sb-x-0' }) }] }).events;
    expect(batch.map((e) => e.id)).toEqual(['spaces/S1/messages/b']);
  });

  it('keys edits by update time and reads deletions and reactions', () => {
    const edit = fromPush({ 'ce-type': 'google.workspace.chat.message.v1.updated' }, { message: msg('a', { lastUpdateTime: '2025-03-01T10:05:00Z' }) }).events[0];
    expect(edit).toMatchObject({ type: 'edit', id: 'edit:spaces/S1/messages/a:2025-03-01T10:05:00Z', targetId: 'spaces/S1/messages/a', text: 'text a' });
    expect(fromPush({ 'ce-type': 'google.workspace.chat.message.v1.deleted' }, { message: { name: 'spaces/S1/messages/a' } }).events[0]).toMatchObject({ type: 'delete', targetId: 'spaces/S1/messages/a' });
    const r = 'spaces/S1/messages/a/reactions/r1';
    expect(fromPush({ 'ce-type': 'google.workspace.chat.reaction.v1.created' }, { reaction: { name: r, user: { name: 'users/42', type: 'HUMAN' }, emoji: { unicode: '🎉' } } }).events[0]).toMatchObject({ type: 'reaction', targetId: 'spaces/S1/messages/a', reactionId: r, emoji: '🎉' });
    expect(fromPush({ 'ce-type': 'google.workspace.chat.reaction.v1.deleted' }, { reaction: { name: r } }).events[0]).toMatchObject({ type: 'unreaction', reactionId: r });
  });

  it('hands subscription lifecycle events over separately', () => {
    const out = fromPush({ 'ce-type': 'google.workspace.events.subscription.v1.expirationReminder' }, { subscription: { name: 'subscriptions/x', targetResource: '//chat.googleapis.com/spaces/S1' } });
    expect(out).toEqual({ events: [], lifecycle: { type: 'expirationReminder', subscription: { name: 'subscriptions/x', targetResource: '//chat.googleapis.com/spaces/S1' } } });
  });

  it('names Drive files in the text instead of fetching them', () => {
    const ev = fromPush({ 'ce-type': 'google.workspace.chat.message.v1.created' }, { message: msg('d', { attachment: [{ contentName: 'Plan', source: 'DRIVE_FILE', driveDataRef: { driveFileId: 'F1' } }] }) }).events[0] as any;
    expect(ev.media).toEqual([]);
    expect(ev.text).toBe('text d\n📎 Plan (Google Drive file: https://drive.google.com/open?id=F1)');
  });

  it('ignores interaction events of other kinds', () => {
    expect(fromInteraction({ type: 'CARD_CLICKED', space: { name: 'spaces/S1' } }).action).toBe('ignored');
  });
});

describe('the 32,000-byte limit', () => {
  it('keeps a message that fits whole', () => {
    expect(outboundTexts('*{name}*: {body}', 'Alice', 'hi')).toEqual(['*Alice*: hi']);
  });

  it('splits between code points, at spaces when it can, each part within the limit', () => {
    const body = '😀'.repeat(10_000) + ' tail';
    const parts = outboundTexts('*{name}*: {body}', 'Alice', body);
    expect(parts.length).toBe(2);
    for (const p of parts) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(parts.map((p) => p.replace(/^\*Alice\*: /, '').replace(/ \(\d\/2\)$/, '')).join('')).toBe(body);
    expect(splitBytes('aaaa bbbb', 6)).toEqual(['aaaa ', 'bbbb']);
  });
});

describe('interaction tokens, endpoint-URL audience', () => {
  let sim: GoogleChatSimulator;
  let verifier: TokenVerifier;
  const endpoint = 'https://bridge.example.test/googlechat/events';
  beforeAll(async () => {
    sim = new GoogleChatSimulator();
    await sim.start();
    verifier = new TokenVerifier({ audienceMode: 'endpoint-url', projectNumber: '', endpointUrl: endpoint, pubsubAudience: '', pubsubServiceAccount: '', chatCertsUrl: `${sim.url}/x509/chat`, oidcCertsUrl: `${sim.url}/oauth2/v1/certs` });
  });
  afterAll(() => sim.close());

  it('accepts Google ID tokens for the endpoint from chat@system.gserviceaccount.com only', async () => {
    await expect(verifier.verifyChat(`Bearer ${await sim.oidcToken({ aud: endpoint, email: 'chat@system.gserviceaccount.com' })}`)).resolves.toBeUndefined();
    await expect(verifier.verifyChat(`Bearer ${await sim.oidcToken({ aud: endpoint, email: 'someone@example.test' })}`)).rejects.toThrow(/not chat@/);
    await expect(verifier.verifyChat(`Bearer ${await sim.oidcToken({ aud: 'https://other.example.test', email: 'chat@system.gserviceaccount.com' })}`)).rejects.toThrow(/aud/);
    await expect(verifier.verifyChat(`Bearer ${await sim.oidcToken({ aud: endpoint, email: 'chat@system.gserviceaccount.com' }, { foreignKey: true })}`)).rejects.toThrow();
    await expect(verifier.verifyChat(undefined)).rejects.toThrow(/Missing/);
    // google-auth-library fetched Google's certificates from the simulator once and kept them for their max-age.
    expect(sim.requests.filter((r) => r.path === '/oauth2/v1/certs')).toHaveLength(1);
  });
});
