/**
 * The WebSocket protocol's events and frames (docs/WEBSOCKET_API.md). The message and room shapes
 * they carry are the REST API's generated ones (./types.ts).
 */
import type { ErrorCode, Message, Room } from './types.js';

/** A message as `message.new` carries it (the REST view without its own `stream_position`). */
export type EventMessage = Omit<Message, 'stream_position'> & { stream_position?: number };

/** Persisted room events: each has `room_id` and `stream_position`, strictly increasing per socket. */
export type RoomEvent = { room_id: string; stream_position: number } & (
  | { type: 'message.new'; message: EventMessage }
  | { type: 'message.edited'; message_id: string; content: string; edited_at: string; editor_id: string }
  | { type: 'message.deleted'; message_id: string; deleted_by: string }
  | { type: 'message.read'; message_id: string; user_id: string; read_at: string }
  | { type: 'reaction.added' | 'reaction.removed'; message_id: string; user_id: string; key: string; count: number }
  | { type: 'room.updated'; room: Room }
  | { type: 'room.deleted'; deleted_by: string }
);

/** Ephemeral events: never stored nor replayed. */
export type EphemeralEvent =
  | { type: 'ready'; user_id: string; device_id: string; stream_position: number; resumed: number }
  | { type: 'message.sent'; txn_id: string | null; message_id: string; room_id: string; stream_position: number; created_at: string; duplicate: boolean; pending?: true }
  | { type: 'message.delivered'; message_id: string; room_id: string; delivered_at: string }
  | { type: 'typing'; room_id: string; user_id: string; user_name: string; typing: boolean }
  | { type: 'presence'; user_id: string; status: PresenceStatus; status_text: string; last_seen: string | null }
  | { type: 'pong'; txn_id?: string }
  | { type: 'error'; code: ErrorCode; message: string; txn_id?: string; retry_after_ms?: number };

export type ServerEvent = RoomEvent | EphemeralEvent;
export type ServerEventType = ServerEvent['type'];
export type EventOf<T extends ServerEventType> = Extract<ServerEvent, { type: T }>;
export type PresenceStatus = 'online' | 'away' | 'busy' | 'offline';

/** A `message.send` frame; `txn_id` makes it idempotent (the outbox always sets one). */
export interface SendFrame {
  type: 'message.send';
  room_id: string;
  content: string;
  txn_id: string;
  reply_to?: string;
  attachments?: string[];
  /** Fields an E2EE layer adds (e.g. an envelope instead of content), passed through as they are. */
  [extra: string]: unknown;
}

/** The frames a client sends (docs/WEBSOCKET_API.md, "Client frames"). */
export type ClientFrame =
  | SendFrame
  | { type: 'typing.start' | 'typing.stop'; room_id: string }
  | { type: 'message.read'; room_id: string; message_id: string }
  | { type: 'presence.update'; status: PresenceStatus; status_text?: string }
  | { type: 'reaction.add' | 'reaction.remove'; message_id: string; key: string; txn_id?: string }
  | { type: 'ping'; txn_id?: string };

const ROOM_EVENT_TYPES = new Set(['message.new', 'message.edited', 'message.deleted', 'message.read', 'reaction.added', 'reaction.removed', 'room.updated', 'room.deleted']);

/** True for persisted room events (those with a `stream_position` that `since` resumes from). */
export function isRoomEvent(event: ServerEvent): event is RoomEvent {
  return ROOM_EVENT_TYPES.has(event.type);
}
