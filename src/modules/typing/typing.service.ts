/**
 * Typing notifications: ephemeral, published on `room:<id>` as
 * `{"type":"typing","room_id","user_id","user_name","typing":true|false}`. A typing state expires after
 * `typing_timeout_ms` (10 s) without a refresh, which sends `typing:false`; so do typing.stop, sending a
 * message in the room, and the user's last socket closing.
 */
import type { TypingEvent } from '../../events/catalog.js';
import type { PubSub } from '../../events/pubsub.js';

export class TypingService {
  private readonly active = new Map<string, { timer: NodeJS.Timeout; userName: string }>();

  constructor(
    private readonly pubsub: PubSub,
    private readonly timeoutMs: number,
  ) {}

  /** Starts or refreshes typing. Only a change of state is broadcast. The caller checks membership. */
  async start(roomId: string, userId: string, userName: string): Promise<void> {
    const key = `${roomId}:${userId}`;
    const current = this.active.get(key);
    if (current) clearTimeout(current.timer);
    const timer = setTimeout(() => void this.stop(roomId, userId), this.timeoutMs).unref();
    this.active.set(key, { timer, userName });
    if (!current) await this.publish(roomId, userId, userName, true);
  }

  async stop(roomId: string, userId: string): Promise<void> {
    const key = `${roomId}:${userId}`;
    const current = this.active.get(key);
    if (!current) return;
    clearTimeout(current.timer);
    this.active.delete(key);
    await this.publish(roomId, userId, current.userName, false);
  }

  /** Stops every typing state of a user (their last socket closed). */
  async stopAll(userId: string): Promise<void> {
    const rooms = [...this.active.keys()].filter((k) => k.endsWith(`:${userId}`)).map((k) => k.slice(0, k.indexOf(':')));
    await Promise.all(rooms.map((roomId) => this.stop(roomId, userId)));
  }

  close(): void {
    for (const { timer } of this.active.values()) clearTimeout(timer);
    this.active.clear();
  }

  private publish(roomId: string, userId: string, userName: string, typing: boolean): Promise<void> {
    const event: TypingEvent = { type: 'typing', room_id: roomId, user_id: userId, user_name: userName, typing };
    return this.pubsub.publish(`room:${roomId}`, event);
  }
}
