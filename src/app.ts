/**
 * Builds the Fastify application around a Hub: plugins (WebSocket, OpenAPI at /docs), the error
 * mapping to `{"error":{"code","message"}}`, health and metrics, the public auth routes, and every
 * other `/api` route behind access-token authentication.
 */
import crypto from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import fastifyCors from '@fastify/cors';
import fastifyMultipart from '@fastify/multipart';
import fastifyWebsocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError, errorBody } from './errors.js';
import { closeHub, type Hub } from './hub.js';
import { PACKAGE_VERSION } from './lib/package.js';
import { mcpRoutes } from './mcp/server.js';
import { adminRoutes } from './modules/admin/admin.routes.js';
import { agentTokenRoutes } from './modules/agents/agents.routes.js';
import { agentToolRoutes } from './modules/agents/tools.routes.js';
import type { AuthContext } from './modules/auth/auth.service.js';
import { attachmentsRoutes } from './modules/attachments/attachments.routes.js';
import { authRoutes, publicAuthRoutes } from './modules/auth/auth.routes.js';
import { bridgesRoutes } from './modules/bridges/bridges.routes.js';
import { federationApiRoutes, federationRoutes } from './modules/federation/federation.routes.js';
import { messagesRoutes } from './modules/messages/messages.routes.js';
import { e2eeRoutes } from './modules/e2ee/e2ee.routes.js';
import { pushRoutes } from './modules/push/push.routes.js';
import { roomsRoutes } from './modules/rooms/rooms.routes.js';
import { searchRoutes } from './modules/search/search.routes.js';
import { usersRoutes } from './modules/users/users.routes.js';
import { drainingPlugin } from './plugins/draining.js';
import { inputBoundsPlugin } from './plugins/input-bounds.js';
import { documentErrors, errorResponses, openapiPlugin } from './plugins/openapi.js';
import { metricsRoutes } from './plugins/metrics.js';
import { rateLimitPlugin } from './plugins/rate-limit.js';
import { isClientPage, sendClientPage, webClientPlugin } from './plugins/web-client.js';
import { closeAllSockets, gatewayRoutes } from './ws/gateway.js';

declare module 'fastify' {
  interface FastifyInstance {
    hub: Hub;
  }
  interface FastifyRequest {
    auth: AuthContext;
  }
}

/** The package version (package.json), shown in the OpenAPI document and the MCP server info. */
export const VERSION = PACKAGE_VERSION;

/**
 * Node's own server options: the headers timeout (at most the request timeout, as Node requires), and
 * how often both are checked (Node's default, every 30 s, would let a 1 s timeout run 30 s).
 */
function httpServerOptions(server: Hub['config']['server']) {
  const headersTimeout = server.request_timeout_ms ? Math.min(server.headers_timeout_ms, server.request_timeout_ms) : server.headers_timeout_ms;
  return { headersTimeout, connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(headersTimeout / 4))) };
}

