/** Rooms and membership. Every change emits `room.updated` to the members. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { WithDefault } from '../users/users.schemas.js';
import { AddMembersBody, CreateRoomBody, MemberParams, RoomParams, SetRoleBody, UpdateRoomBody } from './rooms.schemas.js';

const tags = ['rooms'];
export const roomsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { rooms } = app.hub;

  /** The caller's rooms, most recently active first: `[{id,name,type,last_message,unread_count,role,member_count,...}]`. */
  app.get('/api/rooms', { schema: { tags } }, async (req) => rooms.list(req.auth.userId));

  /** Public channels (a directory). */
  app.get('/api/rooms/public', { schema: { tags, querystring: Type.Object({ limit: WithDefault(Type.Integer({ minimum: 1, maximum: 200, default: 50 })) }) } }, async (req) =>
    rooms.listPublic(req.query.limit),
  );

  /**
   * Create a room; the caller becomes owner. A direct room needs exactly one other member and is
   * unique per pair: 201 when created, 200 with the existing room otherwise.
   */
  app.post('/api/rooms', { schema: { tags, body: CreateRoomBody } }, async (req, reply) => {
    const { room, created } = await rooms.create(req.auth.userId, req.body);
    reply.code(created ? 201 : 200);
    return room;
  });

  /** A room with its members. 404 INVALID_ROOM; 403 NOT_A_MEMBER (public channels are visible to all). */
  app.get('/api/rooms/:id', { schema: { tags, params: RoomParams } }, async (req) => rooms.get(req.auth.userId, req.params.id));

  /** Change name, topic, visibility or `allow_edits` (admins). */
  app.patch('/api/rooms/:id', { schema: { tags, params: RoomParams, body: UpdateRoomBody } }, async (req) =>
    rooms.update(req.auth.userId, req.params.id, req.body),
  );

  /** Delete the room (owner). 204. */
  app.delete('/api/rooms/:id', { schema: { tags, params: RoomParams } }, async (req, reply) => {
    await rooms.delete(req.auth.userId, req.params.id);
    reply.code(204).send();
  });

  /** Add members (admins; not direct rooms). */
  app.post('/api/rooms/:id/members', { schema: { tags, params: RoomParams, body: AddMembersBody } }, async (req) =>
    rooms.addMembers(req.auth.userId, req.params.id, req.body.user_ids),
  );

  /** Remove a member (owner: anyone; admins: plain members); removing oneself is leaving. */
  app.delete('/api/rooms/:id/members/:user_id', { schema: { tags, params: MemberParams } }, async (req) => {
    return rooms.removeMember(req.auth.userId, req.params.id, req.params.user_id);
  });

  /** Set a member's role (owner). Making someone owner hands ownership over. */
  app.put('/api/rooms/:id/members/:user_id/role', { schema: { tags, params: MemberParams, body: SetRoleBody } }, async (req) => {
    return rooms.setRole(req.auth.userId, req.params.id, req.params.user_id, req.body.role);
  });

  /** Join a public channel. */
  app.post('/api/rooms/:id/join', { schema: { tags, params: RoomParams } }, async (req) => rooms.join(req.auth.userId, req.params.id));

  /** Leave a room. */
  app.post('/api/rooms/:id/leave', { schema: { tags, params: RoomParams } }, async (req) => rooms.leave(req.auth.userId, req.params.id));
};
