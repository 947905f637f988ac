/**
 * Rooms: direct (one per pair), group and channel (public channels can be joined). Every change is
 * checked against `rooms.policy` and emits a `room.updated` stream event to the members (and to anyone
 * just removed, through `notify_user_ids`). Changes lock the room row first, so they run one at a time
 * per room on what the one before left (two leaves cannot both hand ownership to each other).
 */
import type { Database, Queryable } from '../../db/database.js';
import { AppError } from '../../errors.js';
import { appendRoomEvent, appendRoomEvents, type EventStream } from '../../events/stream.js';
import { MembershipCache, type CachedRoom } from './membership-cache.js';
import { roomEvents, type RoomWire } from '../../events/catalog.js';
import {
  assertCanAddMember, assertCanDeleteRoom, assertCanEditRoom, assertCanLeave, assertCanRemoveMember, assertCanSetRole,
  directKey, nextOwner, type Role, type RoomType,
} from './rooms.policy.js';
import type { UsersService } from '../users/users.service.js';
import { roomsRepository as repo, type MemberRow, type RoomPageRow, type RoomRow } from './rooms.repository.js';

export function roomView(room: RoomRow, members: MemberRow[]): RoomWire {
  return {
    id: room.id,
    type: room.type,
    name: room.name,
    topic: room.topic,
    visibility: room.visibility,
    allow_edits: room.allow_edits,
    encrypted: room.encrypted,
    created_by: room.created_by,
    created_at: room.created_at.toISOString(),
    members: members.map((m) => ({ user_id: m.user_id, name: m.name, avatar_url: m.avatar_url, role: m.role, joined_at: m.joined_at.toISOString() })),
  };
}

export type RoomView = RoomWire;

/** A room in the admins' list: no members, but their count and the message count. */
function roomPageView(r: RoomPageRow) {
  return {
    id: r.id,
    type: r.type,
    name: r.name,
    topic: r.topic,
    visibility: r.visibility,
    created_by: r.created_by,
    created_at: r.created_at.toISOString(),
    member_count: r.member_count,
    message_count: r.message_count,
  };
}

/** Federation: told of a member leaving, inside the leave's transaction (to forward it to the room's host). */
export type LeaveListener = (tx: Queryable, roomId: string, userId: string) => Promise<void>;

export class RoomsService {
  private leaveListener?: LeaveListener;
  /** What the group commit checks sends against, kept by this node's stream reader (see `roomsForSends`). */
  private readonly membership = new MembershipCache();

  constructor(
    private readonly db: Database,
    private readonly stream: EventStream,
    private readonly users: UsersService,
  ) {
    stream.onEvents((events) => this.membership.apply(events));
  }

  /**
   * Creates a room with the caller as owner. A direct room takes exactly one other member and is
   * unique per pair: creating it again returns the existing one with `created: false`.
   * @throws AppError VALIDATION_FAILED (400), INVALID_USER (404).
   */
  async create(
    userId: string,
    body: { type: RoomType; name?: string; topic?: string; members?: string[]; visibility?: 'public' | 'private'; encrypted?: boolean },
  ): Promise<{ room: RoomView; created: boolean }> {
    const others = [...new Set((body.members ?? []).filter((id) => id !== userId))];
    if (body.type === 'direct') {
      if (others.length !== 1) throw new AppError('VALIDATION_FAILED', 'A direct room needs exactly one other member');
      if (body.visibility === 'public') throw new AppError('VALIDATION_FAILED', 'Direct rooms are private');
    }
    if (body.visibility === 'public' && body.type !== 'channel') throw new AppError('VALIDATION_FAILED', 'Only channels can be public');
    await this.users.requireActive(others);

    const key = body.type === 'direct' ? directKey(userId, others[0]) : null;
    if (key) {
      const found = await repo.findDirect(this.db, key);
      if (found) return { room: roomView(found, await repo.listMembers(this.db, found.id)), created: false };
    }
    const result = await this.stream.write(async (tx) => {
      const room = await repo.insertRoom(tx, {
        type: body.type,
        name: body.name?.trim() ?? '',
        topic: body.topic ?? '',
        visibility: body.visibility ?? 'private',
        directKey: key,
        createdBy: userId,
        encrypted: body.encrypted ?? false,
      });
      if (!room) return null; // a concurrent create of the same direct room won
      await repo.insertMember(tx, room.id, userId, body.type === 'direct' ? 'member' : 'owner');
      for (const id of others) await repo.insertMember(tx, room.id, id, 'member');
      return this.emitUpdated(tx, room);
    });
    if (result) return { room: result, created: true };
    const found = await repo.findDirect(this.db, key!);
    return { room: roomView(found!, await repo.listMembers(this.db, found!.id)), created: false };
  }

