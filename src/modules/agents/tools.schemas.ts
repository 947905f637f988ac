/**
 * JSON Schemas (TypeBox) of what the agent tools return. Objects are open (extra properties allowed) so
 * fields added to the wire shapes later do not break clients that validate results.
 */
import { Type, type TSchema } from 'typebox';
import { Uuid } from '../users/users.schemas.js';

const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** A message as in history and `message.new` (see `messageView`). */
export const Message = Type.Object({
  id: Uuid,
  room_id: Uuid,
  user_id: Uuid,
  user_name: Type.String(),
  content: Type.String({ description: 'Text; mentions are written <@user_id>.' }),
  created_at: DateTime,
  reply_to: Nullable(Uuid),
  attachments: Type.Array(Type.Unknown()),
  mentions: Type.Array(Uuid),
  reactions: Type.Array(Type.Object({ key: Type.String(), count: Type.Integer(), user_ids: Type.Array(Uuid) })),
  stream_position: Type.Integer({ description: 'Position in the event stream; pass as `since` to read or wait for what follows.' }),
  delivered_at: Nullable(DateTime),
  deleted: Type.Boolean(),
});

export const RoomSummary = Type.Object({
  id: Uuid,
  type: Type.String({ description: 'direct | group | channel' }),
  name: Type.String(),
  topic: Type.String(),
  visibility: Type.String({ description: 'public | private' }),
  created_at: DateTime,
  role: Type.String({ description: 'The user\'s role: owner | admin | member' }),
  member_count: Type.Integer(),
  unread_count: Type.Integer(),
  last_message: Nullable(
    Type.Object({ id: Uuid, user_id: Uuid, user_name: Type.String(), content: Type.String(), created_at: DateTime, stream_position: Type.Integer(), deleted: Type.Boolean() }),
  ),
});

export const Member = Type.Object({ user_id: Uuid, name: Type.String(), avatar_url: Nullable(Type.String()), role: Type.String(), joined_at: DateTime });

export const Room = Type.Object({
  id: Uuid,
  type: Type.String(),
  name: Type.String(),
  topic: Type.String(),
  visibility: Type.String(),
  created_by: Nullable(Uuid),
  created_at: DateTime,
  members: Type.Array(Member),
});

export const SearchHit = Type.Object({
  message: Message,
  highlight: Type.String({ description: 'The content with matches wrapped in <mark>…</mark>.' }),
  rank: Type.Number(),
});

export const Presence = Type.Object({
  user_id: Uuid,
  status: Type.String({ description: 'online | away | busy | offline' }),
  status_text: Type.String(),
  last_seen: Nullable(DateTime),
});
