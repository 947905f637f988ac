/**
 * Agent token management (with the user's normal access token, never with an agent token) and bot
 * users. The tokens themselves are used on `/api/mcp/*` and `/mcp` (see tools.routes.ts, src/mcp).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { errorResponses } from '../../plugins/openapi.js';
import { actorOf } from '../audit/audit.http.js';
import { AgentToken, AgentTokenParams, CreateAgentTokenBody, CreateBotBody, CreatedAgentToken, CreatedBot } from './agents.schemas.js';

const tags = ['agents'];

export const agentTokenRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { agents, admin } = app.hub;

  app.post(
    '/api/agent-tokens',
    {
      schema: {
        operationId: 'createAgentToken',
        summary: 'Create an agent token',
        description:
          'Creates an agent token acting as the caller, with scopes and an optional lifetime (`expires_in_s`). 201 with `token` ' +
          '(`sbat_…`), shown only this once. Guide: docs/AGENTS.md.',
        tags,
        body: CreateAgentTokenBody,
        response: { 201: Type.With(CreatedAgentToken, { description: 'The token, with its secret' }) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return agents.createToken(actorOf(req), req.body);
    },
  );

  app.get(
    '/api/agent-tokens',
    {
      schema: {
        operationId: 'listAgentTokens',
        summary: 'Your agent tokens',
        description: 'The caller\'s agent tokens and those they created for bots, newest first, without secrets.',
        tags,
        response: { 200: Type.Array(AgentToken, { description: 'The tokens' }) },
      },
    },
    async (req) => agents.listTokens(req.auth.userId),
  );

  app.delete(
    '/api/agent-tokens/:id',
    {
      schema: {
        operationId: 'revokeAgentToken',
        summary: 'Revoke an agent token',
        description: 'Revokes one of those tokens; it stops working at once. 204; 404 INVALID_AGENT_TOKEN.',
        tags,
        params: AgentTokenParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      await agents.revokeToken(actorOf(req), req.params.id);
      reply.code(204).send(null);
    },
  );

  app.post(
    '/api/bots',
    {
      schema: {
        operationId: 'createBot',
        summary: 'Create a bot user',
        description:
          'Creates a bot user (no email or password; it acts only through agent tokens) and its first token; add the bot to rooms ' +
          'by its user id. Server admins only (`users.is_admin` or `auth.admin_emails`; 403 FORBIDDEN otherwise). 201.',
        tags,
        body: CreateBotBody,
        response: { 201: Type.With(CreatedBot, { description: 'The bot and its token, with the secret' }) },
      },
    },
    async (req, reply) => {
      if (!(await admin.isAdmin(req.auth.userId))) throw new AppError('FORBIDDEN', 'Only server admins can create bot users');
      reply.code(201);
      return agents.createBot(actorOf(req), req.body);
    },
  );
};