  /** The caller's rooms: `[{id,type,name,topic,visibility,role,member_count,unread_count,last_message,...}]`. */
  async list(userId: string) {
    const rows = await repo.listRoomsForUser(this.db, userId);
    return rows.map((r: any) => ({
      id: r.id,
      type: r.type,
      name: r.name,
      topic: r.topic,
      visibility: r.visibility,
      allow_edits: r.allow_edits,
      encrypted: r.encrypted,
      created_at: r.created_at.toISOString(),
      role: r.role,
      member_count: r.member_count,
      unread_count: r.unread_count,
      last_message: r.lm_id
        ? {
            id: r.lm_id,
            user_id: r.lm_user_id,
            user_name: r.lm_user_name,
            content: r.lm_content,
            created_at: r.lm_created_at.toISOString(),
            stream_position: r.lm_stream_position,
            deleted: r.lm_deleted_at !== null,
          }
        : null,
    }));
  }

  /**
   * A room with its members. Members see any room they are in; anyone sees a public channel.
   * @throws AppError INVALID_ROOM (404), NOT_A_MEMBER (403).
   */
  async get(userId: string, roomId: string): Promise<RoomView> {
    const room = await this.requireRoom(this.db, roomId);
    const role = await repo.getRole(this.db, roomId, userId);
    if (!role && !(room.type === 'channel' && room.visibility === 'public')) throw notMember();
    return roomView(room, await repo.listMembers(this.db, roomId));
  }

  /** Ids of the rooms a user is a member of. */
  roomIdsFor(userId: string, opts: { unencrypted?: boolean } = {}): Promise<string[]> {
    return repo.roomIdsForUser(this.db, userId, opts.unencrypted ?? false);
  }

  /** Public channels anyone may join (a directory). */
  async listPublic(limit: number) {
    const rows = await repo.listPublicChannels(this.db, limit);
    return rows.map((r) => ({ id: r.id, name: r.name, topic: r.topic, member_count: r.member_count, created_at: r.created_at.toISOString() }));
  }

  /**
   * The caller's role in a room.
   * @throws AppError INVALID_ROOM (404), NOT_A_MEMBER (403).
   */
  async requireMember(q: Queryable, roomId: string, userId: string): Promise<{ room: RoomRow; role: Role }> {
    const room = await this.requireRoom(q, roomId);
    const role = await repo.getRole(q, roomId, userId);
    if (!role) throw notMember();
    return { room, role };
  }

  /** Changes name, topic, visibility, whether edits are allowed, or turns encryption on (admins; one way). */
  async update(userId: string, roomId: string, patch: { name?: string; topic?: string; visibility?: 'public' | 'private'; allow_edits?: boolean; encrypted?: boolean }) {
    if (patch.encrypted === false) throw new AppError('VALIDATION_FAILED', 'Encryption cannot be turned off');
    return this.stream.write(async (tx) => {
      await repo.lockRoom(tx, roomId);
      const { room, role } = await this.requireMember(tx, roomId, userId);
      assertCanEditRoom(room.type, role);
      if (patch.visibility === 'public' && room.type !== 'channel') throw new AppError('VALIDATION_FAILED', 'Only channels can be public');
      await repo.updateRoom(tx, roomId, { ...patch, name: patch.name?.trim() });
      return this.emitUpdated(tx, (await repo.findRoom(tx, roomId))!);
    });
  }

  /**
   * Deletes a room: members are removed and get `room.deleted` (with `deleted_by`); messages are kept.
   * Only the owner may, unless `asServerAdmin` (the admin API, which checks server-admin rights itself).
   * `alsoInTx` runs in the same transaction (the admin API's audit entry).
   * @throws AppError INVALID_ROOM (404), NOT_A_MEMBER / FORBIDDEN (403).
   */
  async delete(userId: string, roomId: string, opts: { asServerAdmin?: boolean; alsoInTx?: (tx: Queryable) => Promise<void> } = {}): Promise<void> {
    await this.stream.write(async (tx) => {
      await repo.lockRoom(tx, roomId);
      if (opts.asServerAdmin) await this.requireRoom(tx, roomId);
      else assertCanDeleteRoom((await this.requireMember(tx, roomId, userId)).role);
      const members = await repo.listMembers(tx, roomId);
      await repo.softDeleteRoom(tx, roomId);
      await appendRoomEvent(tx, roomEvents.roomDeleted(roomId, userId, members.map((m) => m.user_id)));
      await opts.alsoInTx?.(tx);
    });
  }

