/**
 * The admin API under `/api/admin`: users, rooms, server stats, invite codes. Every route needs an
 * access token of an admin (`users.is_admin` or an email in `auth.admin_emails`); anyone else gets
 * 403 FORBIDDEN. Operator's guide: docs/OPERATIONS.md.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { errorResponses } from '../../plugins/openapi.js';
import { actorOf } from '../audit/audit.http.js';
import { AdminUser, AuditPage, AuditQuery, CreateInviteBody, IdParams, Invite, InviteParams, PageQuery, RoomPage, Stats, UserPage } from './admin.schemas.js';

const tags = ['admin'];
const adminsOnly = 'Server admins only (403 FORBIDDEN otherwise).';

export const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { admin } = app.hub;

  // Runs after the access-token hook of the enclosing scope, so `req.auth` is set.
  app.addHook('onRequest', async (req) => {
    if (!(await admin.isAdmin(req.auth.userId))) throw new AppError('FORBIDDEN', 'Server admins only');
  });

  app.get(
    '/api/admin/users',
    {
      schema: {
        operationId: 'adminListUsers',
        summary: 'List users',
        description: `Users, newest first, deactivated ones included, with the total matching. \`q\`: name or email contains (case-insensitive). ${adminsOnly}`,
        tags,
        querystring: PageQuery,
        response: { 200: Type.With(UserPage, { description: 'A page of users' }) },
      },
    },
    async (req) => admin.listUsers(req.query),
  );

  app.post(
    '/api/admin/users/:id/deactivate',
    {
      schema: {
        operationId: 'adminDeactivateUser',
        summary: 'Deactivate a user',
        description:
          'Deactivates a user: their sessions are revoked and their sockets on every node close at once with 4401; they can no ' +
          `longer log in. Their rooms and messages are kept. Idempotent. 404 INVALID_USER; 403 FORBIDDEN for oneself. ${adminsOnly}`,
        tags,
        params: IdParams,
        response: { 200: Type.With(AdminUser, { description: 'The user, deactivated' }), ...errorResponses(404) },
      },
    },
    async (req) => admin.deactivate(actorOf(req), req.params.id),
  );

  app.get(
    '/api/admin/rooms',
    {
      schema: {
        operationId: 'adminListRooms',
        summary: 'List rooms',
        description: `Rooms (not deleted), newest first, with member and message counts and the total matching. \`q\`: name contains. ${adminsOnly}`,
        tags,
        querystring: PageQuery,
        response: { 200: Type.With(RoomPage, { description: 'A page of rooms' }) },
      },
    },
    async (req) => admin.listRooms(req.query),
  );

  app.delete(
    '/api/admin/rooms/:id',
    {
      schema: {
        operationId: 'adminDeleteRoom',
        summary: 'Delete any room',
        description: `Deletes a room: members are removed and get \`room.deleted\`; messages are kept. 204; 404 INVALID_ROOM. ${adminsOnly}`,
        tags,
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      await admin.deleteRoom(actorOf(req), req.params.id);
      reply.code(204).send(null);
    },
  );

  app.get(
    '/api/admin/stats',
    {
      schema: {
        operationId: 'adminGetStats',
        summary: 'Server stats',
        description: `Counts of users, rooms and messages, the sockets open on the node that answers, and the latest stream position. ${adminsOnly}`,
        tags,
        response: { 200: Type.With(Stats, { description: 'The stats' }) },
      },
    },
    async () => admin.stats(),
  );

  app.post(
    '/api/admin/invites',
    {
      schema: {
        operationId: 'adminCreateInvite',
        summary: 'Issue an invite code',
        description: `Issues an invite code (for \`auth.registration = "invite"\`), usable \`max_uses\` times, until \`expires_in_s\` from now. 201. ${adminsOnly}`,
        tags,
        body: CreateInviteBody,
        response: { 201: Type.With(Invite, { description: 'The invite' }) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return admin.createInvite(actorOf(req), req.body);
    },
  );

  app.get(
    '/api/admin/invites',
    {
      schema: {
        operationId: 'adminListInvites',
        summary: 'List invite codes',
        description: `Every invite code with its use count, newest first (used-up and expired ones included). ${adminsOnly}`,
        tags,
        response: { 200: Type.Array(Invite, { description: 'The invites' }) },
      },
    },
    async () => admin.listInvites(),
  );

  app.delete(
    '/api/admin/invites/:code',
    {
      schema: {
        operationId: 'adminDeleteInvite',
        summary: 'Withdraw an invite code',
        description: `Withdraws an invite code. 204; 404 NOT_FOUND. ${adminsOnly}`,
        tags,
        params: InviteParams,
        response: { 204: Type.Null({ description: 'Withdrawn' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      await admin.deleteInvite(actorOf(req), req.params.code);
      reply.code(204).send(null);
    },
  );

  app.get(
    '/api/admin/audit',
    {
      schema: {
        operationId: 'adminListAudit',
        summary: 'The audit trail',
        description:
          'Admin and operator actions, newest first: who (actor_id, via), what (action, target, detail), when (at) and from where (ip, user_agent). ' +
          `Page with before (an entry id). ${adminsOnly}`,
        tags,
        querystring: AuditQuery,
        response: { 200: Type.With(AuditPage, { description: 'A page of entries' }) },
      },
    },
    async (req) => admin.audit(req.query),
  );
};
