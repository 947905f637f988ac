/**
 * Redis implementation of PubSub (ioredis) for running several hub nodes on one database: each topic is
 * a Redis channel `<prefix><topic>`, every node subscribes to the channels its local sockets need, and
 * a message published on any node reaches the handlers on all of them (including its own node, through
 * Redis, so ordering is the same everywhere).
 *
 * A SUBSCRIBE takes effect one round trip after `subscribe()` returns. Persisted room events are never
 * lost to that window: the `stream` topic only pokes readers that then read the database from their
 * cursor. Ephemeral events (typing, presence) published inside that window can be missed, as they can
 * be by any client that connects a moment later.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { PubSub, PubSubHandler } from './pubsub.js';

export class RedisPubSub implements PubSub {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly topics = new Map<string, Set<PubSubHandler>>();
  private readonly reconnectListeners: (() => void)[] = [];

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {
    this.pub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null, connectionName: `${prefix}pub` });
    this.sub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null, connectionName: `${prefix}sub` });
    for (const r of [this.pub, this.sub]) r.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
    // ioredis resubscribes by itself after a reconnect; what was published meanwhile is gone.
    let connectedBefore = false;
    this.sub.on('ready', () => {
      if (connectedBefore) for (const listener of this.reconnectListeners) listener();
      connectedBefore = true;
    });
    this.sub.on('message', (channel: string, raw: string) => {
      const handlers = this.topics.get(channel.slice(this.prefix.length));
      if (!handlers) return;
      let message: unknown;
      try {
        message = JSON.parse(raw);
      } catch {
        return this.log.warn({ channel }, 'ignored a non-JSON pub/sub message');
      }
      for (const handler of [...handlers]) handler(message);
    });
  }

  /** Runs `listener` after each reconnect: messages published while disconnected were missed. */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  /** Connects both Redis connections. @throws when Redis cannot be reached. */
  async connect(): Promise<void> {
    await Promise.all([this.pub.connect(), this.sub.connect()]);
  }

  async publish(topic: string, message: unknown): Promise<void> {
    await this.pub.publish(this.prefix + topic, JSON.stringify(message));
  }

  subscribe(topic: string, handler: PubSubHandler): () => void {
    let handlers = this.topics.get(topic);
    if (!handlers) {
      this.topics.set(topic, (handlers = new Set()));
      this.sub.subscribe(this.prefix + topic).catch((err) => this.log.error({ err, topic }, 'redis subscribe failed'));
    }
    handlers.add(handler);
    return () => {
      handlers!.delete(handler);
      if (handlers!.size === 0 && this.topics.get(topic) === handlers) {
        this.topics.delete(topic);
        this.sub.unsubscribe(this.prefix + topic).catch(() => undefined);
      }
    };
  }

  async close(): Promise<void> {
    this.topics.clear();
    this.pub.disconnect();
    this.sub.disconnect();
  }
}