  /** Adds members (admins; group and channel rooms). Already-present users are ignored. */
  async addMembers(userId: string, roomId: string, userIds: string[]) {
    await this.users.requireActive(userIds);
    return this.stream.write(async (tx) => {
      await repo.lockRoom(tx, roomId);
      const { room, role } = await this.requireMember(tx, roomId, userId);
      assertCanAddMember(room.type, role);
      let added = 0;
      for (const id of userIds) if (await repo.insertMember(tx, roomId, id, 'member')) added++;
      return added ? this.emitUpdated(tx, room) : roomView(room, await repo.listMembers(tx, roomId));
    });
  }

  /** Removes another member (owner: anyone; admin: plain members). */
  async removeMember(userId: string, roomId: string, targetId: string) {
    if (targetId === userId) return this.leave(userId, roomId);
    return this.stream.write(async (tx) => {
      await repo.lockRoom(tx, roomId);
      const { room, role } = await this.requireMember(tx, roomId, userId);
      const target = await repo.getRole(tx, roomId, targetId);
      if (!target) throw new AppError('INVALID_USER', 'That user is not a member of this room');
      assertCanRemoveMember(room.type, role, target);
      await repo.deleteMember(tx, roomId, targetId);
      return this.emitUpdated(tx, room, [targetId]);
    });
  }

  /** Sets a member's role (owner). Setting `owner` hands ownership over; the caller becomes admin. */
  async setRole(userId: string, roomId: string, targetId: string, newRole: Role) {
    return this.stream.write(async (tx) => {
      await repo.lockRoom(tx, roomId);
      const { room, role } = await this.requireMember(tx, roomId, userId);
      assertCanSetRole(room.type, role);
      if (!(await repo.getRole(tx, roomId, targetId))) throw new AppError('INVALID_USER', 'That user is not a member of this room');
      if (targetId === userId) throw new AppError('FORBIDDEN', 'Hand ownership to someone else instead');
      await repo.setRole(tx, roomId, targetId, newRole);
      if (newRole === 'owner') await repo.setRole(tx, roomId, userId, 'admin');
      return this.emitUpdated(tx, room);
    });
  }

  /** Joins a public channel. Joining a room one is already in is a no-op. */
  async join(userId: string, roomId: string) {
    return this.stream.write(async (tx) => {
      await repo.lockRoom(tx, roomId);
      const room = await this.requireRoom(tx, roomId);
      if (await repo.getRole(tx, roomId, userId)) return roomView(room, await repo.listMembers(tx, roomId));
      if (room.type !== 'channel' || room.visibility !== 'public') throw new AppError('FORBIDDEN', 'Only public channels can be joined');
      await repo.insertMember(tx, roomId, userId, 'member');
      return this.emitUpdated(tx, room);
    });
  }

  /**
   * Leaves a room. An owner who leaves hands ownership to the longest-standing admin (else member).
   * @throws AppError FORBIDDEN (direct rooms cannot be left), INVALID_ROOM, NOT_A_MEMBER.
   */
  async leave(userId: string, roomId: string) {
    return this.stream.write(async (tx) => {
      await repo.lockRoom(tx, roomId);
      const { room, role } = await this.requireMember(tx, roomId, userId);
      assertCanLeave(room.type);
      await repo.deleteMember(tx, roomId, userId);
      if (role === 'owner') {
        const heir = nextOwner(await repo.listMembers(tx, roomId));
        if (heir) await repo.setRole(tx, roomId, heir, 'owner');
      }
      await this.leaveListener?.(tx, roomId, userId);
      return this.emitUpdated(tx, room, [userId]);
    });
  }

  /** Federation: `listener` hears of every leave, in its transaction. */
  onLeave(listener: LeaveListener): void {
    this.leaveListener = listener;
  }

