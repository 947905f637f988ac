/** The bridge API's requests and shapes (docs/BRIDGES.md). */
import { Type } from 'typebox';
import { Nullable, Uuid } from '../users/users.schemas.js';

export const GhostBody = Type.Object(
  {
    localpart: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9_.=-]+$', description: 'Starts with the bridge namespace, e.g. "whatsapp_16315551234".' }),
    name: Type.String({ minLength: 1, maxLength: 100 }),
    avatar_url: Type.Optional(Type.Union([Type.String({ maxLength: 2048 }), Type.Null()])),
  },
  { additionalProperties: false },
);

export const GhostView = Type.Object({
  id: Uuid,
  localpart: Type.String(),
  name: Type.String(),
  avatar_url: Nullable(Type.String()),
});

export const PortalBody = Type.Object(
  {
    remote_id: Type.String({ minLength: 1, maxLength: 255, description: 'The remote chat id, e.g. a WhatsApp wa_id.' }),
    name: Type.String({ maxLength: 200 }),
    topic: Type.Optional(Type.String({ maxLength: 1000 })),
    members: Type.Optional(Type.Array(Uuid, { maxItems: 500, description: 'Hub users (ghosts and people) to be members.' })),
  },
  { additionalProperties: false },
);

export const RemoteIdParams = Type.Object({ remote_id: Type.String({ minLength: 1, maxLength: 255 }) });

export const MessageParams = Type.Object({ id: Uuid });

export const BridgeWhoami = Type.Object({
  id: Type.String({ description: 'The bridge id (its [[bridges]] entry).' }),
  bot_user_id: Uuid,
  namespace: Type.String({ description: 'The prefix of its ghosts\' localparts.' }),
});

export const Portal = Type.Object({ room_id: Uuid, created: Type.Boolean() });
