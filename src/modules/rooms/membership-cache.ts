/**
 * This node's cache of what the group commit checks for every send: which users are members of a
 * room, their names (a `message.new` carries the sender's), and whether the room is encrypted or
 * deleted. It is kept exact by the stream itself: every change to a room's members or settings, and
 * every rename of a member, appends a `room.updated` (the room as it now is, with its full member
 * list) or `room.deleted`, and this node's stream reader hands each one to `apply`, in stream order.
 *
 * Exactness for one transaction: the group commit takes the stream lock at BEGIN and reads, in the
 * same round trip, the position P of the latest membership event (`EventStream.writeLocked`). Until
 * it commits, no other event can commit. A room's entry is exact for it when the entry already
 * reflects P: the reader has dispatched P, or the entry was read from the tables at or after P.
 * Otherwise, and on a miss, the rooms are read through (`RoomsService.roomsForSends`), under the
 * same lock, and their entries replaced. A membership change whose transaction is still open when
 * the lock is taken commits after the batch and orders after its sends, as its position says.
 */
import type { StreamEvent } from '../../events/stream.js';

/** Most rooms kept; past it the least recently used is dropped (and read again when next needed). */
const MAX_ROOMS = 10_000;

export interface CachedRoom {
  /** The stream position this entry is exact at (it reflects every membership event up to here). */
  position: number;
  /** False once the room is deleted. */
  live: boolean;
  encrypted: boolean;
  /** Members: user id -> name. */
  members: Map<string, string>;
}

export class MembershipCache {
  private readonly rooms = new Map<string, CachedRoom>();
  /**
   * The last position the stream reader dispatched to `apply`: every entry also reflects the
   * membership events of its room up to here (it was made before, and they were applied since).
   */
  private applied = 0;

  constructor(private readonly maxRooms = MAX_ROOMS) {}

  /** The stream reader's events, in stream order: membership events update (or add) their room's entry. */
  apply(events: StreamEvent[]): void {
    for (const e of events) {
      if (e.type === 'room.updated') {
        const { room } = e.payload;
        this.fill(e.room_id, { position: e.stream_position, live: true, encrypted: room.encrypted, members: new Map(room.members.map((m) => [m.user_id, m.name])) });
      } else if (e.type === 'room.deleted') {
        this.fill(e.room_id, { position: e.stream_position, live: false, encrypted: false, members: new Map() });
      }
    }
    if (events.length) this.applied = Math.max(this.applied, events[events.length - 1].stream_position);
  }

  /**
   * The entry of `roomId` when it is exact at `membershipPosition` (see the module comment), else
   * undefined (a miss, or an entry that may be stale).
   */
  exactAt(roomId: string, membershipPosition: number): CachedRoom | undefined {
    const entry = this.rooms.get(roomId);
    if (!entry || Math.max(entry.position, this.applied) < membershipPosition) return undefined;
    // Most recently used last: the first in the map's order is the one dropped.
    this.rooms.delete(roomId);
    this.rooms.set(roomId, entry);
    return entry;
  }

  /**
   * Sets the entry of `roomId` unless the one held is more recent: `entry` read from the tables inside
   * a transaction holding the stream lock, where the latest membership event was at `entry.position`
   * (or made from a membership event at that position).
   */
  fill(roomId: string, entry: CachedRoom): void {
    const held = this.rooms.get(roomId);
    if (held && held.position >= entry.position) return;
    this.rooms.delete(roomId);
    this.rooms.set(roomId, entry);
    if (this.rooms.size > this.maxRooms) this.rooms.delete(this.rooms.keys().next().value!);
  }
}