  /**
   * The room of a bridge portal, inside the bridge's transaction (it holds its own lock on the remote
   * chat): created when `roomId` is null (a private group owned by `ownerId`), else locked like every
   * membership change; then `members` not yet in it are added. Emits `room.updated` when anything
   * changed.
   * @returns the room id and whether it changed.
   */
  async ensurePortalRoom(
    tx: Queryable,
    p: { roomId: string | null; name: string; topic: string; ownerId: string; members: string[] },
  ): Promise<{ roomId: string; changed: boolean }> {
    let roomId = p.roomId;
    let changed = false;
    if (!roomId) {
      const room = (await repo.insertRoom(tx, { type: 'group', name: p.name.trim(), topic: p.topic, visibility: 'private', directKey: null, createdBy: p.ownerId, encrypted: false }))!;
      roomId = room.id;
      await repo.insertMember(tx, roomId, p.ownerId, 'owner');
      changed = true;
    } else {
      await repo.lockRoom(tx, roomId);
    }
    for (const id of p.members) if (await repo.insertMember(tx, roomId, id, 'member')) changed = true;
    if (changed) await this.emitUpdated(tx, (await repo.findRoom(tx, roomId))!);
    return { roomId, changed };
  }

  /** Member ids of a room. */
  memberIds(q: Queryable, roomId: string): Promise<string[]> {
    return repo.memberIds(q, roomId);
  }

  /** Member ids of each of `roomIds`: room id -> user ids. */
  memberIdsOf(q: Queryable, roomIds: string[]): Promise<Map<string, string[]>> {
    return repo.memberIdsOf(q, roomIds);
  }

  /**
   * For a batch of sends, inside `EventStream.writeLocked` (the stream lock held since BEGIN): rooms
   * `roomIds` with their members' names and settings, exact for this transaction. From this node's
   * membership cache where it is exact at `membershipPosition`, the others read from the tables
   * (one statement) and cached. No row is locked: a membership change not yet committed appends its
   * `room.updated` after this transaction commits, so it orders after the batch's sends.
   * @returns room id -> its entry; a room that does not exist is absent.
   */
  async roomsForSends(tx: Queryable, roomIds: string[], membershipPosition: number): Promise<Map<string, CachedRoom>> {
    const found = new Map<string, CachedRoom>();
    const missing: string[] = [];
    for (const id of roomIds) {
      const entry = this.membership.exactAt(id, membershipPosition);
      if (entry) found.set(id, entry);
      else missing.push(id);
    }
    if (missing.length === 0) return found;
    for (const r of await repo.roomsForSends(tx, missing)) {
      const entry: CachedRoom = { position: membershipPosition, live: r.live, encrypted: r.encrypted, members: new Map(r.members) };
      this.membership.fill(r.id, entry);
      found.set(r.id, entry);
    }
    return found;
  }

  /**
   * Runs a change of a user's name or avatar (`change`, in a stream transaction) and, when
   * `changedUserId` names the user it changed, appends `room.updated` to each of that user's rooms:
   * members' lists show the new profile, and every node's membership cache (the sender names of
   * new messages) follows it. Matrix does the same with a new membership event in each room
   * (https://spec.matrix.org/v1.11/client-server-api/#events-on-change-of-profile-information).
   * The rooms are locked first, in id order, like every membership change.
   * @returns what `change` returns.
   */
  changeProfile<T>(change: (tx: Queryable) => Promise<T>, changedUserId: (result: T) => string | null): Promise<T> {
    return this.stream.write(async (tx) => {
      const result = await change(tx);
      const userId = changedUserId(result);
      if (!userId) return result;
      const roomIds = (await repo.roomIdsForUser(tx, userId)).sort();
      for (const id of roomIds) await repo.lockRoom(tx, id);
      const events = [];
      for (const id of roomIds) {
        const room = await repo.findRoom(tx, id);
        if (room && !room.deleted_at) events.push(roomEvents.roomUpdated(roomView(room, await repo.listMembers(tx, id))));
      }
      if (events.length) await appendRoomEvents(tx, events);
      return result;
    });
  }

  /** Everyone who shares a room with `userId`, and `userId` (who sees their presence). */
  coMemberIds(userId: string): Promise<string[]> {
    return repo.coMemberIds(this.db, userId);
  }

  /** Those of `ids` that are `viewerId` or share a room with them. */
  sharingARoomWith(viewerId: string, ids: string[]): Promise<string[]> {
    return repo.sharingARoomWith(this.db, viewerId, ids);
  }

