import { describe, expect, it } from 'vitest';
import { roomEvents, type NewRoomEvent } from '../../src/events/catalog.js';
import { toWire, type StreamEvent } from '../../src/events/stream.js';
import { encodeEvent } from '../../src/ws/connection.js';

const room = '2b1c8f4e-3a55-4d7e-9a0e-6f1b2c3d4e5f';
const user = '7d8e9f00-1111-4222-8333-944455566677';

function stored(e: NewRoomEvent, position: number): StreamEvent {
  return { stream_position: position, room_id: e.room_id, type: e.payload.type, payload: e.payload, notify_user_ids: e.notify_user_ids ?? [], written_ms: 0 } as StreamEvent;
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

  it('does not repeat room_id when the payload carries it (room.deleted)', () => {
    const text = encodeEvent(stored(events[3], 9)).toString('utf8');
    expect(text.match(/"room_id"/g)).toHaveLength(1);
  });
});
