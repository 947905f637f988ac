/** Message requests and the message shapes (`messageView`, send results, receipts, edit history). */
import { Type } from 'typebox';
import { Attachment } from '../attachments/attachments.schemas.js';
import { Envelope, EnvelopeOut, SenderKeyCiphertext } from '../e2ee/e2ee.schemas.js';
import { DateTime, Nullable, Uuid, WithDefault } from '../users/users.schemas.js';

export const RoomIdParams = Type.Object({ room_id: Uuid });
export const MessageIdParams = Type.Object({ id: Uuid });
export const ReactionParams = Type.Object({ id: Uuid, key: Type.String({ minLength: 1, maxLength: 64, description: 'An emoji or short text, URL-encoded.' }) });

export const SendMessageBody = Type.Object(
  {
    content: WithDefault(Type.String({ default: '', description: 'Text; mention someone with <@user_id>. May be empty when the message carries attachments. Absent (or empty) in encrypted rooms.' })),
    envelopes: Type.Optional(Type.Array(Envelope, { maxItems: 1000, description: 'Encrypted rooms: one envelope per E2EE device of every member, the sending device excluded (docs/E2EE.md).' })),
    sender_key: Type.Optional(SenderKeyCiphertext),
    reply_to: Type.Optional(Uuid),
    txn_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Makes the send idempotent per caller: a repeat returns the first message.' })),
    attachments: Type.Optional(Type.Array(Uuid, { maxItems: 10, description: 'Ids from POST /api/attachments, uploaded by the sender.' })),
    ts: Type.Optional(Type.Integer({ minimum: 0, description: 'Bridges only: original time on the remote network, ms since the epoch.' })),
    remote_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Bridges only: the remote message id; a repeat returns the first message.' })),
  },
  { additionalProperties: false },
);

export const EditMessageBody = Type.Object(
  {
    content: WithDefault(Type.String({ default: '', description: 'The new content; absent (or empty) in encrypted rooms.' })),
    envelopes: Type.Optional(Type.Array(Envelope, { maxItems: 1000, description: 'Encrypted rooms: the edit\'s envelopes, one per member device as for a send.' })),
    sender_key: Type.Optional(SenderKeyCiphertext),
  },
  { additionalProperties: false },
);

export const HistoryQuery = Type.Object({
  limit: WithDefault(Type.Integer({ minimum: 1, default: 50, description: 'Page size; at most limits.history_page_max.' })),
  before: Type.Optional(Type.With(Uuid, { description: 'A message id: the page before it (older).' })),
  after: Type.Optional(Type.With(Uuid, { description: 'A message id: the page after it (newer).' })),
});

export const MarkReadBody = Type.Object({ message_id: Type.Optional(Type.With(Uuid, { description: 'Default: the room\'s latest message.' })) }, { additionalProperties: false });

/** A message as history, `message.new` and search hits carry it (`messageView`). */
export const Message = Type.Object({
  id: Uuid,
  room_id: Uuid,
  user_id: Uuid,
  user_name: Type.String(),
  content: Type.String({ description: 'Text; mentions are written <@user_id>. Empty once redacted.' }),
  created_at: DateTime,
  edited_at: Nullable(DateTime),
  reply_to: Nullable(Uuid),
  attachments: Type.Array(Attachment),
  mentions: Type.Array(Uuid),
  reactions: Type.Array(Type.Object({ key: Type.String(), count: Type.Integer(), user_ids: Type.Array(Uuid) })),
  stream_position: Type.Integer({ description: 'Position in the event stream; pass as `since` to read or wait for what follows.' }),
  delivered_at: Nullable(DateTime),
  deleted: Type.Boolean(),
  encrypted: Type.Boolean({ description: 'Sent in an encrypted room: content is empty, the ciphertext is in `envelope`.' }),
  envelope: Nullable(Type.With(EnvelopeOut, { description: 'Encrypted messages: the envelope for the reading device (null when it has none).' })),
});

export const HistoryPage = Type.Object({
  messages: Type.Array(Message, { description: 'Oldest first.' }),
  has_more: Type.Boolean({ description: 'Whether older (with `after`: newer) messages exist.' }),
});

export const SendResult = Type.Object({
  id: Uuid,
  created_at: DateTime,
  stream_position: Type.Integer(),
  duplicate: Type.Boolean({ description: 'true: the txn_id or remote_id was used before; nothing was stored.' }),
  pending: Type.Optional(
    Type.Boolean({
      description: 'true: the room\'s host hub (docs/FEDERATION.md) has not ordered it yet; it is kept and sent, and `message.new` follows once it is sequenced. `stream_position` is 0 meanwhile.',
    }),
  ),
});

export const EditHistory = Type.Object({
  message_id: Uuid,
  versions: Type.Array(
    Type.Object({
      content: Type.String(),
      edited_at: Nullable(Type.With(DateTime, { description: 'Null for the original.' })),
      editor_id: Uuid,
    }),
    { description: 'Oldest first; the last is the current content.' },
  ),
});

export const ReactionCount = Type.Object({ key: Type.String(), count: Type.Integer({ description: 'Reactions with this key on the message now.' }) });

/** The read receipt in force after a mark-read. */
export const ReadReceipt = Type.Object({
  room_id: Uuid,
  message_id: Nullable(Type.With(Uuid, { description: 'Null when the member has read nothing (an empty room, or they joined after the latest read).' })),
  read_at: Nullable(DateTime),
  moved: Type.Boolean({ description: 'false: the receipt was already there or further, and is returned unchanged.' }),
});
