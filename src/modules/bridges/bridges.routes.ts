/**
 * The bridge-only REST API (`as_token` callers; everyone else gets 403 FORBIDDEN). Bridges use the rest
 * of the REST API as well, acting as a ghost with `?user_id=<ghost id>`. See docs/BRIDGES.md.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Uuid } from '../users/users.schemas.js';
import { GhostBody, GhostView, PortalBody, RemoteIdParams } from './bridges.schemas.js';
import { requireBridge } from './bridges.service.js';

const tags = ['bridges'];

export const bridgesRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { bridges, messages } = app.hub;

  /** The bridge's own registration: `{id, bot_user_id, namespace}`. */
  app.get('/api/bridge/whoami', { schema: { tags } }, async (req) => {
    const reg = bridges.get(requireBridge(req.auth));
    return { id: reg.config.id, bot_user_id: reg.botId, namespace: reg.namespace };
  });

  /**
   * Create a ghost (201) or update its name and avatar (200): `{id, localpart, name, avatar_url}`.
   * 403 FORBIDDEN when the localpart is outside the bridge's namespace.
   */
  app.post('/api/bridge/ghosts', { schema: { tags, body: GhostBody, response: { 200: GhostView, 201: GhostView } } }, async (req, reply) => {
    const { ghost, created } = await bridges.upsertGhost(requireBridge(req.auth), req.body);
    reply.code(created ? 201 : 200);
    return ghost;
  });

  /**
   * The portal room of a remote chat: created on first call (201; private group, the bridge bot owns
   * it), found afterwards (200), `members` added when missing. `{room_id, created}`.
   */
  app.post('/api/bridge/portals', { schema: { tags, body: PortalBody } }, async (req, reply) => {
    const result = await bridges.ensurePortal(requireBridge(req.auth), req.body);
    reply.code(result.created ? 201 : 200);
    return result;
  });

  /** The message the bridge's bot or one of its ghosts posted with this remote id. 404 INVALID_MESSAGE. */
  app.get('/api/bridge/messages/by-remote-id/:remote_id', { schema: { tags, params: RemoteIdParams } }, async (req) =>
    messages.getByRemoteId(requireBridge(req.auth), req.params.remote_id),
  );

  /**
   * The remote network delivered a message: its sender gets `message.delivered` (once). The acting
   * user must be a member of the message's room. 204.
   */
  app.post('/api/bridge/messages/:id/delivered', { schema: { tags, params: Type.Object({ id: Uuid }) } }, async (req, reply) => {
    requireBridge(req.auth);
    const message = await messages.get(req.auth.userId, req.params.id);
    await messages.markDelivered(message.id);
    reply.code(204).send();
  });
};
