import { Type } from 'typebox';
import { Uuid } from '../users/users.schemas.js';

export const RoomParams = Type.Object({ id: Uuid });
export const MemberParams = Type.Object({ id: Uuid, user_id: Uuid });

export const CreateRoomBody = Type.Object(
  {
    type: Type.Union([Type.Literal('direct'), Type.Literal('group'), Type.Literal('channel')]),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    topic: Type.Optional(Type.String({ maxLength: 1000 })),
    members: Type.Optional(Type.Array(Uuid, { maxItems: 1000 })),
    visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])),
  },
  { additionalProperties: false },
);

export const UpdateRoomBody = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 200 })),
    topic: Type.Optional(Type.String({ maxLength: 1000 })),
    visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])),
    allow_edits: Type.Optional(Type.Boolean({ description: 'Whether senders may edit their messages (default true).' })),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const AddMembersBody = Type.Object({ user_ids: Type.Array(Uuid, { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false });

export const SetRoleBody = Type.Object(
  { role: Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member')]) },
  { additionalProperties: false },
);
