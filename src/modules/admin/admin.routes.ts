/**
 * The admin API under `/api/admin`: users, rooms, server stats, invite codes. Every route needs an
 * access token of an admin (`users.is_admin` or an email in `auth.admin_emails`); anyone else gets
 * 403 FORBIDDEN. Operator's guide: docs/OPERATIONS.md.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { AdminUser, CreateInviteBody, IdParams, Invite, InviteParams, PageQuery, RoomPage, Stats, UserPage } from './admin.schemas.js';

const tags = ['admin'];

export const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { admin } = app.hub;

  // Runs after the access-token hook of the enclosing scope, so `req.auth` is set.
  app.addHook('onRequest', async (req) => {
    if (!(await admin.isAdmin(req.auth.userId))) throw new AppError('FORBIDDEN', 'Server admins only');
  });

  /** Users, newest first, deactivated ones included: `{users, total}`. `?q=` (name or email contains, case-insensitive), `?limit=` (1-200, default 50), `?offset=`. */
  app.get('/api/admin/users', { schema: { tags, querystring: PageQuery, response: { 200: UserPage } } }, async (req) => admin.listUsers(req.query));

  /**
   * Deactivate a user: their sessions are revoked and their sockets on every node close at once
   * with 4401; they can no longer log in. Their rooms and messages are kept. Idempotent; returns the
   * user. 404 INVALID_USER; 403 FORBIDDEN for oneself.
   */
  app.post('/api/admin/users/:id/deactivate', { schema: { tags, params: IdParams, response: { 200: AdminUser } } }, async (req) =>
    admin.deactivate(req.auth.userId, req.params.id),
  );

  /** Rooms (not deleted), newest first, with member and message counts: `{rooms, total}`. `?q=` (name contains), `?limit=`, `?offset=`. */
  app.get('/api/admin/rooms', { schema: { tags, querystring: PageQuery, response: { 200: RoomPage } } }, async (req) => admin.listRooms(req.query));

  /** Delete any room: members are removed and get `room.deleted`; messages are kept. 204; 404 INVALID_ROOM. */
  app.delete('/api/admin/rooms/:id', { schema: { tags, params: IdParams } }, async (req, reply) => {
    await admin.deleteRoom(req.auth.userId, req.params.id);
    reply.code(204).send();
  });

  /** Counts of users, rooms and messages, sockets open on this node, and the latest stream position. */
  app.get('/api/admin/stats', { schema: { tags, response: { 200: Stats } } }, async () => admin.stats());

  /** Issue an invite code (for `auth.registration = "invite"`). Body `{max_uses?: 1, expires_in_s?}`. 201 with the invite. */
  app.post('/api/admin/invites', { schema: { tags, body: CreateInviteBody, response: { 201: Invite } } }, async (req, reply) => {
    reply.code(201);
    return admin.createInvite(req.auth.userId, req.body);
  });

  /** Every invite code with its use count, newest first. */
  app.get('/api/admin/invites', { schema: { tags, response: { 200: Type.Array(Invite) } } }, async () => admin.listInvites());

  /** Withdraw an invite code. 204; 404 NOT_FOUND. */
  app.delete('/api/admin/invites/:code', { schema: { tags, params: InviteParams } }, async (req, reply) => {
    await admin.deleteInvite(req.params.code);
    reply.code(204).send();
  });
};
