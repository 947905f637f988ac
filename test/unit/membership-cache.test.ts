import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../../src/events/stream.js';
import { MembershipCache, type CachedRoom } from '../../src/modules/rooms/membership-cache.js';

const ROOM = 'room-1';

function updated(position: number, roomId: string, members: [string, string][], encrypted = false): StreamEvent {
  return {
    room_id: roomId,
    stream_position: position,
    type: 'room.updated',
    payload: {
      type: 'room.updated',
      room: {
        id: roomId, type: 'group', name: 'r', topic: '', visibility: 'private', allow_edits: true, encrypted,
        created_by: null, created_at: '2026-12-04T00:00:00.000Z',
        members: members.map(([user_id, name]) => ({ user_id, name, avatar_url: null, role: 'member', joined_at: '2026-12-04T00:00:00.000Z' })),
      },
    },
  } as unknown as StreamEvent;
}

function deleted(position: number, roomId: string): StreamEvent {
  return { room_id: roomId, stream_position: position, type: 'room.deleted', payload: { type: 'room.deleted', room_id: roomId, deleted_by: 'u' } } as unknown as StreamEvent;
}

function other(position: number, roomId: string): StreamEvent {
  return { room_id: roomId, stream_position: position, type: 'message.read', payload: { type: 'message.read' } } as unknown as StreamEvent;
}

function entry(position: number, members: [string, string][]): CachedRoom {
  return { position, live: true, encrypted: false, members: new Map(members) };
}

describe('MembershipCache', () => {
  it('makes an entry from a room.updated, with its members, names and encryption', () => {
    const cache = new MembershipCache();
    cache.apply([updated(5, ROOM, [['a', 'Alice'], ['b', 'Bob']], true)]);
    const got = cache.exactAt(ROOM, 5)!;
    expect(got.live).toBe(true);
    expect(got.encrypted).toBe(true);
    expect([...got.members]).toEqual([['a', 'Alice'], ['b', 'Bob']]);
  });

  it('marks a room deleted by room.deleted, and leaves it without members', () => {
    const cache = new MembershipCache();
    cache.apply([updated(5, ROOM, [['a', 'Alice']]), deleted(6, ROOM)]);
    const got = cache.exactAt(ROOM, 6)!;
    expect(got.live).toBe(false);
    expect(got.members.size).toBe(0);
  });

  it('is a miss for a room it never saw', () => {
    const cache = new MembershipCache();
    cache.apply([updated(5, ROOM, [['a', 'Alice']])]);
    expect(cache.exactAt('room-2', 5)).toBeUndefined();
  });

  it('refuses an entry older than the latest membership position until the reader has dispatched that position', () => {
    const cache = new MembershipCache();
    cache.fill(ROOM, entry(10, [['a', 'Alice']]));
    // A membership event at 12 (of any room) has committed but this node has not yet applied it.
    expect(cache.exactAt(ROOM, 12)).toBeUndefined();
    expect(cache.exactAt(ROOM, 10)).toBeDefined();
    // The reader dispatches up to 12 (another room's event, and a non-membership event): the entry is exact at 12.
    cache.apply([updated(11, 'room-2', [['b', 'Bob']]), other(12, ROOM)]);
    expect(cache.exactAt(ROOM, 12)?.members.has('a')).toBe(true);
    expect(cache.exactAt(ROOM, 13)).toBeUndefined();
  });

  it('keeps the more recent of an entry read through and one made by the stream', () => {
    const cache = new MembershipCache();
    // Read through at 20 (under the lock, the tables already had the change at 18); the reader then applies 18.
    cache.fill(ROOM, entry(20, [['a', 'Alice']]));
    cache.apply([updated(18, ROOM, [['a', 'Alice'], ['b', 'Bob']])]);
    expect([...cache.exactAt(ROOM, 20)!.members.keys()]).toEqual(['a']);
    // A read-through older than what is held does not replace it either.
    cache.apply([updated(25, ROOM, [['c', 'Carol']])]);
    cache.fill(ROOM, entry(22, [['a', 'Alice']]));
    expect([...cache.exactAt(ROOM, 25)!.members.keys()]).toEqual(['c']);
  });

  it('drops the least recently used room past its bound', () => {
    const cache = new MembershipCache(2);
    cache.fill('r1', entry(1, [['a', 'A']]));
    cache.fill('r2', entry(2, [['a', 'A']]));
    expect(cache.exactAt('r1', 1)).toBeDefined(); // r1 used: r2 is now the least recently used
    cache.fill('r3', entry(3, [['a', 'A']]));
    expect(cache.exactAt('r2', 0)).toBeUndefined();
    expect(cache.exactAt('r1', 0)).toBeDefined();
    expect(cache.exactAt('r3', 0)).toBeDefined();
  });
});
