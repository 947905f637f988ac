/**
 * The OpenAPI 3.0 document of the REST API, built by `@fastify/swagger` from the route schemas and
 * served at `/docs/json` (Swagger UI at `/docs`); a copy is committed as docs/openapi.json (`npm run
 * openapi` writes it, test/integration/openapi.test.ts keeps it in sync).
 *
 * Each route's schema gives `operationId`, `summary`, `description`, `tags`, its params, query and
 * body, and a response schema for every status it answers. Error answers share one schema,
 * `#/components/schemas/Error` (`{"error":{"code","message"}}`, src/errors.ts): a route lists its own
 * with `errorResponses(…)`, and the statuses that come from elsewhere are added where they arise —
 * here 400, 500 and 503 for every route (the app's input check, its error handler, and
 * DATABASE_UNAVAILABLE from src/db/database.ts) plus 413 and 415 for routes that take a body
 * (every method but GET and HEAD: body limit, unparseable content type), and `documentErrors(…)` in the scopes
 * whose authentication hooks answer 401 and 403. Routes the document leaves out (`hide: true`): the
 * WebSocket `/ws` (docs/WEBSOCKET_API.md) and `/mcp` (docs/AGENTS.md).
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyInstance, onRouteHookHandler, RouteOptions } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import { Type, type Static } from 'typebox';
import { ERROR_CATALOG, ErrorResponse } from '../errors.js';

/** The statuses REST errors are answered with. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 416 | 422 | 429 | 500 | 503;

/** The response of one error status: the shared Error schema, described with the catalog's codes of that status. */
function errorResponse(status: ErrorStatus) {
  const codes = Object.entries(ERROR_CATALOG).filter(([, s]) => s === status).map(([code]) => code);
  // No code of its own (415): Fastify refused the request, and the error handler answers BAD_REQUEST.
  const description = `${STATUS_CODES[status]}: \`{error: {code, message}}\`; codes with this status: ${(codes.length ? codes : ['BAD_REQUEST']).join(', ')}.`;
  return Type.Unsafe<Static<typeof ErrorResponse>>({ $ref: 'Error#', description });
}

/** Response schemas for error statuses, to spread into a route's `response`. */
export function errorResponses(...statuses: ErrorStatus[]): Partial<Record<ErrorStatus, ReturnType<typeof errorResponse>>> {
  return Object.fromEntries(statuses.map((status) => [status, errorResponse(status)]));
}

/** Adds error responses to a documented route, unless the route declares those statuses itself. */
function addErrorResponses(route: RouteOptions, statuses: ErrorStatus[]): void {
  if (route.schema?.hide) return;
  route.schema = { ...route.schema, response: Object.assign(errorResponses(...statuses), route.schema?.response) };
}

/** An `onRoute` hook: every documented route of the scope it is added to also answers `statuses` (from the scope's hooks). */
export function documentErrors(...statuses: ErrorStatus[]): onRouteHookHandler {
  return (route) => addErrorResponses(route, statuses);
}

async function openapi(app: FastifyInstance, opts: { version: string }): Promise<void> {
  app.addSchema(ErrorResponse);
  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'Switchboard',
        version: opts.version,
        description:
          'Chat hub REST API. Errors are `{"error": {"code", "message"}}` with a stable code. The WebSocket protocol ' +
          '(`GET /ws`) is in docs/WEBSOCKET_API.md, the MCP endpoint (`/mcp`) in docs/AGENTS.md, bridges in docs/BRIDGES.md.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An access token (a JWT from register, login or refresh); a bridge\'s as_token, optionally with `?user_id=` ' +
              'to act as one of its ghosts. The agent tools (`/api/mcp/tools*`) take an agent token (`sbat_…`) instead.',
          },
        },
      },
      security: [{ bearer: [] }],
      tags: [
        { name: 'auth', description: 'Accounts, sessions and devices' },
        { name: 'users', description: 'Profiles and user search' },
        { name: 'presence', description: 'Online status' },
        { name: 'rooms', description: 'Rooms and membership' },
        { name: 'messages', description: 'Messages, edits, reactions, receipts, history' },
        { name: 'attachments', description: 'The media repository (docs/ATTACHMENTS.md)' },
        { name: 'search', description: 'Message search (docs/SEARCH.md)' },
        { name: 'admin', description: 'Server administration (docs/OPERATIONS.md)' },
        { name: 'agents', description: 'Agent tokens, bot users and the agent tools (docs/AGENTS.md)' },
        { name: 'bridges', description: 'The bridge API, for bridges with an as_token (docs/BRIDGES.md)' },
        { name: 'push', description: 'Push notifications: Web Push, HTTP pushers, room mutes (docs/PUSH.md)' },
        { name: 'e2ee', description: 'End-to-end encryption: E2EE devices, prekeys, to-device messages (docs/E2EE.md)' },
        { name: 'health', description: 'Liveness, readiness and metrics' },
      ],
    },
    // Shared schemas appear under their $id (`#/components/schemas/Error`), not as def-0.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  // Fastify parses a body sent to any route but GET and HEAD, with a schema for it or not.
  const takesBody = (route: RouteOptions) => route.schema?.body || [route.method].flat().some((m) => m !== 'GET' && m !== 'HEAD');
  app.addHook('onRoute', (route) => addErrorResponses(route, takesBody(route) ? [400, 413, 415, 500, 503] : [400, 500, 503]));
}

/** Registers the document, Swagger UI and the shared Error schema. Register before the routes. */
export const openapiPlugin = fp(openapi, { name: 'switchboard-openapi' });
