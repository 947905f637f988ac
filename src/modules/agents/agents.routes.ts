/**
 * Agent token management (with the user's normal access token, never with an agent token) and bot
 * users. The tokens themselves are used on `/api/mcp/*` and `/mcp` (see tools.routes.ts, src/mcp).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { AgentToken, AgentTokenParams, CreateAgentTokenBody, CreateBotBody, CreatedAgentToken, CreatedBot } from './agents.schemas.js';

const tags = ['agents'];
export const agentTokenRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { agents, admin } = app.hub;

  /**
   * Create an agent token acting as the caller, with scopes and an optional lifetime (`expires_in_s`,
   * seconds). 201 with `token` (`sbat_…`), shown only this once.
   */
  app.post('/api/agent-tokens', { schema: { tags, body: CreateAgentTokenBody, response: { 201: CreatedAgentToken } } }, async (req, reply) => {
    reply.code(201);
    return agents.createToken(req.auth.userId, req.body);
  });

  /** The caller's agent tokens and those they created for bots, newest first, without secrets. */
  app.get('/api/agent-tokens', { schema: { tags, response: { 200: Type.Array(AgentToken) } } }, async (req) => agents.listTokens(req.auth.userId));

  /** Revoke one of those tokens; it stops working at once. 204; 404 INVALID_AGENT_TOKEN. */
  app.delete('/api/agent-tokens/:id', { schema: { tags, params: AgentTokenParams } }, async (req, reply) => {
    await agents.revokeToken(req.auth.userId, req.params.id);
    reply.code(204).send();
  });

  /**
   * Create a bot user (no email or password; it acts only through agent tokens) and its first token.
   * Server admins only (`users.is_admin` or `auth.admin_emails`; 403 FORBIDDEN otherwise). 201
   * `{user: {id, name}, token}`; add the bot to rooms by its user id.
   */
  app.post('/api/bots', { schema: { tags, body: CreateBotBody, response: { 201: CreatedBot } } }, async (req, reply) => {
    if (!(await admin.isAdmin(req.auth.userId))) throw new AppError('FORBIDDEN', 'Only server admins can create bot users');
    reply.code(201);
    return agents.createBot(req.auth.userId, req.body);
  });
};
