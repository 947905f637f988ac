/**
 * The one place where REST input is bounded before handlers (and so the database) see it. Sizes are
 * bounded before parsing: bodies by `limits.max_request_bytes` (413 PAYLOAD_TOO_LARGE, Fastify's
 * bodyLimit), uploads by `storage.max_attachment_size_mb` (413 ATTACHMENT_TOO_LARGE, the attachments
 * routes), WebSocket frames by `limits.max_ws_frame_bytes` (close 1009). Then every route's path
 * params, query string and body, as validated and coerced by its schema, are walked once
 * (`inputProblem`, src/lib/input-bounds.ts): nesting deeper than `limits.max_json_depth`, a
 * non-finite number (`?limit=Infinity` or `1e400`, which Ajv's coercion lets past `maximum`) or text
 * PostgreSQL cannot store is 400 VALIDATION_FAILED.
 *
 * It runs as an app-wide preHandler: after schema validation (so it sees coerced values), before the
 * route's own preHandlers (the rate limits, so a refused request is not counted) and the handler.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../errors.js';
import { inputProblem } from '../lib/input-bounds.js';

async function inputBounds(app: FastifyInstance): Promise<void> {
  const maxDepth = app.hub.config.limits.max_json_depth;
  app.addHook('preHandler', async (req) => {
    for (const [part, value] of [['params', req.params], ['querystring', req.query], ['body', req.body]] as const) {
      const problem = inputProblem(value, maxDepth);
      if (problem) throw new AppError('VALIDATION_FAILED', `${part}${problem.path ? `/${problem.path}` : ''} ${problem.message}`);
    }
  });
}

export const inputBoundsPlugin = fp(inputBounds, { name: 'switchboard-input-bounds' });
