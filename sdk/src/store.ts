/**
 * A small room store a UI can render: the caller's rooms (with members, unread counts, the last
 * message), each room's loaded messages in stream order, typing, presence and read receipts. It is
 * fed REST answers (`setRooms`, `setRoom`, `addHistory`) and socket events (`apply`); `subscribe`
 * calls back after every change, and `version` grows with each, so a UI can re-render cheaply.
 *
 * Messages are keyed by id: a message that arrives both in a REST page and as an event is kept once.
 */
import type { EventMessage, PresenceStatus, ServerEvent } from './events.js';
import type { Message, PublicUser, Room, RoomMember, RoomSummary } from './types.js';

/** A message as the store holds it (`stream_position` always known). */
export type StoredMessage = EventMessage & { stream_position: number };

export interface RoomState {
  id: string;
  type: Room['type'];
  name: string;
  topic: string;
  visibility: Room['visibility'];
  allow_edits: boolean;
  /** True for end-to-end encrypted rooms (set by hubs with E2EE): their content is for E2EE devices. */
  encrypted: boolean;
  /** The caller's role. */
  role: RoomMember['role'];
  members: RoomMember[];
  unread_count: number;
  /** Stream position of the latest activity (for ordering the list). */
  last_position: number;
  last_message: Pick<StoredMessage, 'id' | 'user_id' | 'user_name' | 'content' | 'created_at' | 'stream_position' | 'deleted'> | null;
  /** Loaded messages, oldest first. */
  messages: StoredMessage[];
  /** Whether older messages exist than the first loaded one (unknown until a page was loaded: true). */
  has_more_before: boolean;
  /** Whether a page of history was loaded. */
  history_loaded: boolean;
  /** Users typing now (not the caller), by id, with their names. */
  typing: Map<string, string>;
  /** Each other member's read receipt: the stream position of the last message they read. */
  read_positions: Map<string, number>;
}

export interface PresenceState {
  status: PresenceStatus;
  status_text: string;
  last_seen: string | null;
}

const TYPING_EXPIRY_MS = 15_000;

export class RoomStore {
  private readonly roomsById = new Map<string, RoomState>();
  private readonly presenceById = new Map<string, PresenceState>();
  private readonly usersById = new Map<string, PublicUser>();
  private readonly typingTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly listeners = new Set<() => void>();
  private changes = 0;

  constructor(readonly userId: string) {}

  /** Grows with every change. */
  get version(): number {
    return this.changes;
  }

  /** Calls `listener` after every change. @returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The rooms, most recently active first. */
  rooms(): RoomState[] {
    return [...this.roomsById.values()].sort((a, b) => b.last_position - a.last_position);
  }

  room(id: string): RoomState | undefined {
    return this.roomsById.get(id);
  }

  presence(userId: string): PresenceState | undefined {
    return this.presenceById.get(userId);
  }

  /** A user's public profile, when loaded (`setUsers`): carries `bridge_id` for bridge ghosts. */
  user(userId: string): PublicUser | undefined {
    return this.usersById.get(userId);
  }

  /** The other member of a direct room (undefined for other rooms). */
  directPeer(room: RoomState): RoomMember | undefined {
    return room.type === 'direct' ? room.members.find((m) => m.user_id !== this.userId) : undefined;
  }

  /** A name to show: the room's, or for a direct room the other member's. */
  displayName(room: RoomState): string {
    return room.name || this.directPeer(room)?.name || room.members.filter((m) => m.user_id !== this.userId).map((m) => m.name).join(', ') || 'Empty room';
  }

  /** The ids of everyone sharing a room with the caller (for presence and profile look-ups). */
  coMemberIds(): string[] {
    const ids = new Set<string>();
    for (const room of this.roomsById.values()) for (const m of room.members) if (m.user_id !== this.userId) ids.add(m.user_id);
    return [...ids];
  }

  /** The message, if loaded in its room. */
  message(roomId: string, messageId: string): StoredMessage | undefined {
    return this.roomsById.get(roomId)?.messages.find((m) => m.id === messageId);
  }

  /** Whether another member's read receipt covers the caller's message (read marks). */
  isRead(room: RoomState, message: StoredMessage): boolean {
    for (const [userId, position] of room.read_positions) if (userId !== message.user_id && position >= message.stream_position) return true;
    return false;
  }

