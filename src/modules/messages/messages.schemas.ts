import { Type } from 'typebox';
import { Uuid, WithDefault } from '../users/users.schemas.js';

export const RoomIdParams = Type.Object({ room_id: Uuid });
export const MessageIdParams = Type.Object({ id: Uuid });
export const ReactionParams = Type.Object({ id: Uuid, key: Type.String({ minLength: 1, maxLength: 64 }) });

export const SendMessageBody = Type.Object(
  {
    content: Type.String(),
    reply_to: Type.Optional(Uuid),
    txn_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    attachments: Type.Optional(Type.Array(Uuid, { maxItems: 10, description: 'Ids from POST /api/attachments, uploaded by the sender.' })),
    ts: Type.Optional(Type.Integer({ minimum: 0, description: 'Bridges only: original time on the remote network, ms since the epoch.' })),
    remote_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Bridges only: the remote message id; a repeat returns the first message.' })),
  },
  { additionalProperties: false },
);

export const EditMessageBody = Type.Object({ content: Type.String() }, { additionalProperties: false });

export const HistoryQuery = Type.Object({
  limit: WithDefault(Type.Integer({ minimum: 1, default: 50 })),
  before: Type.Optional(Uuid),
  after: Type.Optional(Uuid),
});

export const MarkReadBody = Type.Object({ message_id: Type.Optional(Uuid) }, { additionalProperties: false });
