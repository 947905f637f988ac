/**
 * Abuse limits (`[rate_limits]` in the config; 0 disables one). Operator's guide: docs/OPERATIONS.md.
 *
 * REST, through `@fastify/rate-limit` (fixed windows; counters in Redis when `redis.url` is set, so
 * every node shares them, else in this node's memory; if Redis fails, requests are let through):
 * - `POST /api/auth/login`: per client IP and per account (lower-case email from the body);
 * - `POST /api/auth/register`: per client IP;
 * - `POST /api/rooms/:room_id/messages`: per user;
 * - the signed `/_federation/v1` routes: per peer (`app.peerLimiter`, called by the federation routes
 *   once the signature named the peer, before anything is read or stored).
 * The routes are listed here, in one place, and get a preHandler (after body validation, before the
 * handler, so a refused request changes nothing). Over a limit: 429 `RATE_LIMITED` with
 * `Retry-After` (seconds until the window resets).
 *
 * Message sends (`app.sendLimiter`): one counter per user (`messages_per_user_per_min`) for every
 * way of sending: the REST send route above, `message.send` WebSocket frames, and the agents'
 * `send_message` tool over REST and MCP.
 *
 * WebSocket frames (`app.socketLimits`, used by the gateway): every frame takes a token from a
 * per-connection bucket (`ws_frames_per_s` refill, `ws_burst` size). A bucket rather than the
 * plugin's store: it belongs to one socket (no key, nothing to evict, gone with the socket) and,
 * unlike a fixed window, gives `ws_burst` its meaning.
 * Over a limit the frame is not processed and the socket gets an `error` event `RATE_LIMITED` with
 * `retry_after_ms`; it stays open. Frames larger than `limits.max_ws_frame_bytes` close the socket
 * with 1009 (the `ws` maxPayload, set in app.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import fastifyRateLimit, { normalizeIP, type RateLimitOptions } from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import { AppError } from '../errors.js';
import { normaliseEmail } from '../modules/auth/auth.service.js';

/** The frame limit of one WebSocket connection. */
export interface SocketLimits {
  /** Takes a token for one incoming frame. @returns 0 when allowed, else ms until a token is available. */
  frame(): number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The frame limit for a new socket. */
    socketLimits(): SocketLimits;
    /**
     * Counts one message send against the send limit of `req.auth.userId` (an authenticated request:
     * REST, an agent tool call, or a socket's upgrade request).
     * @returns 0 when allowed, else ms until the window resets.
     */
    sendLimiter(req: FastifyRequest): Promise<number>;
    /**
     * Counts one signed federation request of peer `origin` (its server_name) against
     * `federation_per_peer_per_min`. @returns 0 when allowed, else ms until the window resets.
     */
    peerLimiter(req: FastifyRequest, origin: string): Promise<number>;
  }
}

/** Counts one request. @returns 0 when allowed, else ms until the window resets. */
type Limiter = (req: FastifyRequest) => Promise<number>;

/** Keys an in-memory limiter may hold at once (per limit); the least recently used are forgotten beyond it. */
const KEYS_PER_LIMIT = 50_000;

/** A token bucket: holds up to `burst` tokens, refilled at `perSecond` tokens a second. */
class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** @returns 0 when a token was taken, else ms until one is available. */
  take(): number {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }
}

async function rateLimits(app: FastifyInstance): Promise<void> {
  const { rate_limits: cfg, redis: redisCfg } = app.hub.config;
  const redis = redisCfg.url ? new Redis(redisCfg.url, { maxRetriesPerRequest: 1 }) : null;
  if (redis) {
    redis.on('error', (err) => app.log.warn({ err: err.message }, 'rate-limit redis error'));
    app.addHook('onClose', async () => void redis.disconnect());
  }
  await app.register(fastifyRateLimit, {
    global: false,
    ...(redis ? { redis, nameSpace: `${redisCfg.channel_prefix}rate-limit:`, skipOnError: true } : {}),
  });

  const limiter = (max: number, timeWindow: number, keyGenerator: (req: FastifyRequest) => string): Limiter => {
    if (max === 0) return async () => 0;
    const options: RateLimitOptions = { max, timeWindow, keyGenerator, cache: KEYS_PER_LIMIT };
    const check = app.createRateLimit(options);
    return async (req) => {
      const result = await check(req);
      return !result.isAllowed && result.isExceeded ? Math.max(1, result.ttl) : 0;
    };
  };
  const byIp = (req: FastifyRequest) => normalizeIP(req.ip);
  const sendLimiter = limiter(cfg.messages_per_user_per_min, 60_000, (req) => req.auth.userId);
  const peers = new WeakMap<FastifyRequest, string>();
  const peerLimit = limiter(cfg.federation_per_peer_per_min, 60_000, (req) => `peer:${peers.get(req)}`);

  const limitedRoutes: Record<string, Limiter[]> = {
    'POST /api/auth/login': [
      limiter(cfg.login_per_ip_per_min, 60_000, byIp),
      limiter(cfg.login_per_account_per_min, 60_000, (req) => normaliseEmail((req.body as { email: string }).email)),
    ],
    'POST /api/auth/register': [limiter(cfg.register_per_ip_per_hour, 3_600_000, byIp)],
    'POST /api/rooms/:room_id/messages': [sendLimiter],
  };

  app.addHook('onRoute', (route) => {
    const limiters = limitedRoutes[`${route.method} ${route.url}`];
    if (!limiters) return;
    const enforce: preHandlerAsyncHookHandler = async (req: FastifyRequest, reply: FastifyReply) => {
      for (const take of limiters) {
        const retryMs = await take(req);
        if (retryMs === 0) continue;
        const retryS = Math.ceil(retryMs / 1000);
        reply.header('retry-after', retryS);
        throw new AppError('RATE_LIMITED', `Too many requests; retry in ${retryS} s`);
      }
    };
    route.preHandler = [...[route.preHandler ?? []].flat(), enforce];
  });

  app.decorate('sendLimiter', sendLimiter);
  app.decorate('peerLimiter', (req: FastifyRequest, origin: string) => (peers.set(req, origin), peerLimit(req)));
  app.decorate('socketLimits', (): SocketLimits => {
    const bucket = cfg.ws_frames_per_s > 0 ? new TokenBucket(cfg.ws_frames_per_s, cfg.ws_burst) : null;
    return { frame: () => bucket?.take() ?? 0 };
  });
}

/** Registers `@fastify/rate-limit`, the REST limits, `app.sendLimiter` and `app.socketLimits`. Register before the routes. */
export const rateLimitPlugin = fp(rateLimits, { name: 'switchboard-rate-limits' });