  /** The room list (GET /api/rooms) with each room's members (GET /api/rooms/:id). Replaces what was known. */
  setRooms(list: { summary: RoomSummary; room: Room }[]): void {
    const keep = new Set(list.map((r) => r.summary.id));
    for (const id of this.roomsById.keys()) if (!keep.has(id)) this.roomsById.delete(id);
    for (const { summary, room } of list) {
      const existing = this.roomsById.get(summary.id);
      const state = this.upsert(room, summary.role);
      state.unread_count = summary.unread_count;
      if (summary.last_message && (!existing || summary.last_message.stream_position >= state.last_position)) {
        state.last_message = summary.last_message;
        state.last_position = summary.last_message.stream_position;
      }
    }
    this.changed();
  }

  /** A room as GET /api/rooms/:id or `room.updated` has it (a newly joined one is added). */
  setRoom(room: Room): void {
    if (!room.members.some((m) => m.user_id === this.userId)) this.roomsById.delete(room.id);
    else this.upsert(room);
    this.changed();
  }

  /** A page of history (oldest first). `older`: it precedes what is loaded (else it is the latest page). */
  addHistory(roomId: string, page: { messages: Message[]; has_more: boolean }, older: boolean): void {
    const room = this.roomsById.get(roomId);
    if (!room) return;
    for (const m of page.messages) this.putMessage(room, m as StoredMessage);
    if (older || !room.history_loaded) room.has_more_before = page.has_more;
    room.history_loaded = true;
    this.changed();
  }

  /** Read receipts as GET /api/rooms/:id/receipts lists them (receipts only move forward). */
  setReceipts(roomId: string, receipts: { user_id: string; stream_position: number }[]): void {
    const room = this.roomsById.get(roomId);
    if (!room) return;
    for (const r of receipts) if ((room.read_positions.get(r.user_id) ?? 0) < r.stream_position) room.read_positions.set(r.user_id, r.stream_position);
    this.changed();
  }

  /** Presence answers (POST /api/presence/query) or `presence` events. */
  setPresence(list: ({ user_id: string } & PresenceState)[]): void {
    for (const p of list) this.presenceById.set(p.user_id, { status: p.status, status_text: p.status_text, last_seen: p.last_seen });
    this.changed();
  }

  /** Public profiles (GET /api/users/:id). */
  setUsers(users: PublicUser[]): void {
    for (const u of users) this.usersById.set(u.id, u);
    this.changed();
  }

  /** Applies a socket event. Unknown rooms' events are ignored (a `room.updated` adds the room first). */
  apply(event: ServerEvent): void {
    switch (event.type) {
      case 'room.updated':
        return this.setRoom(event.room);
      case 'room.deleted':
        this.roomsById.delete(event.room_id);
        return this.changed();
      case 'presence':
        return this.setPresence([event]);
      default:
        break;
    }
    const room = 'room_id' in event ? this.roomsById.get(event.room_id) : undefined;
    if (!room) return;
    switch (event.type) {
      case 'message.new': {
        const message = { ...event.message, stream_position: event.stream_position };
        const isNew = this.putMessage(room, message);
        if (isNew && message.user_id !== this.userId) room.unread_count++;
        room.typing.delete(message.user_id);
        break;
      }
      case 'message.edited':
        this.updateMessage(room, event.message_id, (m) => ({ ...m, content: event.content, edited_at: event.edited_at }));
        break;
      case 'message.deleted':
        this.updateMessage(room, event.message_id, (m) => ({ ...m, content: '', attachments: [], reactions: [], mentions: [], deleted: true }));
        break;
      case 'message.delivered':
        this.updateMessage(room, event.message_id, (m) => ({ ...m, delivered_at: m.delivered_at ?? event.delivered_at }));
        break;
      case 'message.read':
        this.applyRead(room, event.user_id, event.message_id, event.stream_position);
        break;
      case 'reaction.added':
      case 'reaction.removed':
        this.updateMessage(room, event.message_id, (m) => ({ ...m, reactions: reactionsAfter(m.reactions, event) }));
        break;
      case 'typing':
        if (event.user_id === this.userId) return;
        this.setTyping(room, event.user_id, event.user_name, event.typing);
        break;
      default:
        return;
    }
    this.changed();
  }

