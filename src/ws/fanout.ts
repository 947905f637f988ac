/**
 * The node-local router: which of this node's sockets get which event. Room events come from the
 * EventStream reader (already in stream order); ephemeral events come from the pub/sub topics
 * `room:<id>` and `user:<id>`, subscribed while at least one local socket needs them.
 *
 * Membership is tracked from the stream itself: a `room.updated` carries the full member list, so a
 * socket starts receiving a room's events from the event that added its user, and gets the event that
 * removed its user, then no more.
 */
import type { Logger } from 'pino';
import { membersAfter } from '../events/catalog.js';
import { isCloseControl, isDeviceEvent } from '../events/socket-control.js';
import type { WebSocket } from 'ws';
import type { AuthContext } from '../modules/auth/auth.service.js';
import { Connection } from './connection.js';
import type { PubSub } from '../events/pubsub.js';
import type { EventStream, StreamEvent } from '../events/stream.js';

/** Told of every room event written to a local socket, live or during a catch-up (`conn.isLive`). */
export type WrittenListener = (event: StreamEvent, conn: Connection) => void;

export class Fanout {
  private readonly byUser = new Map<string, Set<Connection>>();
  private readonly byRoom = new Map<string, Set<Connection>>();
  private readonly topicSubs = new Map<string, () => void>();
  private readonly writtenListeners = new Set<WrittenListener>();
  private readonly stopReading: () => void;

  constructor(
    private readonly pubsub: PubSub,
    private readonly stream: EventStream,
    private readonly log: Logger,
  ) {
    this.stopReading = stream.onEvents((events) => this.dispatch(events));
  }

  /**
   * A connection for a new socket, starting at this node's current stream position (its snapshot:
   * the catch-up reads back whatever is dispatched before it is registered). Not yet registered.
   * @param maxQueueBytes the socket's send-queue bound (`limits.max_send_queue_bytes`).
   */
  open(socket: WebSocket, auth: AuthContext, maxQueueBytes: number): Connection {
    return new Connection(socket, auth, this.stream.position, maxQueueBytes, (conn, event) => {
      for (const listener of this.writtenListeners) {
        try {
          listener(event, conn);
        } catch (err) {
          this.log.error({ err }, 'written listener failed');
        }
      }
    });
  }

  /** Listens to every room event written to a local socket. @returns a function that stops it. */
  onWritten(listener: WrittenListener): () => void {
    this.writtenListeners.add(listener);
    return () => this.writtenListeners.delete(listener);
  }

  /**
   * Registers a socket under its user: from now on it gets the user's events and any room.updated that
   * adds the user (buffered until the socket is live).
   */
  add(conn: Connection): void {
    this.index(this.byUser, conn.userId, conn, `user:${conn.userId}`, (m) => this.onUserTopic(conn.userId, m));
  }

  /**
   * Subscribes a registered socket to rooms' events: `roomIds` as read from the database since it was
   * registered. Membership events dispatched to it meanwhile may be newer than that read (a removal
   * committed and dispatched while it ran), so they are applied again on top of it, in stream order.
   */
  joinRooms(conn: Connection, roomIds: string[]): void {
    for (const roomId of roomIds) this.joinRoom(conn, roomId);
    for (const event of conn.buffered) {
      const members = membersAfter(event.payload);
      if (!members) continue;
      if (members.has(conn.userId)) this.joinRoom(conn, event.room_id);
      else this.leaveRoom(conn, event.room_id);
    }
  }

  remove(conn: Connection): void {
    this.unindex(this.byUser, conn.userId, conn, `user:${conn.userId}`);
    for (const roomId of [...conn.rooms]) this.leaveRoom(conn, roomId);
  }

  /** Number of open sockets of a user on this node. */
  socketCount(userId: string): number {
    return this.byUser.get(userId)?.size ?? 0;
  }

  get connectionCount(): number {
    let n = 0;
    for (const set of this.byUser.values()) n += set.size;
    return n;
  }

  /** Every local socket (shutdown). */
  all(): Connection[] {
    return [...this.byUser.values()].flatMap((s) => [...s]);
  }

  close(): void {
    this.stopReading();
    for (const unsubscribe of this.topicSubs.values()) unsubscribe();
    this.topicSubs.clear();
  }

  private dispatch(events: StreamEvent[]): void {
    for (const event of events) {
      const recipients = new Set(this.byRoom.get(event.room_id) ?? []);
      for (const userId of event.notify_user_ids) for (const c of this.byUser.get(userId) ?? []) recipients.add(c);
      const members = membersAfter(event.payload);
      if (members && event.type === 'room.updated') {
        for (const userId of members) {
          for (const c of this.byUser.get(userId) ?? []) {
            if (!c.rooms.has(event.room_id)) this.joinRoom(c, event.room_id);
            recipients.add(c);
          }
        }
      }
      for (const c of recipients) c.deliver(event);
      if (members) for (const c of recipients) if (!members.has(c.userId)) this.leaveRoom(c, event.room_id);
    }
  }

  private onUserTopic(userId: string, message: unknown): void {
    const conns = [...(this.byUser.get(userId) ?? [])];
    if (isCloseControl(message)) {
      for (const c of conns) if (!message.device_id || c.auth.deviceId === message.device_id) c.close(message.code, message.reason);
      return;
    }
    if (isDeviceEvent(message)) {
      for (const c of conns) if (c.auth.deviceId === message.device_id) c.send(message.event);
      return;
    }
    for (const c of conns) c.send(message);
  }

  private joinRoom(conn: Connection, roomId: string): void {
    conn.rooms.add(roomId);
    this.index(this.byRoom, roomId, conn, `room:${roomId}`, (m) => {
      for (const c of this.byRoom.get(roomId) ?? []) c.send(m);
    });
  }

  private leaveRoom(conn: Connection, roomId: string): void {
    conn.rooms.delete(roomId);
    this.unindex(this.byRoom, roomId, conn, `room:${roomId}`);
  }

  private index(map: Map<string, Set<Connection>>, key: string, conn: Connection, topic: string, handler: (m: unknown) => void): void {
    let set = map.get(key);
    if (!set) {
      map.set(key, (set = new Set()));
      this.topicSubs.set(topic, this.pubsub.subscribe(topic, (m) => {
        try {
          handler(m);
        } catch (err) {
          this.log.error({ err, topic }, 'fan-out handler failed');
        }
      }));
    }
    set.add(conn);
  }

  private unindex(map: Map<string, Set<Connection>>, key: string, conn: Connection, topic: string): void {
    const set = map.get(key);
    if (!set) return;
    set.delete(conn);
    if (set.size === 0) {
      map.delete(key);
      this.topicSubs.get(topic)?.();
      this.topicSubs.delete(topic);
    }
  }
}
