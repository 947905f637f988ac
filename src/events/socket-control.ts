/**
 * The contract between services and the WebSocket transport for closing sockets: the close codes
 * clients see (docs/WEBSOCKET_API.md) and the control message that asks every node to close a device's
 * (or a user's) sockets. Services publish it with `closeSockets`; the transport's fan-out acts on it.
 */
import type { PubSub } from './pubsub.js';

/** WebSocket close codes used by the hub (documented in docs/WEBSOCKET_API.md). */
export const CLOSE = {
  /** Session revoked, logged out, or user deactivated. Do not reconnect with the same token. */
  UNAUTHORIZED: 4401,
  /** The client did not read fast enough; reconnect with `?since=<last stream_position>`. */
  SLOW_CONSUMER: 4408,
  /** The server is shutting down; reconnect with `since`. */
  GOING_AWAY: 1001,
  /** The server failed to set the socket up; reconnect with `since`. */
  INTERNAL_ERROR: 1011,
} as const;

/** A control message on `user:<id>`: close that user's sockets of `device_id`, or all of them. */
export interface CloseSocketsControl {
  type: '_control.close';
  device_id?: string;
  code: number;
  reason: string;
}

/**
 * Closes the sockets of a user on every node (through the pub/sub topic `user:<id>`): those of
 * `deviceId` only, or all of the user's when it is omitted.
 */
export function closeSockets(pubsub: PubSub, userId: string, opts: { deviceId?: string; code: number; reason: string }): Promise<void> {
  const control: CloseSocketsControl = { type: '_control.close', code: opts.code, reason: opts.reason, ...(opts.deviceId ? { device_id: opts.deviceId } : {}) };
  return pubsub.publish(`user:${userId}`, control);
}

/** True when a message on `user:<id>` is the close control rather than an event for the client. */
export function isCloseControl(message: unknown): message is CloseSocketsControl {
  return (message as { type?: unknown } | null)?.type === '_control.close';
}

/** A message on `user:<id>` for the sockets of one device only: they get `event` (E2EE to-device messages, key counts). */
export interface DeviceEventControl {
  type: '_control.device';
  device_id: string;
  event: object;
}

/** Sends `event` to the sockets of one device session of a user, on every node (through `user:<id>`). */
export function sendToDeviceSockets(pubsub: PubSub, userId: string, deviceId: string, event: object): Promise<void> {
  const control: DeviceEventControl = { type: '_control.device', device_id: deviceId, event };
  return pubsub.publish(`user:${userId}`, control);
}

/** True when a message on `user:<id>` is for one device's sockets (`sendToDeviceSockets`). */
export function isDeviceEvent(message: unknown): message is DeviceEventControl {
  return (message as { type?: unknown } | null)?.type === '_control.device';
}
