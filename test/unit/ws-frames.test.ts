import { describe, expect, it } from 'vitest';
import { parseFrame } from '../../src/ws/frames.js';

const ROOM = '6f1c2b1e-8d2a-4c1b-9f3e-0a1b2c3d4e5f';
const MSG = 'a3bb189e-8bf9-3888-9912-ace4e6543002';
const frame = (value: unknown) => parseFrame(JSON.stringify(value));

describe('parseFrame: malformed frames', () => {
  it.each([
    ['bad JSON', '{"type": "ping"'],
    ['an array', '[]'],
    ['null', 'null'],
    ['a string', '"ping"'],
    ['no type', '{"room_id": "x"}'],
    ['a non-string type', '{"type": 5}'],
  ])('%s → INVALID_FRAME', (_label, text) => {
    const r = parseFrame(text);
    expect(r).toMatchObject({ ok: false, code: 'INVALID_FRAME' });
    expect(r.ok === false && r.message.length > 0).toBe(true);
  });

  it('an unknown type → INVALID_FRAME naming the type, with txn_id echoed', () => {
    expect(frame({ type: 'message.nuke', txn_id: 't-7' })).toEqual({
      ok: false,
      code: 'INVALID_FRAME',
      message: expect.stringContaining('message.nuke'),
      txn_id: 't-7',
    });
  });

  it.each(['toString', 'constructor', '__proto__', 'hasOwnProperty'])('an inherited property name as type (%s) → INVALID_FRAME, never a throw', (type) => {
    expect(() => parseFrame(JSON.stringify({ type, txn_id: 'p' }))).not.toThrow();
    expect(parseFrame(JSON.stringify({ type, txn_id: 'p' }))).toMatchObject({ ok: false, code: 'INVALID_FRAME', txn_id: 'p' });
  });
});

describe('parseFrame: schema violations', () => {
  it('missing room_id → VALIDATION_FAILED naming the field, txn_id echoed', () => {
    const r = frame({ type: 'message.send', content: 'hi', txn_id: 'abc' });
    expect(r).toMatchObject({ ok: false, code: 'VALIDATION_FAILED', txn_id: 'abc' });
    expect(r.ok === false && r.message).toContain('room_id');
  });

  it('missing message_id on message.read → VALIDATION_FAILED naming the field', () => {
    const r = frame({ type: 'message.read', room_id: ROOM });
    expect(r).toMatchObject({ ok: false, code: 'VALIDATION_FAILED' });
    expect(r.ok === false && r.message).toContain('message_id');
    expect((r as { txn_id?: string }).txn_id).toBeUndefined();
  });

  it.each([
    ['room_id', { type: 'message.send', room_id: 'room-1', content: 'hi' }],
    ['room_id', { type: 'typing.start', room_id: `${ROOM}0` }],
    ['reply_to', { type: 'message.send', room_id: ROOM, content: 'hi', reply_to: 'nope' }],
    ['message_id', { type: 'reaction.add', message_id: '6f1c2b1e8d2a4c1b9f3e0a1b2c3d4e5f', key: '+1' }],
  ])('a malformed uuid in %s → VALIDATION_FAILED naming it', (field, value) => {
    const r = frame(value);
    expect(r).toMatchObject({ ok: false, code: 'VALIDATION_FAILED' });
    expect(r.ok === false && r.message).toContain(field);
  });

  it.each([
    ['an unknown property', { type: 'ping', extra: true }, 'extra'],
    ['a bad presence status', { type: 'presence.update', status: 'asleep' }, 'status'],
    ['a wrong content type', { type: 'message.send', room_id: ROOM, content: 42 }, 'content'],
    ['an empty reaction key', { type: 'reaction.remove', message_id: MSG, key: '' }, 'key'],
    ['an over-long txn_id', { type: 'ping', txn_id: 'x'.repeat(256) }, 'txn_id'],
  ])('%s → VALIDATION_FAILED naming the field', (_label, value, field) => {
    const r = frame(value);
    expect(r).toMatchObject({ ok: false, code: 'VALIDATION_FAILED' });
    expect(r.ok === false && r.message).toContain(field);
  });
});

describe('parseFrame: text PostgreSQL cannot store', () => {
  it.each([
    ['a U+0000 in content', { type: 'message.send', room_id: ROOM, content: 'a\u0000b', txn_id: 't-1' }],
    ['an unpaired high surrogate in content', { type: 'message.send', room_id: ROOM, content: 'a\ud800b', txn_id: 't-1' }],
    ['an unpaired low surrogate in a reaction key', { type: 'reaction.add', message_id: MSG, key: '\udc00', txn_id: 't-1' }],
  ])('%s → VALIDATION_FAILED with txn_id echoed', (_label, value) => {
    expect(frame(value)).toMatchObject({ ok: false, code: 'VALIDATION_FAILED', txn_id: 't-1' });
  });

  it('a U+0000 in status text → VALIDATION_FAILED', () => {
    expect(frame({ type: 'presence.update', status: 'away', status_text: 'x\u0000' })).toMatchObject({ ok: false, code: 'VALIDATION_FAILED' });
  });

  it('accepts a well-formed surrogate pair', () => {
    expect(frame({ type: 'message.send', room_id: ROOM, content: 'ok \ud83d\ude00' })).toMatchObject({ ok: true });
  });
});

describe('parseFrame: valid frames', () => {
  it.each([
    { type: 'message.send', room_id: ROOM, content: 'hello' },
    { type: 'message.send', room_id: ROOM.toUpperCase(), content: 'hello', reply_to: MSG, txn_id: 'tx-1' },
    { type: 'typing.start', room_id: ROOM },
    { type: 'typing.stop', room_id: ROOM },
    { type: 'message.read', room_id: ROOM, message_id: MSG },
    { type: 'presence.update', status: 'away', status_text: 'lunch' },
    { type: 'presence.update', status: 'online' },
    { type: 'reaction.add', message_id: MSG, key: '👍', txn_id: 'r1' },
    { type: 'reaction.remove', message_id: MSG, key: '👍' },
    { type: 'ping' },
    { type: 'ping', txn_id: 'p1' },
  ])('accepts $type', (value) => {
    expect(frame(value)).toEqual({ ok: true, frame: value });
  });
});

describe('parseFrame: input bounds (src/lib/input-bounds.ts)', () => {
  it('refuses a frame nested deeper than the limit with VALIDATION_FAILED, without overflowing the stack', () => {
    const text = `{"type":"message.send","txn_id":"d","content":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    expect(parseFrame(text)).toMatchObject({ ok: false, code: 'VALIDATION_FAILED', message: expect.stringContaining('nested deeper than 32 levels'), txn_id: 'd' });
    expect(parseFrame(`{"type":"ping","x":${'{"a":'.repeat(5)}1${'}'.repeat(5)}}`, 4)).toMatchObject({ ok: false, code: 'VALIDATION_FAILED' });
  });

  it('refuses a number JSON cannot carry (1e400 parses as Infinity)', () => {
    expect(parseFrame('{"type":"ping","n":1e400}')).toMatchObject({ ok: false, code: 'VALIDATION_FAILED', message: 'n: must be a finite number' });
  });
});
