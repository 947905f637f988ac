/**
 * Prometheus metrics (prom-client): one registry per hub, and `GET /metrics` in the text exposition
 * format. The route is on the hub's listener, or with `metrics.listen = "host:port"` on a listener
 * of its own (and not on the hub's); with `metrics.token` it needs `Authorization: Bearer <token>`
 * (401 `UNAUTHORIZED` otherwise). docs/OPERATIONS.md lists the metrics; docs/grafana-dashboard.json
 * charts them.
 */
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Type } from 'typebox';
import { errorBody } from '../errors.js';
import { errorResponses } from './openapi.js';
import { PACKAGE_VERSION } from '../lib/package.js';

/**
 * The hub's registry and its metrics. Besides Node's default process metrics:
 * `switchboard_build_info{version, node_version, commit}` (always 1; `commit` from the GIT_COMMIT
 * environment variable, which the Docker image sets from its build argument, else "unknown").
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const buildInfo = new Gauge({
    name: 'switchboard_build_info',
    help: 'Always 1; the labels say which build runs: package version, Node.js version, git commit',
    labelNames: ['version', 'node_version', 'commit'],
    registers: [registry],
  });
  buildInfo.set({ version: PACKAGE_VERSION, node_version: process.version, commit: process.env.GIT_COMMIT || 'unknown' }, 1);
  return {
    registry,
    wsConnections: new Gauge({ name: 'switchboard_ws_connections', help: 'Open WebSocket connections on this node', registers: [registry] }),
    messagesSent: new Counter({ name: 'switchboard_messages_sent_total', help: 'Messages stored', registers: [registry] }),
    eventsDelivered: new Counter({ name: 'switchboard_events_delivered_total', help: 'Room events written to sockets', registers: [registry] }),
    deliveryLatency: new Histogram({
      name: 'switchboard_delivery_latency_seconds',
      help: 'From a message event being written to the database to it being written to a live recipient socket',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'switchboard_http_request_duration_seconds',
      help: 'REST request durations',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** `host` and `port` of a `metrics.listen` value ("127.0.0.1:9091", "[::1]:9091"). */
function parseListen(value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(':');
  return { host: value.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(value.slice(colon + 1)) };
}

/**
 * Registers `GET /metrics` for `app.hub`: on `app` itself, or, with `metrics.listen`, on a second
 * Fastify server that starts listening when `app` does (a failure to listen fails `app.listen()`)
 * and closes with it.
 */
export async function metricsRoutes(app: FastifyInstance): Promise<void> {
  const { registry } = app.hub.metrics;
  const { listen, token } = app.hub.config.metrics;
  const expected = token ? crypto.createHash('sha256').update(`Bearer ${token}`).digest() : null;

  // Documented in the hub's OpenAPI document when served on the hub's listener; a listener of its own has no document.
  const documented = {
    tags: ['health'],
    security: [],
    operationId: 'getMetrics',
    summary: 'Prometheus metrics',
    description:
      "The hub's metrics (`switchboard_*`) and the process's, in the Prometheus text exposition format. With `metrics.token` set it needs " +
      '`Authorization: Bearer <metrics.token>`. Operator\'s guide: docs/OPERATIONS.md.',
    response: {
      200: { description: 'Text exposition format 0.0.4', content: { 'text/plain': { schema: Type.String() } } },
      ...errorResponses(401),
    },
  };
  const route = (server: FastifyInstance) =>
    server.get(
      '/metrics',
      { schema: server === app ? documented : { hide: true } },
      async (req: FastifyRequest, reply: FastifyReply) => {
        if (expected) {
          const given = crypto.createHash('sha256').update(req.headers.authorization ?? '').digest();
          if (!crypto.timingSafeEqual(given, expected)) {
            return reply.code(401).header('www-authenticate', 'Bearer').send(errorBody('UNAUTHORIZED', 'GET /metrics needs Authorization: Bearer <metrics.token>'));
          }
        }
        reply.type(registry.contentType);
        return registry.metrics();
      },
    );

  if (!listen) {
    route(app);
    return;
  }
  const server = Fastify({ loggerInstance: app.log.child({ listener: 'metrics' }) });
  server.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody('NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]}`)));
  route(server);
  app.addHook('onReady', async () => {
    const url = await server.listen(parseListen(listen));
    app.log.info({ url: `${url}/metrics` }, 'metrics listening');
  });
  app.addHook('onClose', async () => server.close());
}
