/** User profiles and presence. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PublicUser, SelfUser, UpdateMeBody, UserSearchQuery, Uuid } from './users.schemas.js';

const PresenceView = Type.Object({
  user_id: Uuid,
  status: Type.String(),
  status_text: Type.String(),
  last_seen: Type.Union([Type.String(), Type.Null()]),
});

export const usersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { users, presence } = app.hub;

  /** The caller's own profile, with email. */
  app.get('/api/me', { schema: { tags: ['users'], response: { 200: SelfUser } } }, async (req) => users.me(req.auth.userId));

  /** Change the caller's name or avatar URL. */
  app.patch('/api/me', { schema: { tags: ['users'], body: UpdateMeBody, response: { 200: SelfUser } } }, async (req) =>
    users.updateMe(req.auth.userId, req.body),
  );

  /** Users by name or email prefix (for starting a direct room). `?q=&limit=` (max 50). */
  app.get('/api/users/search', { schema: { tags: ['users'], querystring: UserSearchQuery, response: { 200: Type.Array(PublicUser) } } }, async (req) => {
    return users.search(req.query.q, req.query.limit);
  });

  /** A user's public profile. 404 INVALID_USER. */
  app.get('/api/users/:id', { schema: { tags: ['users'], params: Type.Object({ id: Uuid }), response: { 200: PublicUser } } }, async (req) =>
    users.get(req.params.id),
  );

  /** A user's presence, visible only when sharing a room with them. 404 INVALID_USER otherwise. */
  app.get('/api/presence/:user_id', { schema: { tags: ['presence'], params: Type.Object({ user_id: Uuid }), response: { 200: PresenceView } } }, async (req) =>
    presence.get(req.auth.userId, req.params.user_id),
  );

  /** Presence of several users (those not sharing a room with the caller are left out). */
  app.post(
    '/api/presence/query',
    { schema: { tags: ['presence'], body: Type.Object({ user_ids: Type.Array(Uuid, { maxItems: 500 }) }, { additionalProperties: false }), response: { 200: Type.Array(PresenceView) } } },
    async (req) => presence.query(req.auth.userId, req.body.user_ids),
  );

  /** Set the caller's presence status and status text. */
  app.put(
    '/api/presence',
    {
      schema: {
        tags: ['presence'],
        body: Type.Object(
          { status: Type.Union([Type.Literal('online'), Type.Literal('away'), Type.Literal('busy'), Type.Literal('offline')]), status_text: Type.Optional(Type.String({ maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: { 200: PresenceView },
      },
    },
    async (req) => presence.update(req.auth.userId, req.body.status, req.body.status_text),
  );
};
