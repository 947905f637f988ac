/** Message search, limited to the caller's rooms, and tenant tokens for searching Meilisearch directly. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../../plugins/openapi.js';
import { SearchQuerystring, SearchResults, SearchToken } from './search.schemas.js';

const tags = ['search'];

export const searchRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = app.hub.search;

  app.get(
    '/api/search/messages',
    {
      schema: {
        operationId: 'searchMessages',
        summary: 'Search messages',
        description:
          'Full-text search, best match first (or newest first with `order=newest`); highlights wrap matches in `<mark>`. Only ' +
          'rooms the caller belongs to are searched; `room_id` narrows to one of them (403 NOT_A_MEMBER, 404 INVALID_ROOM). ' +
          'Filters: `user_id` (sender), `from`/`to` (ISO 8601, inclusive; 400 VALIDATION_FAILED when `from` is after `to`), ' +
          '`has_attachment`. Pages: `limit` (1-100, default 20), `offset`. 503 SEARCH_UNAVAILABLE when the backend cannot answer. ' +
          'Guide: docs/SEARCH.md.',
        tags,
        querystring: SearchQuerystring,
        response: { 200: Type.With(SearchResults, { description: 'A page of hits' }), ...errorResponses(404, 503) },
      },
    },
    async (req) => service.search(req.auth.userId, req.query),
  );

  app.get(
    '/api/search/token',
    {
      schema: {
        operationId: 'getSearchToken',
        summary: 'A Meilisearch tenant token',
        description:
          'A Meilisearch tenant token for the caller\'s current rooms. A web client searches with it at ' +
          '`POST {host}/indexes/{index_uid}/search` (Authorization: Bearer token); Meilisearch adds `room_id IN [...]` to every ' +
          'query. Expires after `search.tenant_token_ttl_s`. 404 NOT_FOUND unless the backend is Meilisearch with token keys set. ' +
          'https://www.meilisearch.com/docs/learn/security/tenant_tokens',
        tags,
        response: { 200: Type.With(SearchToken, { description: 'The token' }), ...errorResponses(404) },
      },
    },
    async (req) => service.token(req.auth.userId),
  );
};
