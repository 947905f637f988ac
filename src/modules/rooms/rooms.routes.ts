/** Rooms and membership. Every change emits `room.updated` to the members. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../../plugins/openapi.js';
import {
  AddMembersBody, CreateRoomBody, MemberParams, PublicRoom, PublicRoomsQuery, ReadReceiptEntry, Room, RoomParams, RoomSummary, SetRoleBody, UpdateRoomBody,
} from './rooms.schemas.js';

const tags = ['rooms'];
/** The room as it now is, with its members. */
const RoomNow = Type.With(Room, { description: 'The room as it now is' });

export const roomsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { rooms } = app.hub;

  app.get(
    '/api/rooms',
    {
      schema: {
        operationId: 'listRooms',
        summary: 'Your rooms',
        description: 'The caller\'s rooms, most recently active first, each with the caller\'s role, member and unread counts and the last message.',
        tags,
        response: { 200: Type.Array(RoomSummary, { description: 'The caller\'s rooms' }) },
      },
    },
    async (req) => rooms.list(req.auth.userId),
  );

  app.get(
    '/api/rooms/public',
    {
      schema: {
        operationId: 'listPublicRooms',
        summary: 'Public channels',
        description: 'The directory of public channels anyone may join, newest first.',
        tags,
        querystring: PublicRoomsQuery,
        response: { 200: Type.Array(PublicRoom, { description: 'Public channels' }) },
      },
    },
    async (req) => rooms.listPublic(req.query.limit),
  );

  app.post(
    '/api/rooms',
    {
      schema: {
        operationId: 'createRoom',
        summary: 'Create a room',
        description:
          'Creates a direct room, group or channel; the caller becomes owner (of a direct room: a member). A direct room needs ' +
          'exactly one other member and is unique per pair: 201 when created, 200 with the existing room otherwise. ' +
          '400 VALIDATION_FAILED (member count, visibility); 404 INVALID_USER for an unknown member.',
        tags,
        body: CreateRoomBody,
        response: {
          200: Type.With(Room, { description: 'The direct room that already existed' }),
          201: Type.With(Room, { description: 'The new room' }),
          ...errorResponses(404),
        },
      },
    },
    async (req, reply) => {
      const { room, created } = await rooms.create(req.auth.userId, req.body);
      reply.code(created ? 201 : 200);
      return room;
    },
  );

  app.get(
    '/api/rooms/:id',
    {
      schema: {
        operationId: 'getRoom',
        summary: 'A room',
        description: 'A room with its members, for its members (and anyone, for a public channel). 404 INVALID_ROOM; 403 NOT_A_MEMBER.',
        tags,
        params: RoomParams,
        response: { 200: Type.With(Room, { description: 'The room' }), ...errorResponses(404) },
      },
    },
    async (req) => rooms.get(req.auth.userId, req.params.id),
  );

  app.get(
    '/api/rooms/:id/receipts',
    {
      schema: {
        operationId: 'listReadReceipts',
        summary: 'Read receipts of a room',
        description:
          'Where each member\'s cumulative read receipt stands (members who have read nothing are left out), so a client that ' +
          'starts can show read marks before any `message.read` event arrives. 403 NOT_A_MEMBER; 404 INVALID_ROOM.',
        tags,
        params: RoomParams,
        response: { 200: Type.Array(ReadReceiptEntry, { description: 'The receipts, by stream position' }), ...errorResponses(404) },
      },
    },
    async (req) => rooms.readReceipts(req.auth.userId, req.params.id),
  );

  app.patch(
    '/api/rooms/:id',
    {
      schema: {
        operationId: 'updateRoom',
        summary: 'Change a room',
        description: 'Changes name, topic, visibility (channels only) or `allow_edits` (room admins and the owner). 403 FORBIDDEN, NOT_A_MEMBER; 404 INVALID_ROOM.',
        tags,
        params: RoomParams,
        body: UpdateRoomBody,
        response: { 200: RoomNow, ...errorResponses(404) },
      },
    },
    async (req) => rooms.update(req.auth.userId, req.params.id, req.body),
  );

  app.delete(
    '/api/rooms/:id',
    {
      schema: {
        operationId: 'deleteRoom',
        summary: 'Delete a room',
        description: 'Deletes the room (its owner only): members are removed and get `room.deleted`; messages are kept. 204. 403 FORBIDDEN, NOT_A_MEMBER; 404 INVALID_ROOM.',
        tags,
        params: RoomParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses(404) },
      },
    },
    async (req, reply) => {
      await rooms.delete(req.auth.userId, req.params.id);
      reply.code(204).send(null);
    },
  );

  app.post(
    '/api/rooms/:id/members',
    {
      schema: {
        operationId: 'addRoomMembers',
        summary: 'Add members',
        description: 'Adds members to a group or channel (room admins and the owner); users already in it are ignored. 403 FORBIDDEN, NOT_A_MEMBER; 404 INVALID_ROOM, INVALID_USER.',
        tags,
        params: RoomParams,
        body: AddMembersBody,
        response: { 200: RoomNow, ...errorResponses(404) },
      },
    },
    async (req) => rooms.addMembers(req.auth.userId, req.params.id, req.body.user_ids),
  );

  app.delete(
    '/api/rooms/:id/members/:user_id',
    {
      schema: {
        operationId: 'removeRoomMember',
        summary: 'Remove a member',
        description:
          'Removes a member (the owner: anyone; admins: plain members); the removed user gets the `room.updated`. Removing oneself is ' +
          'leaving. 403 FORBIDDEN, NOT_A_MEMBER; 404 INVALID_ROOM, INVALID_USER (not a member).',
        tags,
        params: MemberParams,
        response: { 200: RoomNow, ...errorResponses(404) },
      },
    },
    async (req) => rooms.removeMember(req.auth.userId, req.params.id, req.params.user_id),
  );

  app.put(
    '/api/rooms/:id/members/:user_id/role',
    {
      schema: {
        operationId: 'setRoomMemberRole',
        summary: 'Set a member\'s role',
        description: 'Sets a member\'s role (the owner only). Making someone owner hands ownership over: the caller becomes admin. 403 FORBIDDEN, NOT_A_MEMBER; 404 INVALID_ROOM, INVALID_USER.',
        tags,
        params: MemberParams,
        body: SetRoleBody,
        response: { 200: RoomNow, ...errorResponses(404) },
      },
    },
    async (req) => rooms.setRole(req.auth.userId, req.params.id, req.params.user_id, req.body.role),
  );

  app.post(
    '/api/rooms/:id/join',
    {
      schema: {
        operationId: 'joinRoom',
        summary: 'Join a public channel',
        description: 'Joins a public channel; joining a room one is already in changes nothing. 403 FORBIDDEN (not a public channel); 404 INVALID_ROOM.',
        tags,
        params: RoomParams,
        response: { 200: RoomNow, ...errorResponses(404) },
      },
    },
    async (req) => rooms.join(req.auth.userId, req.params.id),
  );

  app.post(
    '/api/rooms/:id/leave',
    {
      schema: {
        operationId: 'leaveRoom',
        summary: 'Leave a room',
        description:
          'Leaves a room; an owner who leaves hands ownership to the longest-standing admin (else member). Direct rooms cannot be ' +
          'left (403 FORBIDDEN). 403 NOT_A_MEMBER; 404 INVALID_ROOM.',
        tags,
        params: RoomParams,
        response: { 200: RoomNow, ...errorResponses(404) },
      },
    },
    async (req) => rooms.leave(req.auth.userId, req.params.id),
  );
};
