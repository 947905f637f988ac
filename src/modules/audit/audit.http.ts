/** The audit actor of an authenticated HTTP request: the user (or the bridge acting), its address and user agent. */
import type { FastifyRequest } from 'fastify';
import { bridgeIdOf } from '../bridges/bridges.service.js';
import type { Actor } from './audit.service.js';

export function actorOf(req: FastifyRequest): Actor & { user_id: string } {
  const bridgeId = bridgeIdOf(req.auth);
  return { user_id: req.auth.userId, via: bridgeId ? `bridge:${bridgeId}` : 'api', ip: req.ip ?? null, user_agent: req.headers['user-agent'] ?? null };
}
