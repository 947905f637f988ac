/**
 * Which nodes hold sockets of a user, so presence goes offline only when the user's last socket in the
 * whole cluster closes. Single node: nothing to ask (`LocalPresenceCluster`). Several nodes
 * (`RedisPresenceCluster`): each node writes its count per user into the Redis hash
 * `<prefix>presence:<user_id>` (field = node id) and keeps `<prefix>presence-node:<node_id>` alive
 * (TTL 30 s, refreshed every 10 s); counts of nodes whose key has expired (crashed) are ignored and
 * removed.
 */
import crypto from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface PresenceCluster {
  /** Records this node's number of open sockets of the user (0 removes it). */
  setLocalCount(userId: string, count: number): Promise<void>;
  /** True when another live node still holds a socket of the user. */
  othersHaveSockets(userId: string): Promise<boolean>;
  close(): Promise<void>;
}

export class LocalPresenceCluster implements PresenceCluster {
  async setLocalCount(): Promise<void> {}
  async othersHaveSockets(): Promise<boolean> {
    return false;
  }
  async close(): Promise<void> {}
}

const NODE_TTL_S = 30;
const HEARTBEAT_MS = 10_000;

export class RedisPresenceCluster implements PresenceCluster {
  readonly nodeId = crypto.randomUUID();
  private readonly redis: Redis;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    url: string,
    private readonly prefix: string,
    log: Logger,
  ) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 1 });
    this.redis.on('error', (err) => log.warn({ err: err.message }, 'presence redis error'));
    const beat = () => this.redis.set(this.nodeKey(this.nodeId), '1', 'EX', NODE_TTL_S).catch(() => undefined);
    void beat();
    this.heartbeat = setInterval(beat, HEARTBEAT_MS).unref();
  }

  async setLocalCount(userId: string, count: number): Promise<void> {
    if (count > 0) await this.redis.hset(this.userKey(userId), this.nodeId, count);
    else await this.redis.hdel(this.userKey(userId), this.nodeId);
  }

  async othersHaveSockets(userId: string): Promise<boolean> {
    const counts = await this.redis.hgetall(this.userKey(userId));
    const others = Object.entries(counts).filter(([node, n]) => node !== this.nodeId && Number(n) > 0);
    if (others.length === 0) return false;
    const alive = await this.redis.mget(...others.map(([node]) => this.nodeKey(node)));
    const dead = others.filter((_, i) => alive[i] === null).map(([node]) => node);
    if (dead.length) await this.redis.hdel(this.userKey(userId), ...dead);
    return dead.length < others.length;
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.redis.del(this.nodeKey(this.nodeId)).catch(() => undefined);
    this.redis.disconnect();
  }

  private userKey(userId: string): string {
    return `${this.prefix}presence:${userId}`;
  }

  private nodeKey(nodeId: string): string {
    return `${this.prefix}presence-node:${nodeId}`;
  }
}
