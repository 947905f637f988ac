/** Room requests and the room shapes (`roomView`, the room list, the public directory). */
import { Type } from 'typebox';
import { DateTime, Nullable, Uuid, WithDefault } from '../users/users.schemas.js';

export const RoomParams = Type.Object({ id: Uuid });
export const MemberParams = Type.Object({ id: Uuid, user_id: Uuid });

export const RoomType = Type.Enum(['direct', 'group', 'channel'], { type: 'string' });
export const Visibility = Type.Enum(['public', 'private'], { type: 'string' });
const Role = Type.Enum(['owner', 'admin', 'member'], { type: 'string' });

export const CreateRoomBody = Type.Object(
  {
    type: Type.Union([Type.Literal('direct'), Type.Literal('group'), Type.Literal('channel')]),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    topic: Type.Optional(Type.String({ maxLength: 1000 })),
    members: Type.Optional(Type.Array(Uuid, { maxItems: 1000, description: 'Other members (a direct room: exactly one).' })),
    visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')], { description: 'Only channels can be public. Default private.' })),
    encrypted: Type.Optional(Type.Boolean({ description: 'End-to-end encrypted (docs/E2EE.md). Default false.' })),
  },
  { additionalProperties: false },
);

export const UpdateRoomBody = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 200 })),
    topic: Type.Optional(Type.String({ maxLength: 1000 })),
    visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])),
    allow_edits: Type.Optional(Type.Boolean({ description: 'Whether senders may edit their messages (default true).' })),
    encrypted: Type.Optional(Type.Boolean({ description: 'true turns end-to-end encryption on, for good (false is 400).' })),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const AddMembersBody = Type.Object({ user_ids: Type.Array(Uuid, { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false });

export const SetRoleBody = Type.Object(
  { role: Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member')]) },
  { additionalProperties: false },
);

export const PublicRoomsQuery = Type.Object({ limit: WithDefault(Type.Integer({ minimum: 1, maximum: 200, default: 50 })) });

export const RoomMember = Type.Object({ user_id: Uuid, name: Type.String(), avatar_url: Nullable(Type.String()), role: Role, joined_at: DateTime });

/** A room with its members (`roomView`), as in `room.updated`. */
export const Room = Type.Object({
  id: Uuid,
  type: RoomType,
  name: Type.String(),
  topic: Type.String(),
  visibility: Visibility,
  allow_edits: Type.Boolean({ description: 'Whether senders may edit their messages.' }),
  encrypted: Type.Boolean({ description: 'End-to-end encrypted (docs/E2EE.md).' }),
  created_by: Nullable(Uuid),
  created_at: DateTime,
  members: Type.Array(RoomMember),
});

/** One of the caller's rooms in their room list. */
export const RoomSummary = Type.Object({
  id: Uuid,
  type: RoomType,
  name: Type.String(),
  topic: Type.String(),
  visibility: Visibility,
  allow_edits: Type.Boolean(),
  encrypted: Type.Boolean(),
  created_at: DateTime,
  role: Type.With(Role, { description: 'The caller\'s role.' }),
  member_count: Type.Integer(),
  unread_count: Type.Integer({ description: 'Messages from others after the caller\'s read receipt (redacted ones not counted).' }),
  last_message: Nullable(
    Type.Object({
      id: Uuid,
      user_id: Uuid,
      user_name: Type.String(),
      content: Type.String(),
      created_at: DateTime,
      stream_position: Type.Integer(),
      deleted: Type.Boolean(),
    }),
  ),
});

/** A public channel in the directory. */
export const PublicRoom = Type.Object({ id: Uuid, name: Type.String(), topic: Type.String(), member_count: Type.Integer(), created_at: DateTime });

/** A member's read receipt (`GET /api/rooms/:id/receipts`). */
export const ReadReceiptEntry = Type.Object({
  user_id: Uuid,
  message_id: Uuid,
  stream_position: Type.Integer({ description: 'The stream position of the message read: everything up to it counts as read.' }),
  read_at: DateTime,
});
