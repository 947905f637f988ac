/** Search requests and results. */
import { Type } from 'typebox';
import { Message } from '../messages/messages.schemas.js';
import { DateTime, WithDefault } from '../users/users.schemas.js';

/** `GET /api/search/messages` query string. */
export const SearchQuerystring = Type.Object(
  {
    q: Type.String({ minLength: 1, maxLength: 500, description: 'Words (all must match) and "quoted phrases".' }),
    room_id: Type.Optional(Type.String({ format: 'uuid', description: 'Only this room (the caller must be a member).' })),
    user_id: Type.Optional(Type.String({ format: 'uuid', description: 'Only messages sent by this user.' })),
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Only messages created at or after this time (ISO 8601).' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'Only messages created at or before this time (ISO 8601).' })),
    has_attachment: Type.Optional(Type.Boolean({ description: 'true: only messages with attachments; false: only without.' })),
    order: WithDefault(Type.Union([Type.Literal('relevance'), Type.Literal('newest')], { default: 'relevance' })),
    limit: WithDefault(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    offset: WithDefault(Type.Integer({ minimum: 0, maximum: 10000, default: 0 })),
  },
);

export const SearchHit = Type.Object({
  message: Message,
  highlight: Type.String({ description: 'The content with matches wrapped in <mark>…</mark> (other text is not HTML-escaped).' }),
  rank: Type.Number({ description: 'Backend-specific relevance, higher is better; compare only within one response.' }),
});

export const SearchResults = Type.Object({
  results: Type.Array(SearchHit),
  has_more: Type.Boolean({ description: 'Whether a next page (offset + limit) has results.' }),
});

/** A Meilisearch tenant token for searching Meilisearch directly. */
export const SearchToken = Type.Object({
  token: Type.String(),
  host: Type.String({ description: 'Meilisearch\'s URL (search.public_url, else search.url).' }),
  index_uid: Type.String(),
  expires_at: DateTime,
});
