/**
 * The bridge-only REST API (`as_token` callers; everyone else gets 403 FORBIDDEN). Bridges use the rest
 * of the REST API as well, acting as a ghost with `?user_id=<ghost id>`. See docs/BRIDGES.md.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../../plugins/openapi.js';
import { Message } from '../messages/messages.schemas.js';
import { BridgeWhoami, GhostBody, GhostView, MessageParams, Portal, PortalBody, RemoteIdParams } from './bridges.schemas.js';
import { requireBridge } from './bridges.service.js';

const tags = ['bridges'];
const bridgesOnly = 'Bridges only (as_token; 403 FORBIDDEN otherwise).';

export const bridgesRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { bridges, messages } = app.hub;

  app.get(
    '/api/bridge/whoami',
    {
      schema: {
        operationId: 'bridgeWhoami',
        summary: 'The calling bridge',
        description: `The bridge's own registration: its id, its bot user and its ghosts' namespace. ${bridgesOnly}`,
        tags,
        response: { 200: Type.With(BridgeWhoami, { description: 'The bridge' }) },
      },
    },
    async (req) => {
      const reg = bridges.get(requireBridge(req.auth));
      return { id: reg.config.id, bot_user_id: reg.botId, namespace: reg.namespace };
    },
  );

  app.post(
    '/api/bridge/ghosts',
    {
      schema: {
        operationId: 'bridgeUpsertGhost',
        summary: 'Create or update a ghost',
        description: `Creates a ghost (201) or updates its name and avatar (200). 403 FORBIDDEN when the localpart is outside the bridge's namespace. ${bridgesOnly}`,
        tags,
        body: GhostBody,
        response: { 200: Type.With(GhostView, { description: 'The ghost, updated' }), 201: Type.With(GhostView, { description: 'The new ghost' }) },
      },
    },
    async (req, reply) => {
      const { ghost, created } = await bridges.upsertGhost(requireBridge(req.auth), req.body);
      reply.code(created ? 201 : 200);
      return ghost;
    },
  );

  app.post(
    '/api/bridge/portals',
    {
      schema: {
        operationId: 'bridgeEnsurePortal',
        summary: 'The portal room of a remote chat',
        description:
          'The portal room of a remote chat: created on first call (201; a private group the bridge bot owns), found afterwards ' +
          `(200); \`members\` are added when missing. 404 INVALID_USER for an unknown member. ${bridgesOnly}`,
        tags,
        body: PortalBody,
        response: { 200: Type.With(Portal, { description: 'The existing portal' }), 201: Type.With(Portal, { description: 'The new portal' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      const result = await bridges.ensurePortal(requireBridge(req.auth), req.body);
      reply.code(result.created ? 201 : 200);
      return result;
    },
  );

  app.get(
    '/api/bridge/messages/by-remote-id/:remote_id',
    {
      schema: {
        operationId: 'bridgeGetMessageByRemoteId',
        summary: 'A message by its remote id',
        description: `The message the bridge's bot or one of its ghosts posted with this remote id. 404 INVALID_MESSAGE. ${bridgesOnly}`,
        tags,
        params: RemoteIdParams,
        response: { 200: Type.With(Message, { description: 'The message' }), ...errorResponses(404) },
      },
    },
    async (req) => messages.getByRemoteId(requireBridge(req.auth), req.params.remote_id),
  );

  app.post(
    '/api/bridge/messages/:id/delivered',
    {
      schema: {
        operationId: 'bridgeMarkDelivered',
        summary: 'Report a delivery',
        description:
          'The remote network delivered a message: its sender gets `message.delivered` (once). The acting user must be a member ' +
          `of the message's room (403 NOT_A_MEMBER); 404 INVALID_MESSAGE. 204. ${bridgesOnly}`,
        tags,
        params: MessageParams,
        response: { 204: Type.Null({ description: 'Recorded' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      requireBridge(req.auth);
      const message = await messages.get(req.auth.userId, req.params.id);
      await messages.markDelivered(message);
      reply.code(204).send(null);
    },
  );
};
