/**
 * The room-event catalog: every persisted room event, as clients receive it (docs/WEBSOCKET_API.md),
 * as one discriminated union on `type`, with one constructor each. Writers append only what these
 * constructors build (`appendRoomEvent`); readers (the WebSocket fan-out, agents' waits, the search
 * indexer, the bridge pusher and the bridge kit) switch on `type` and read the payload without casts.
 *
 * The wire shapes of what events carry (a message, a room) are defined here too: they are the
 * protocol, shared by the REST views that produce them.
 */

/** An attachment as messages and the upload answer list it. URLs are relative to the hub. */
export interface AttachmentWire {
  id: string;
  url: string;
  filename: string;
  /** Bytes. */
  size: number;
  mime_type: string;
  /** Present when a thumbnail exists (images). */
  thumbnail_url?: string;
}

/** One reaction key on a message: how many users reacted with it, and who (in order). */
export interface ReactionWire {
  key: string;
  count: number;
  user_ids: string[];
}

/**
 * The ciphertext of an encrypted room's message for one device (docs/E2EE.md): from the sender's
 * Signal device `sender_device_id`; `type` is libsignal's CiphertextMessageType (2 Whisper, 3 PreKey,
 * 7 SenderKey); `body` standard base64.
 */
export interface EnvelopeWire {
  /**
   * The user whose device `sender_device_id` encrypted it: the message's sender, or for a bridge
   * ghost's message the bridge's bot (docs/BRIDGES.md). Absent on sender-key envelopes (the sender's).
   */
  sender_user_id?: string;
  sender_device_id: number;
  type: number;
  body: string;
}

/**
 * Where a message's envelopes are kept in its stored event: by recipient session (device) id, or
 * `"*"` for a sender-key ciphertext every device gets. Sockets get only their own (`envelopeFor`).
 */
export type StoredEnvelopes = Record<string, EnvelopeWire>;

/** The envelope of `envelopes` for a device session: its own, else a sender-key ciphertext, else null. */
export function envelopeFor(envelopes: StoredEnvelopes | null | undefined, deviceId: string | undefined): EnvelopeWire | null {
  if (!envelopes) return null;
  return (deviceId !== undefined ? envelopes[deviceId] : undefined) ?? envelopes['*'] ?? null;
}

/** A message (`message.new`, history, search hits). Times are ISO 8601. */
export interface MessageWire {
  id: string;
  room_id: string;
  user_id: string;
  user_name: string;
  content: string;
  created_at: string;
  edited_at: string | null;
  reply_to: string | null;
  attachments: AttachmentWire[];
  mentions: string[];
  reactions: ReactionWire[];
  stream_position: number;
  delivered_at: string | null;
  deleted: boolean;
  /** Sent in an encrypted room: `content` is empty and `envelope` carries the ciphertext. */
  encrypted: boolean;
  /** Encrypted messages: the receiving device's envelope (null when it has none); null otherwise. */
  envelope: EnvelopeWire | null;
}

export type Role = 'owner' | 'admin' | 'member';
export type RoomType = 'direct' | 'group' | 'channel';

/** A room member as room views list them. */
export interface RoomMemberWire {
  user_id: string;
  name: string;
  avatar_url: string | null;
  role: Role;
  joined_at: string;
}

/** A room with its members (`room.updated`, `GET /api/rooms/:id`). */
export interface RoomWire {
  id: string;
  type: RoomType;
  name: string;
  topic: string;
  visibility: 'public' | 'private';
  allow_edits: boolean;
  /** End-to-end encrypted (docs/E2EE.md): once on, never off. */
  encrypted: boolean;
  created_by: string | null;
  created_at: string;
  members: RoomMemberWire[];
}

/** The payload of each room event, minus `room_id` and `stream_position` (added on the way out). */
export type RoomEvent =
  /**
   * A message was sent. Its stored copy follows edits and redactions (a resume shows what is current).
   * Encrypted: the stored copy keeps every device's envelope in `envelopes`; each socket gets its own
   * as `message.envelope` (`forDevice`).
   */
  | { type: 'message.new'; message: Omit<MessageWire, 'stream_position'> & { envelopes?: StoredEnvelopes } }
  | { type: 'message.edited'; message_id: string; content: string; edited_at: string; editor_id: string; envelopes?: StoredEnvelopes; envelope?: EnvelopeWire | null }
  | { type: 'message.deleted'; message_id: string; deleted_by: string }
  /** A member's cumulative read receipt moved forward. */
  | { type: 'message.read'; message_id: string; user_id: string; read_at: string }
  /** `count`: the message's reactions with `key` now. */
  | { type: 'reaction.added'; message_id: string; user_id: string; key: string; count: number }
  | { type: 'reaction.removed'; message_id: string; user_id: string; key: string; count: number }
  /** The room as it now is, with its full member list (sockets join and leave rooms by it). */
  | { type: 'room.updated'; room: RoomWire }
  | { type: 'room.deleted'; room_id: string; deleted_by: string };

