/**
 * The MCP server at `/mcp`: Streamable HTTP transport (https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http),
 * stateless (a server per POST, no session id), authenticated per request with an agent token
 * (`Authorization: Bearer sbat_…`). It serves the same tools as `/api/mcp/tools` (src/modules/agents/tools.ts)
 * and the user's room histories as resources `switchboard://rooms/{room_id}/messages`.
 *
 * Built on the SDK's low-level `Server` rather than `McpServer`: the tools are defined once with JSON
 * Schema (TypeBox) for REST and MCP alike, while `McpServer` only takes zod schemas.
 */
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema, ErrorCode, ListResourcesRequestSchema, ListResourceTemplatesRequestSchema, ListToolsRequestSchema,
  McpError, ReadResourceRequestSchema, type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import { AppError, errorBody } from '../errors.js';
import { agentAuth, type AgentContext } from '../modules/agents/agents.service.js';
import { callTool, listTools, type ToolContext } from '../modules/agents/tools.js';

export const ROOM_MESSAGES_TEMPLATE = 'switchboard://rooms/{room_id}/messages';
const ROOM_MESSAGES_URI = /^switchboard:\/\/rooms\/([^/]+)\/messages$/;
const roomMessagesUri = (roomId: string) => `switchboard://rooms/${roomId}/messages`;

const INSTRUCTIONS =
  'Switchboard chat hub. You act as one user and see only their rooms. Typical loop: list_rooms, read_messages, ' +
  'then wait_for_messages (pass next_since back each time) and answer with send_message (set txn_id so retries are safe). ' +
  'Tool errors are JSON {"error":{"code","message"}} with isError set.';

/** A tool error result: the text is `{"error":{"code","message"}}`, as the REST endpoints answer. */
function toolError(code: string, message: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: JSON.stringify(errorBody(code, message)) }] };
}

/** An AppError as a JSON-RPC error (for resources, which have no tool-error form); `data.code` carries our code. */
function protocolError(err: unknown, log: Logger): McpError {
  if (err instanceof AppError) {
    return new McpError(err.status < 500 ? ErrorCode.InvalidParams : ErrorCode.InternalError, `${err.code}: ${err.message}`, { code: err.code });
  }
  log.error({ err }, 'MCP request failed');
  return new McpError(ErrorCode.InternalError, 'INTERNAL: Internal error', { code: 'INTERNAL' });
}

/**
 * An MCP server acting as `ctx.agent`. `version`: the hub's version, reported as serverInfo.
 * `shutdown`, when it aborts, ends tool calls in flight as the client going away would (a
 * wait_for_messages answers timed_out), while their answers are still sent.
 */
export function createMcpServer(ctx: Omit<ToolContext, 'signal'> & { shutdown: AbortSignal }, version: string): Server {
  const { shutdown, ...toolCtx } = ctx;
  const { hub } = ctx;
  const server = new Server({ name: 'switchboard', version }, { capabilities: { tools: {}, resources: {} }, instructions: INSTRUCTIONS });
  const run = (name: string, args: unknown, signal: AbortSignal) => callTool({ ...toolCtx, signal: AbortSignal.any([signal, shutdown]) }, name, args);

  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: listTools().map(({ scope, ...tool }) => ({ ...tool, _meta: { 'switchboard/scope': scope } })),
  }));

  // Scope, membership and argument errors are tool results with isError (the model sees and can fix
  // them); only an unknown tool is a protocol error, as the MCP spec asks.
  server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
    try {
      const result = (await run(req.params.name, req.params.arguments, extra.signal)) as Record<string, unknown>;
      return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result };
    } catch (err) {
      if (err instanceof AppError && err.code === 'INVALID_TOOL') throw new McpError(ErrorCode.InvalidParams, err.message, { code: err.code });
      if (err instanceof AppError) return toolError(err.code, err.message);
      hub.log.error({ err, tool: req.params.name }, 'tool failed');
      return toolError('INTERNAL', 'Internal error');
    }
  });

  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: [
      {
        uriTemplate: ROOM_MESSAGES_TEMPLATE,
        name: 'room_messages',
        title: 'Room history',
        description: 'The latest messages of one of your rooms, oldest first: {messages, has_more} (as read_messages). Needs scope messages:read.',
        mimeType: 'application/json',
      },
    ],
  }));

  server.setRequestHandler(ListResourcesRequestSchema, async (_req, extra) => {
    try {
      const { rooms } = (await run('list_rooms', {}, extra.signal)) as { rooms: { id: string; name: string; type: string; unread_count: number }[] };
      return {
        resources: rooms.map((r) => ({
          uri: roomMessagesUri(r.id),
          name: r.name || r.id,
          description: `${r.type} room, ${r.unread_count} unread`,
          mimeType: 'application/json',
        })),
      };
    } catch (err) {
      throw protocolError(err, hub.log);
    }
  });

  server.setRequestHandler(ReadResourceRequestSchema, async (req, extra) => {
    const match = ROOM_MESSAGES_URI.exec(req.params.uri);
    let roomId: string | undefined;
    try {
      roomId = match ? decodeURIComponent(match[1]) : undefined;
    } catch {
      // a malformed percent-encoding: an unknown resource too
    }
    if (roomId === undefined) throw new McpError(ErrorCode.InvalidParams, `Unknown resource ${req.params.uri}; expected ${ROOM_MESSAGES_TEMPLATE}`);
    try {
      const page = await run('read_messages', { room_id: roomId }, extra.signal);
      return { contents: [{ uri: req.params.uri, mimeType: 'application/json', text: JSON.stringify(page) }] };
    } catch (err) {
      throw protocolError(err, hub.log);
    }
  });

  return server;
}

/**
 * `POST /mcp`: one JSON-RPC message (or batch) per request, answered as JSON. 401 UNAUTHORIZED /
 * TOKEN_EXPIRED (with `WWW-Authenticate: Bearer`) without a valid agent token. `GET` and `DELETE`
 * answer 405: the server is stateless, with no session or server-initiated stream.
 */
export const mcpRoutes: FastifyPluginAsyncTypebox<{ version: string }> = async (app, opts) => {
  const { hub } = app;

  app.post('/mcp', { schema: { hide: true } }, async (req, reply) => {
    let agent: AgentContext;
    try {
      agent = await hub.agents.authenticateHeader(req.headers.authorization);
    } catch (err) {
      reply.header('www-authenticate', 'Bearer realm="switchboard"');
      throw err;
    }
    req.auth = agentAuth(agent);
    // Shutdown ends the tool calls in flight, and the answer ends its connection (src/plugins/draining.ts):
    // app.close() would otherwise wait out both a long poll and the idle keep-alive connection after it.
    const server = createMcpServer({ hub, agent, limitSend: () => app.sendLimiter(req), shutdown: app.closingSignal }, opts.version);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    reply.raw.once('close', () => void server.close());
    await server.connect(transport);
    reply.hijack();
    reply.endConnectionOnShutdown();
    reply.raw.setHeader('x-request-id', req.id);
    await transport.handleRequest(req.raw, reply.raw, req.body);
  });

  // -32000: a server-defined JSON-RPC error, as in the SDK's stateless examples.
  const notAllowed = async (_req: unknown, reply: FastifyReply) =>
    reply.code(405).header('allow', 'POST').send({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed: this MCP server is stateless; use POST' }, id: null });
  app.get('/mcp', { schema: { hide: true } }, notAllowed);
  app.delete('/mcp', { schema: { hide: true } }, notAllowed);
};
