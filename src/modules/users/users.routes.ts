/** User profiles and presence. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../../plugins/openapi.js';
import {
  Presence, PresenceParams, PresenceQueryBody, PublicUser, SelfUser, SetPresenceBody, UpdateMeBody, UserIdParams, UserSearchQuery,
} from './users.schemas.js';

export const usersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { users, presence } = app.hub;

  app.get(
    '/api/me',
    {
      schema: {
        operationId: 'getMe',
        summary: 'Your profile',
        description: 'The caller\'s own profile, with email and admin flag.',
        tags: ['users'],
        response: { 200: Type.With(SelfUser, { description: 'The caller' }), ...errorResponses(404) },
      },
    },
    async (req) => users.me(req.auth.userId),
  );

  app.patch(
    '/api/me',
    {
      schema: {
        operationId: 'updateMe',
        summary: 'Change your profile',
        description: 'Changes the caller\'s display name and/or avatar URL (`avatar_url: null` clears it); each of the caller\'s rooms gets a `room.updated` event with the new profile.',
        tags: ['users'],
        body: UpdateMeBody,
        response: { 200: Type.With(SelfUser, { description: 'The caller as now stored' }) },
      },
    },
    async (req) => users.updateMe(req.auth.userId, req.body),
  );

  app.get(
    '/api/users/search',
    {
      schema: {
        operationId: 'searchUsers',
        summary: 'Find users',
        description:
          'Users (not deactivated) whose name starts with `q` or has a word starting with it (case-insensitive), or whose ' +
          'email is exactly `q`, by name; for starting a direct room. `limit` at most 50.',
        tags: ['users'],
        querystring: UserSearchQuery,
        response: { 200: Type.Array(PublicUser, { description: 'Matching users' }) },
      },
    },
    async (req) => users.search(req.query.q, req.query.limit),
  );

  app.get(
    '/api/users/:id',
    {
      schema: {
        operationId: 'getUser',
        summary: 'A user\'s profile',
        description: 'A user\'s public profile. 404 INVALID_USER for an unknown or deactivated user.',
        tags: ['users'],
        params: UserIdParams,
        response: { 200: Type.With(PublicUser, { description: 'The user' }), ...errorResponses(404) },
      },
    },
    async (req) => users.get(req.params.id),
  );

  app.get(
    '/api/presence/:user_id',
    {
      schema: {
        operationId: 'getPresence',
        summary: 'A user\'s presence',
        description: 'Visible only to users sharing a room with them (and to themselves); 404 INVALID_USER otherwise.',
        tags: ['presence'],
        params: PresenceParams,
        response: { 200: Type.With(Presence, { description: 'The user\'s presence' }), ...errorResponses(404) },
      },
    },
    async (req) => presence.get(req.auth.userId, req.params.user_id),
  );

  app.post(
    '/api/presence/query',
    {
      schema: {
        operationId: 'queryPresence',
        summary: 'Presence of several users',
        description: 'Presence of up to 500 users; those not sharing a room with the caller are left out.',
        tags: ['presence'],
        body: PresenceQueryBody,
        response: { 200: Type.Array(Presence, { description: 'Presence of the visible users among them' }) },
      },
    },
    async (req) => presence.query(req.auth.userId, req.body.user_ids),
  );

  app.put(
    '/api/presence',
    {
      schema: {
        operationId: 'setPresence',
        summary: 'Set your presence',
        description: 'Sets the caller\'s status (online, away, busy, offline) and status text; users sharing a room get `presence` over the WebSocket.',
        tags: ['presence'],
        body: SetPresenceBody,
        response: { 200: Type.With(Presence, { description: 'The caller\'s presence now' }) },
      },
    },
    async (req) => presence.update(req.auth.userId, req.body.status, req.body.status_text),
  );
};
