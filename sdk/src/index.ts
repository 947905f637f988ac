/** @switchboard/sdk: a client for the Switchboard chat hub (README.md beside this folder). */
export { SwitchboardClient, type ClientOptions, type MessageTransform } from './client.js';
export { SwitchboardError } from './errors.js';
export { isRoomEvent, type ClientFrame, type EventMessage, type EventOf, type EphemeralEvent, type PresenceStatus, type RoomEvent, type SendFrame, type ServerEvent, type ServerEventType } from './events.js';
export { Outbox, type OutboxItem } from './outbox.js';
export { RealtimeConnection, type ConnectionState, type WebSocketConstructor, type WebSocketLike } from './realtime.js';
export { MemorySessionStore, type SessionStore, type StoredSession } from './session.js';
export { RoomStore, type PresenceState, type RoomState, type StoredMessage } from './store.js';
export type * from './types.js';
