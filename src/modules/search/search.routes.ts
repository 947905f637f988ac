/** Message search, limited to the caller's rooms, and tenant tokens for searching Meilisearch directly. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SearchQuerystring } from './search.schemas.js';

const tags = ['search'];

export const searchRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = app.hub.search;

  /**
   * `{results: [{message, highlight, rank}], has_more}`, best first (or newest first with
   * `order=newest`); highlights wrap matches in `<mark>`. Only rooms the caller belongs to are searched;
   * `room_id` narrows to one of them (403 NOT_A_MEMBER otherwise). Filters: `user_id` (sender),
   * `from`/`to` (ISO 8601, inclusive), `has_attachment`. Pages: `limit` (1-100, default 20), `offset`.
   * 503 SEARCH_UNAVAILABLE when the search backend cannot answer.
   */
  app.get('/api/search/messages', { schema: { tags, querystring: SearchQuerystring } }, async (req) =>
    service.search(req.auth.userId, req.query),
  );

  /**
   * A Meilisearch tenant token for the caller's current rooms: `{token, host, index_uid, expires_at}`.
   * A web client searches with it at `POST {host}/indexes/{index_uid}/search` (Authorization: Bearer
   * token); Meilisearch adds `room_id IN [...]` to every query. Expires after
   * `search.tenant_token_ttl_s`. 404 NOT_FOUND unless the backend is Meilisearch with token keys set.
   * https://www.meilisearch.com/docs/learn/security/tenant_tokens
   */
  app.get('/api/search/token', { schema: { tags } }, async (req) => service.token(req.auth.userId));
};
