import { Type } from 'typebox';
import { WithDefault } from '../users/users.schemas.js';

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
