import { describe, expect, it } from 'vitest';
import { roomEvents, type NewRoomEvent } from '../../src/events/catalog.js';
import { toWire, type StreamEvent } from '../../src/events/stream.js';
import { encodeEvent, streamEvent } from '../../src/events/wire.js';

const room = '2b1c8f4e-3a55-4d7e-9a0e-6f1b2c3d4e5f';
const user = '7d8e9f00-1111-4222-8333-944455566677';

function stored(e: NewRoomEvent, position: number): StreamEvent {
  return streamEvent({ stream_position: position, room_id: e.room_id, type: e.payload.type, notify_user_ids: e.notify_user_ids ?? [], written_ms: 0 }, e.payload);
}

describe('encodeEvent', () => {
  const events = [
    roomEvents.messageNew({
      id: user, room_id: room, user_id: user, user_name: 'Ann "quoted" \u2028', content: 'hé\n}', created_at: '2026-01-01T00:00:00.000Z', edited_at: null,
      reply_to: null, attachments: [], mentions: [], reactions: [], delivered_at: null, deleted: false, encrypted: false, envelope: null,
    }),
    roomEvents.messageDeleted(room, user, user),
    roomEvents.reaction(room, true, { message_id: user, user_id: user, key: '👍', count: 2 }),
    roomEvents.roomDeleted(room, user, [user]),
  ];

  it('encodes each room event as exactly its wire form, in UTF-8, once per event', () => {
    events.forEach((e, i) => {
      const event = stored(e, 40 + i);
      const data = encodeEvent(event);
      expect(JSON.parse(data.toString('utf8'))).toStrictEqual(toWire(event));
      expect(encodeEvent(event)).toBe(data);
    });
  });

  it('makes the wire form of an event read from the database from its stored JSON text, spacing and all', () => {
    const e = events[0];
    // PostgreSQL's jsonb text: a space after each colon and comma.
    const text = JSON.stringify(e.payload, null, 1).replace(/\n\s*/g, ' ');
    const event = streamEvent({ stream_position: 7, room_id: e.room_id, type: e.payload.type, notify_user_ids: [], written_ms: 0 }, JSON.parse(text), text);
    const wire = encodeEvent(event).toString('utf8');
    expect(wire.startsWith(text.slice(0, -1))).toBe(true);
    expect(JSON.parse(wire)).toStrictEqual(toWire(event));
  });

  it('serializes a copy with another payload afresh, never from the text of the event it was copied from', () => {
    const e = events[0];
    const text = JSON.stringify(e.payload);
    const event = streamEvent({ stream_position: 8, room_id: e.room_id, type: e.payload.type, notify_user_ids: [], written_ms: 0 }, JSON.parse(text), text);
    const copy = { ...event, payload: { ...event.payload, message: { ...(event.payload as { message: object }).message, content: 'for one device' } } } as StreamEvent;
    expect(JSON.parse(encodeEvent(copy).toString('utf8')).message.content).toBe('for one device');
    expect(JSON.parse(encodeEvent(event).toString('utf8')).message.content).toBe('hé\n}');
  });

  it('does not repeat room_id when the payload carries it (room.deleted)', () => {
    const text = encodeEvent(stored(events[3], 9)).toString('utf8');
    expect(text.match(/"room_id"/g)).toHaveLength(1);
  });
});