  /** Puts a message in stream order. @returns true when it was not there yet. */
  private putMessage(room: RoomState, message: StoredMessage): boolean {
    const i = room.messages.findIndex((m) => m.id === message.id);
    if (i >= 0) {
      // REST views carry reactions and delivery that a replayed message.new does not: keep the richer.
      const old = room.messages[i];
      room.messages[i] = { ...message, reactions: message.reactions.length ? message.reactions : old.reactions, delivered_at: message.delivered_at ?? old.delivered_at };
      return false;
    }
    let at = room.messages.length;
    while (at > 0 && room.messages[at - 1].stream_position > message.stream_position) at--;
    room.messages.splice(at, 0, message);
    if (message.stream_position >= room.last_position) {
      room.last_position = message.stream_position;
      room.last_message = message;
    }
    return true;
  }

  private updateMessage(room: RoomState, id: string, fn: (m: StoredMessage) => StoredMessage): void {
    const i = room.messages.findIndex((m) => m.id === id);
    if (i >= 0) room.messages[i] = fn(room.messages[i]);
    if (room.last_message?.id === id && i >= 0) room.last_message = room.messages[i];
  }

  private applyRead(room: RoomState, userId: string, messageId: string, eventPosition: number): void {
    const position = room.messages.find((m) => m.id === messageId)?.stream_position ?? eventPosition;
    if ((room.read_positions.get(userId) ?? 0) < position) room.read_positions.set(userId, position);
    if (userId !== this.userId) return;
    // The caller read up to there (on any device): what is unread is what others wrote after it.
    room.unread_count = room.history_loaded
      ? room.messages.filter((m) => m.stream_position > position && m.user_id !== this.userId && !m.deleted).length
      : room.last_message && room.last_message.stream_position > position ? room.unread_count : 0;
  }

  private setTyping(room: RoomState, userId: string, name: string, typing: boolean): void {
    const key = `${room.id}:${userId}`;
    clearTimeout(this.typingTimers.get(key));
    this.typingTimers.delete(key);
    if (!typing) return void room.typing.delete(userId);
    room.typing.set(userId, name);
    // The hub ends typing itself; this only covers a `typing:false` lost with a dropped socket.
    const timer = setTimeout(() => {
      this.typingTimers.delete(key);
      if (room.typing.delete(userId)) this.changed();
    }, TYPING_EXPIRY_MS);
    (timer as { unref?: () => void }).unref?.();
    this.typingTimers.set(key, timer);
  }

  private upsert(room: Room, role?: RoomMember['role']): RoomState {
    const me = room.members.find((m) => m.user_id === this.userId);
    const encrypted = room.encrypted;
    const existing = this.roomsById.get(room.id);
    if (existing) {
      Object.assign(existing, { type: room.type, name: room.name, topic: room.topic, visibility: room.visibility, allow_edits: room.allow_edits, encrypted, members: room.members });
      existing.role = me?.role ?? role ?? existing.role;
      return existing;
    }
    const state: RoomState = {
      id: room.id,
      type: room.type,
      name: room.name,
      topic: room.topic,
      visibility: room.visibility,
      allow_edits: room.allow_edits,
      encrypted,
      role: me?.role ?? role ?? 'member',
      members: room.members,
      unread_count: 0,
      last_position: 0,
      last_message: null,
      messages: [],
      has_more_before: true,
      history_loaded: false,
      typing: new Map(),
      read_positions: new Map(),
    };
    this.roomsById.set(room.id, state);
    return state;
  }

  private changed(): void {
    this.changes++;
    for (const l of this.listeners) l();
  }
}

/** A message's reactions after a `reaction.added` / `reaction.removed` (`count` is the hub's). */
function reactionsAfter(reactions: StoredMessage['reactions'], e: { type: string; user_id: string; key: string; count: number }): StoredMessage['reactions'] {
  const rest = reactions.filter((r) => r.key !== e.key);
  const old = reactions.find((r) => r.key === e.key);
  const users = (old?.user_ids ?? []).filter((id) => id !== e.user_id);
  if (e.type === 'reaction.added') users.push(e.user_id);
  if (e.count === 0) return rest;
  const next = { key: e.key, count: e.count, user_ids: users };
  return old ? reactions.map((r) => (r.key === e.key ? next : r)) : [...rest, next];
}