/** The app; `app.close()` closes sockets (1001), the hub and its database. */
export async function buildApp(hub: Hub): Promise<FastifyInstance> {
  const { config } = hub;
  const app = Fastify({
    loggerInstance: hub.log,
    bodyLimit: config.limits.max_request_bytes,
    // Bounded HTTP timeouts (docs/OPERATIONS.md): a request that trickles or never sends its body ends.
    requestTimeout: config.server.request_timeout_ms,
    connectionTimeout: config.server.connection_timeout_ms,
    keepAliveTimeout: config.server.keep_alive_timeout_ms,
    http: httpServerOptions(config.server),
    trustProxy: config.server.trust_proxy,
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('hub', hub);
  app.decorateRequest('auth');
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    hub.metrics.httpDuration.observe({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status: reply.statusCode }, reply.elapsedTime / 1000);
  });
  app.addHook('preClose', async () => closeAllSockets(hub));
  app.addHook('onClose', async () => closeHub(hub));

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof AppError) return reply.code(err.status).send(errorBody(err.code, err.message, err.details));
    if (err.validation) return reply.code(400).send(errorBody('VALIDATION_FAILED', err.message));
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send(errorBody('PAYLOAD_TOO_LARGE', err.message));
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(errorBody(err.statusCode === 429 ? 'RATE_LIMITED' : 'BAD_REQUEST', err.message));
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send(errorBody('INTERNAL', 'Internal error'));
  });
  // A page of the web client (its routes live in the browser) gets index.html; anything else a JSON 404.
  app.setNotFoundHandler((req, reply) =>
    isClientPage(req) ? sendClientPage(reply) : reply.code(404).send(errorBody('NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]}`)),
  );

  await app.register(openapiPlugin, { version: VERSION });
  await app.register(fastifyWebsocket, { options: { maxPayload: config.limits.max_ws_frame_bytes } });
  await app.register(fastifyMultipart);
  if (config.server.cors_origins.length > 0) {
    // Bearer tokens, no cookies: no credentials. Preflights are answered before authentication.
    await app.register(fastifyCors, {
      origin: config.server.cors_origins,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      exposedHeaders: ['retry-after', 'x-request-id'],
      maxAge: 600,
    });
  }
  await app.register(inputBoundsPlugin);
  await app.register(rateLimitPlugin);
  await app.register(drainingPlugin);

  const health = { tags: ['health'], security: [] };
  app.get(
    '/healthz',
    {
      schema: {
        ...health,
        operationId: 'getLiveness',
        summary: 'Liveness',
        description: 'The process answers. For a liveness probe.',
        response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'Alive' }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    {
      schema: {
        ...health,
        operationId: 'getReadiness',
        summary: 'Readiness',
        description: 'The database answers: 200, else 503 UNAVAILABLE. For a readiness probe or a load balancer.',
        response: { 200: Type.Object({ status: Type.Literal('ready') }, { description: 'Ready' }), ...errorResponses(503) },
      },
    },
    async (req, reply) => {
      try {
        await hub.db.pool.query('SELECT 1'); // the pool itself: a probe wants the answer now, not after retries
        return { status: 'ready' as const };
      } catch (err) {
        req.log.warn({ err }, 'database not reachable');
        return reply.code(503).send(errorBody('UNAVAILABLE', 'Database not reachable'));
      }
    },
  );
  await app.register(metricsRoutes);

  await app.register(publicAuthRoutes);
  await app.register(gatewayRoutes);
  await app.register(federationRoutes);
  await app.register(async (api) => {
    // 401 without a valid token; 403 for a bridge acting as a user outside its namespace.
    api.addHook('onRoute', documentErrors(401, 403));
    api.addHook('onRequest', async (req) => {
      const header = req.headers.authorization;
      if (!header?.startsWith('Bearer ')) throw new AppError('UNAUTHORIZED', 'Missing access token (Authorization: Bearer <token>)');
      // A bridge's as_token acts as its bot or, with ?user_id=, as one of its ghosts (docs/BRIDGES.md).
      const bridged = await hub.bridges.authenticate(header.slice(7), (req.query as { user_id?: string }).user_id);
      req.auth = bridged ?? (await hub.auth.authenticate(header.slice(7)));
    });
    await api.register(authRoutes);
    await api.register(usersRoutes);
    await api.register(roomsRoutes);
    await api.register(messagesRoutes);
    await api.register(searchRoutes);
    await api.register(adminRoutes);
    await api.register(attachmentsRoutes);
    await api.register(agentTokenRoutes);
    await api.register(bridgesRoutes);
    await api.register(pushRoutes);
    await api.register(e2eeRoutes);
    await api.register(federationApiRoutes);
  });
  // The agent API: agent tokens (not access tokens) authenticate here, and only here.
  await app.register(agentToolRoutes);
  await app.register(mcpRoutes, { version: VERSION });
  await app.register(webClientPlugin);
  return app as unknown as FastifyInstance;
}
