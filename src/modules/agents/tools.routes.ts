/**
 * MCP-style REST tool endpoints for agents that do not speak MCP. Authenticated with an agent token
 * (`Authorization: Bearer sbat_…`); user access tokens are refused here, and agent tokens everywhere
 * else in `/api`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { documentErrors, errorResponses } from '../../plugins/openapi.js';
import { agentAuth, type AgentContext } from './agents.service.js';
import { callTool, listTools } from './tools.js';
import { ToolArguments, ToolListing, ToolParams, ToolResult } from './tools.schemas.js';

declare module 'fastify' {
  interface FastifyRequest {
    agent: AgentContext;
  }
}

const tags = ['agents'];

export const agentToolRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { hub } = app;
  app.decorateRequest('agent');
  // 401 UNAUTHORIZED or TOKEN_EXPIRED without a valid agent token.
  app.addHook('onRoute', documentErrors(401));
  app.addHook('onRequest', async (req) => {
    req.agent = await hub.agents.authenticateHeader(req.headers.authorization);
    req.auth = agentAuth(req.agent);
  });

  app.get(
    '/api/mcp/tools',
    {
      schema: {
        operationId: 'listAgentTools',
        summary: 'The agent tools',
        description: 'Every tool, with its input and output JSON Schemas (as MCP `tools/list`) and the scope it needs. Agent token only. Guide: docs/AGENTS.md.',
        tags,
        response: { 200: Type.Object({ tools: Type.Array(ToolListing) }, { description: 'The tools' }) },
      },
    },
    async () => ({ tools: listTools() }),
  );

  app.post(
    '/api/mcp/tools/:name',
    {
      schema: {
        operationId: 'callAgentTool',
        summary: 'Call an agent tool',
        description:
          'Calls a tool with its arguments as the JSON body (`{}` or no body when it takes none); the result matches the tool\'s ' +
          'output schema. 400 VALIDATION_FAILED (arguments against the input schema); 403 INSUFFICIENT_SCOPE, NOT_A_MEMBER; 404 ' +
          'INVALID_TOOL, INVALID_ROOM, INVALID_MESSAGE; 413 MESSAGE_TOO_LARGE; 429 RATE_LIMITED (sends count against the user\'s send ' +
          'limit); 503 SEARCH_UNAVAILABLE. `wait_for_messages` holds the request up to its `timeout_ms` (less when the hub shuts down). ' +
          'Agent token only.',
        tags,
        params: ToolParams,
        body: ToolArguments,
        response: { 200: ToolResult, ...errorResponses(403, 404, 413, 429, 503) },
      },
    },
    async (req, reply) => {
      // Ends early when the client goes away or the hub shuts down (src/plugins/draining.ts).
      const gone = new AbortController();
      reply.raw.once('close', () => gone.abort());
      const signal = AbortSignal.any([gone.signal, app.closingSignal]);
      return callTool({ hub, agent: req.agent, signal, limitSend: () => app.sendLimiter(req) }, req.params.name, req.body);
    },
  );
};
