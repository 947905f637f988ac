/** Message search, limited to the caller's rooms. */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { Uuid } from '../users/users.schemas.js';

const SearchQuerystring = Type.Object({
  q: Type.String({ minLength: 1, maxLength: 500 }),
  room_id: Type.Optional(Uuid),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000, default: 0 })),
});

export async function searchRoutes(app: FastifyInstance): Promise<void> {
  const { search, rooms } = app.hub;

  /**
   * `{results:[{message, highlight, rank}]}`, best first; highlights wrap matches in `<mark>`.
   * Only rooms the caller belongs to are searched; `room_id` narrows to one of them (403 otherwise).
   */
  app.get('/api/search/messages', { schema: { tags: ['search'], querystring: SearchQuerystring } }, async (req) => {
    const q = req.query as { q: string; room_id?: string; limit: number; offset: number };
    const userId = req.auth.userId;
    if (q.room_id) await rooms.requireMember(app.hub.db, q.room_id, userId);
    const roomIds = q.room_id ? [q.room_id] : await rooms.roomIdsFor(userId);
    if (roomIds.length === 0) return { results: [] };
    return { results: await search.search({ q: q.q, roomIds, limit: q.limit, offset: q.offset }) };
  });
}
