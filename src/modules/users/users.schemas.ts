/** User and presence shapes, and the schema primitives every module shares (Uuid, DateTime, Nullable, WithDefault). */
import { Type, type TSchema } from 'typebox';

export const Uuid = Type.String({ format: 'uuid' });

/** An instant, ISO 8601 in UTC (`toISOString()`). */
export const DateTime = Type.String({ format: 'date-time' });

/** `schema` or null, for response shapes (in request schemas the branch order matters to type coercion: see UpdateMeBody). */
export function Nullable<T extends TSchema>(schema: T) {
  return Type.Union([schema, Type.Null()]);
}

/**
 * A property with a `default`: optional on the wire (not in `required`, so the OpenAPI document says
 * so), and always present once validated, because the app's Ajv fills defaults in (`useDefaults`).
 * Typed as the schema itself so handlers read it without a fallback.
 */
export function WithDefault<T extends TSchema>(schema: T): T {
  if (!('default' in schema)) throw new Error('WithDefault needs a schema with a default');
  return Type.Optional(schema) as unknown as T;
}

export const UserIdParams = Type.Object({ id: Uuid });

/** A user as other users see them (`publicUser`). */
export const PublicUser = Type.Object({
  id: Uuid,
  name: Type.String(),
  avatar_url: Nullable(Type.String()),
  created_at: DateTime,
  bridge_id: Nullable(Type.String({ description: 'The bridge puppeting this user (a ghost of a person on another network); null for hub users.' })),
  username: Type.String({ description: 'Unique on its hub, [a-z0-9._-].' }),
  address: Type.String({ description: 'The global address, @username:server_name (docs/FEDERATION.md).' }),
  server: Nullable(Type.String({ description: 'The server_name of the hub this user belongs to when it is another hub (a shadow user); null for users of this hub.' })),
});

/** A user as they see themselves (`selfUser`). */
export const SelfUser = Type.Object({
  ...PublicUser.properties,
  email: Nullable(Type.String({ description: 'Null for bots and bridge ghosts.' })),
  is_admin: Type.Boolean(),
});

export const UpdateMeBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '\\S', description: 'Display name; must not be blank.' })),
    // Null first: the app's Ajv coerces types, and with the string branch first `null` became "".
    avatar_url: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 2048 })], { description: 'null clears the avatar.' })),
  },
  { additionalProperties: false },
);

export const UserSearchQuery = Type.Object({
  q: Type.String({ minLength: 1, maxLength: 100, description: 'A name prefix (of the name or of a word in it), or a whole email address.' }),
  limit: WithDefault(Type.Integer({ minimum: 1, maximum: 50, default: 20 })),
});

export const PresenceStatus = Type.Enum(['online', 'away', 'busy', 'offline'], { type: 'string' });

/** A user's presence (`PresenceView`). */
export const Presence = Type.Object({
  user_id: Uuid,
  status: PresenceStatus,
  status_text: Type.String(),
  last_seen: Nullable(DateTime),
});

export const PresenceParams = Type.Object({ user_id: Uuid });

export const PresenceQueryBody = Type.Object({ user_ids: Type.Array(Uuid, { maxItems: 500 }) }, { additionalProperties: false });

export const SetPresenceBody = Type.Object(
  { status: PresenceStatus, status_text: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
