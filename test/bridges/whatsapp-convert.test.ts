/** WhatsApp webhook parsing and signatures, without a hub. */
import { describe, expect, it } from 'vitest';
import { signBody, verifySignature } from '../../bridges/whatsapp/connector.js';
import { convertStatus, parseWebhook } from '../../bridges/whatsapp/convert.js';
import { WhatsAppSimulator } from './whatsapp-sim.js';

const sim = new WhatsAppSimulator();

describe('parseWebhook', () => {
  it('reads messages for the configured number only', () => {
    const { payload, wamid } = sim.text('15551230000', 'Ana', 'hi', { timestamp: 1700000000, context: 'wamid.PARENT' });
    expect(parseWebhook(payload, sim.phoneNumberId)).toEqual([
      { id: wamid, type: 'message', portal: { id: '15551230000', name: 'Ana' }, sender: { id: '15551230000', name: 'Ana' }, ts: 1700000000000, text: 'hi', replyTo: 'wamid.PARENT' },
    ]);
    expect(parseWebhook(payload, 'another-number')).toEqual([]);
    expect(parseWebhook({ object: 'page', entry: [] }, sim.phoneNumberId)).toEqual([]);
  });

  it('falls back to the phone number when the profile has no name', () => {
    const [ev] = parseWebhook(sim.text('15551230000', '', 'x').payload, sim.phoneNumberId);
    expect(ev.portal.name).toBe('+15551230000');
  });

  it('maps media, keeping the caption and a file name', () => {
    const [ev] = parseWebhook(sim.inbound('1555', 'Ana', { type: 'audio', audio: { id: '77', mime_type: 'audio/ogg; codecs=opus' } }).payload, sim.phoneNumberId);
    expect(ev).toMatchObject({ type: 'message', text: '', media: [{ id: '77', mimeType: 'audio/ogg', fileName: 'audio.ogg' }] });
  });

  it('turns statuses into receipts and failure notices, and ignores "sent"', () => {
    expect(convertStatus({ id: 'wamid.X', status: 'sent', recipient_id: '1555', timestamp: '1' })).toBeNull();
    expect(convertStatus({ id: 'wamid.X', status: 'read', recipient_id: '1555', timestamp: '1' })).toMatchObject({ type: 'receipt', receipt: 'read', targetId: 'wamid.X', id: 'status:wamid.X:read' });
    const failed = convertStatus({ id: 'wamid.X', status: 'failed', recipient_id: '1555', timestamp: '1', errors: [{ code: 131047, title: 'Re-engagement message' }] });
    expect(failed).toMatchObject({ type: 'notice', targetId: 'wamid.X' });
    expect((failed as { text: string }).text).toContain('131047');
  });
});

describe('signatures', () => {
  it('accepts the HMAC-SHA256 of the raw body and nothing else', () => {
    const raw = Buffer.from('{"a":1}');
    expect(verifySignature(raw, signBody(raw, 'secret'), 'secret')).toBe(true);
    expect(verifySignature(Buffer.from('{"a":2}'), signBody(raw, 'secret'), 'secret')).toBe(false);
    expect(verifySignature(raw, signBody(raw, 'other'), 'secret')).toBe(false);
    expect(verifySignature(raw, undefined, 'secret')).toBe(false);
    expect(verifySignature(raw, signBody(raw, ''), '')).toBe(false);
  });
});