export type RoomEventType = RoomEvent['type'];
export type RoomEventOf<K extends RoomEventType> = Extract<RoomEvent, { type: K }>;

/** A room event as clients receive it: the payload plus `room_id` and `stream_position`. */
export type WireRoomEvent = RoomEvent & { room_id: string; stream_position: number };

/**
 * Typing: ephemeral (never stored), published on `room:<id>` and put in bridge transactions'
 * `ephemeral` list with `ts` (ms since the epoch, when the hub saw it).
 */
export interface TypingEvent {
  type: 'typing';
  room_id: string;
  user_id: string;
  user_name: string;
  typing: boolean;
  ts?: number;
}

/**
 * The body of an appservice transaction, `PUT {bridge url}/transactions/{txn_id}` (docs/BRIDGES.md):
 * room events in stream order, and the ephemeral ones (read receipts, typing).
 */
export interface BridgeTransaction {
  events: WireRoomEvent[];
  ephemeral: (WireRoomEvent | TypingEvent)[];
}

/** A room event to append (`appendRoomEvent`). */
export interface NewRoomEvent {
  room_id: string;
  payload: RoomEvent;
  /** Users to reach besides the room's current members (those just removed, or who left). */
  notify_user_ids?: string[];
}

/**
 * An event as one device session receives it: an encrypted message's (or edit's) stored `envelopes`
 * replaced by that device's `envelope`. Other events are returned as they are.
 */
export function forDevice(event: RoomEvent, deviceId: string | undefined): RoomEvent {
  if (event.type === 'message.new' && event.message.envelopes) {
    const { envelopes, ...message } = event.message;
    return { ...event, message: { ...message, envelope: envelopeFor(envelopes, deviceId) } };
  }
  if (event.type === 'message.edited' && event.envelopes) {
    const { envelopes, ...rest } = event;
    return { ...rest, envelope: envelopeFor(envelopes, deviceId) };
  }
  return event;
}

/** True when an event carries envelopes for several devices, so each socket needs its own encoding. */
export function isPerDevice(event: RoomEvent): boolean {
  return (event.type === 'message.new' && !!event.message.envelopes) || (event.type === 'message.edited' && !!event.envelopes);
}

/** The constructors: the only way events are made. */
export const roomEvents = {
  messageNew(message: Omit<MessageWire, 'stream_position'> & { envelopes?: StoredEnvelopes }): NewRoomEvent {
    return { room_id: message.room_id, payload: { type: 'message.new', message } };
  },

  messageEdited(roomId: string, e: { message_id: string; content: string; edited_at: string; editor_id: string; envelopes?: StoredEnvelopes }): NewRoomEvent {
    return { room_id: roomId, payload: { type: 'message.edited', ...e } };
  },

  messageDeleted(roomId: string, messageId: string, deletedBy: string): NewRoomEvent {
    return { room_id: roomId, payload: { type: 'message.deleted', message_id: messageId, deleted_by: deletedBy } };
  },

  messageRead(roomId: string, r: { message_id: string; user_id: string; read_at: string }): NewRoomEvent {
    return { room_id: roomId, payload: { type: 'message.read', ...r } };
  },

  /** `added`: `reaction.added`, else `reaction.removed`. */
  reaction(roomId: string, added: boolean, r: { message_id: string; user_id: string; key: string; count: number }): NewRoomEvent {
    return { room_id: roomId, payload: { type: added ? 'reaction.added' : 'reaction.removed', ...r } };
  },

  /** @param removed users no longer members who must still get this event (removed, left). */
  roomUpdated(room: RoomWire, removed: string[] = []): NewRoomEvent {
    return { room_id: room.id, payload: { type: 'room.updated', room }, notify_user_ids: removed };
  },

  /** @param members the members at deletion: they get the event, then leave the room. */
  roomDeleted(roomId: string, deletedBy: string, members: string[]): NewRoomEvent {
    return { room_id: roomId, payload: { type: 'room.deleted', room_id: roomId, deleted_by: deletedBy }, notify_user_ids: members };
  },
};

/** The user ids of a room's members after a membership event (`room.updated`: its list; `room.deleted`: none); null for other events. */
export function membersAfter(event: RoomEvent): Set<string> | null {
  if (event.type === 'room.updated') return new Set(event.room.members.map((m) => m.user_id));
  if (event.type === 'room.deleted') return new Set();
  return null;
}

/** The message a message event is about (`message.new`, `.edited`, `.deleted`); null for other events. */
export function messageIdOf(event: RoomEvent): string | null {
  switch (event.type) {
    case 'message.new':
      return event.message.id;
    case 'message.edited':
    case 'message.deleted':
      return event.message_id;
    default:
      return null;
  }
}
