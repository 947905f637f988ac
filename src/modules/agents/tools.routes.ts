/**
 * MCP-style REST tool endpoints for agents that do not speak MCP. Authenticated with an agent token
 * (`Authorization: Bearer sbat_…`); user access tokens are refused here, and agent tokens everywhere
 * else in `/api`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { agentAuth, type AgentContext } from './agents.service.js';
import { callTool, listTools } from './tools.js';

declare module 'fastify' {
  interface FastifyRequest {
    agent: AgentContext;
  }
}

const tags = ['agents'];

export const agentToolRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { hub } = app;
  app.decorateRequest('agent');
  app.addHook('onRequest', async (req) => {
    req.agent = await hub.agents.authenticateHeader(req.headers.authorization);
    req.auth = agentAuth(req.agent);
  });

  /** The tools: `{tools: [{name, description, inputSchema, outputSchema, scope}]}` (JSON Schema, as MCP `tools/list`). */
  app.get('/api/mcp/tools', { schema: { tags } }, async () => ({ tools: listTools() }));

  /**
   * Call a tool with its arguments as the JSON body (`{}` or no body when it takes none). 200 with the
   * result (it matches the tool's output schema), or an error `{error: {code, message}}`: 400
   * VALIDATION_FAILED (arguments against the input schema), 403 INSUFFICIENT_SCOPE or NOT_A_MEMBER,
   * 404 INVALID_TOOL, INVALID_ROOM, INVALID_MESSAGE, 413 MESSAGE_TOO_LARGE, 429 RATE_LIMITED (sends
   * count against the user's send limit). `wait_for_messages` holds the request up to its `timeout_ms`
   * (less when the hub shuts down).
   */
  app.post('/api/mcp/tools/:name', { schema: { tags, params: Type.Object({ name: Type.String({ maxLength: 100 }) }) } }, async (req, reply) => {
    // Ends early when the client goes away or the hub shuts down (src/plugins/draining.ts).
    const gone = new AbortController();
    reply.raw.once('close', () => gone.abort());
    const signal = AbortSignal.any([gone.signal, app.closingSignal]);
    return callTool({ hub, agent: req.agent, signal, limitSend: () => app.sendLimiter(req) }, req.params.name, req.body);
  });
};
