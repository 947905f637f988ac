/** User profiles and presence. */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { PublicUser, SelfUser, UpdateMeBody, UserSearchQuery, Uuid } from './users.schemas.js';

const PresenceView = Type.Object({
  user_id: Uuid,
  status: Type.String(),
  status_text: Type.String(),
  last_seen: Type.Union([Type.String(), Type.Null()]),
});

export async function usersRoutes(app: FastifyInstance): Promise<void> {
  const { users, presence } = app.hub;

  /** The caller's own profile, with email. */
  app.get('/api/me', { schema: { tags: ['users'], response: { 200: SelfUser } } }, async (req) => users.me(req.auth.userId));

  /** Change the caller's name or avatar URL. */
  app.patch('/api/me', { schema: { tags: ['users'], body: UpdateMeBody, response: { 200: SelfUser } } }, async (req) =>
    users.updateMe(req.auth.userId, req.body as any),
  );

  /** Users by name or email prefix (for starting a direct room). `?q=&limit=` (max 50). */
  app.get('/api/users/search', { schema: { tags: ['users'], querystring: UserSearchQuery, response: { 200: Type.Array(PublicUser) } } }, async (req) => {
    const { q, limit } = req.query as { q: string; limit: number };
    return users.search(q, limit);
  });

  /** A user's public profile. 404 INVALID_USER. */
  app.get('/api/users/:id', { schema: { tags: ['users'], params: Type.Object({ id: Uuid }), response: { 200: PublicUser } } }, async (req) =>
    users.get((req.params as { id: string }).id),
  );

  /** A user's presence, visible only when sharing a room with them. 404 INVALID_USER otherwise. */
  app.get('/api/presence/:user_id', { schema: { tags: ['presence'], params: Type.Object({ user_id: Uuid }), response: { 200: PresenceView } } }, async (req) =>
    presence.get(req.auth.userId, (req.params as { user_id: string }).user_id),
  );

  /** Presence of several users (those not sharing a room with the caller are left out). */
  app.post(
    '/api/presence/query',
    { schema: { tags: ['presence'], body: Type.Object({ user_ids: Type.Array(Uuid, { maxItems: 500 }) }, { additionalProperties: false }), response: { 200: Type.Array(PresenceView) } } },
    async (req) => presence.query(req.auth.userId, (req.body as { user_ids: string[] }).user_ids),
  );

  /** Set the caller's presence status and status text. */
  app.put(
    '/api/presence',
    {
      schema: {
        tags: ['presence'],
        body: Type.Object(
          { status: Type.Union(['online', 'away', 'busy', 'offline'].map((s) => Type.Literal(s))), status_text: Type.Optional(Type.String({ maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: { 200: PresenceView },
      },
    },
    async (req) => {
      const body = req.body as { status: 'online' | 'away' | 'busy' | 'offline'; status_text?: string };
      return presence.update(req.auth.userId, body.status, body.status_text);
    },
  );
}