  /** Ids of the rooms where one of bridge `bridgeId`'s users (bot or ghost) is a member. */
  roomIdsWithBridgeMembers(bridgeId: string): Promise<string[]> {
    return repo.roomIdsWithBridgeMembers(this.db, bridgeId);
  }

  /** True when `userId` is a member of one of `roomIds`. */
  isMemberOfAny(userId: string, roomIds: string[]): Promise<boolean> {
    return roomIds.length ? repo.isMemberOfAny(this.db, userId, roomIds) : Promise.resolve(false);
  }

  /**
   * Moves a member's cumulative read receipt forward to stream position `position` (message
   * `messageId`), inside the caller's transaction.
   * @returns when it moved, or null when it already was there or further.
   */
  advanceReadReceipt(tx: Queryable, roomId: string, userId: string, messageId: string, position: number): Promise<Date | null> {
    return repo.advanceReadReceipt(tx, roomId, userId, messageId, position);
  }

  /** A member's read receipt as it stands; both null when nothing was marked read yet. */
  readReceipt(q: Queryable, roomId: string, userId: string): Promise<{ read_message_id: string | null; read_at: Date | null }> {
    return repo.readReceipt(q, roomId, userId);
  }

  /**
   * Where each member's read receipt stands (members who have read nothing are left out), for the
   * room's members. `stream_position`: that of the message read.
   * @throws AppError INVALID_ROOM (404), NOT_A_MEMBER (403).
   */
  async readReceipts(userId: string, roomId: string) {
    await this.requireMember(this.db, roomId, userId);
    return (await repo.readReceipts(this.db, roomId)).map((r) => ({ ...r, read_at: r.read_at.toISOString() }));
  }

  /** A page of rooms (not deleted) for admins, newest first, with member and message counts: `{rooms, total}`. `q` matches the name. */
  async page(f: { q?: string; limit: number; offset: number }) {
    const { rows, total } = await repo.page(this.db, f);
    return { rooms: rows.map(roomPageView), total };
  }

  /** Rooms not deleted. */
  count(): Promise<number> {
    return repo.count(this.db);
  }

  /**
   * Federation: makes this hub's copy of a room another hub hosts match the host's state (room
   * fields and the full member list with roles, as user ids of this hub), under the host's room id,
   * and appends `room.updated`. Local clients see it like any room change. `alsoInTx` runs in the
   * same transaction, once the room row exists.
   */
  async applyReplica(
    room: { id: string; type: RoomType; name: string; topic: string; visibility: 'public' | 'private'; allow_edits: boolean },
    members: { userId: string; role: Role }[],
    alsoInTx?: (tx: Queryable) => Promise<void>,
  ): Promise<void> {
    await this.stream.write(async (tx) => {
      const key = room.type === 'direct' && members.length === 2 ? directKey(members[0].userId, members[1].userId) : null;
      await repo.upsertReplica(tx, { ...room, directKey: key });
      await alsoInTx?.(tx);
      await repo.lockRoom(tx, room.id);
      const current = new Map((await repo.listMembers(tx, room.id)).map((m) => [m.user_id, m.role]));
      const wanted = new Map(members.map((m) => [m.userId, m.role]));
      const removed = [...current.keys()].filter((id) => !wanted.has(id));
      for (const id of removed) await repo.deleteMember(tx, room.id, id);
      for (const [id, role] of wanted) {
        if (!current.has(id)) await repo.insertMember(tx, room.id, id, role);
        else if (current.get(id) !== role) await repo.setRole(tx, room.id, id, role);
      }
      await this.emitUpdated(tx, (await repo.findRoom(tx, room.id))!, removed);
    });
  }

  private async requireRoom(q: Queryable, roomId: string): Promise<RoomRow> {
    const room = await repo.findRoom(q, roomId);
    if (!room) throw new AppError('INVALID_ROOM', 'Room not found');
    return room;
  }

  /** Appends `room.updated` with the room as it now is. `removed`: users who must still hear of it. */
  private async emitUpdated(tx: Queryable, room: RoomRow, removed: string[] = []): Promise<RoomView> {
    const view = roomView(room, await repo.listMembers(tx, room.id));
    await appendRoomEvent(tx, roomEvents.roomUpdated(view, removed));
    return view;
  }
}

function notMember(): AppError {
  return new AppError('NOT_A_MEMBER', 'You are not a member of this room');
}
