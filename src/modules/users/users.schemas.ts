import { Type, type TSchema } from 'typebox';

export const Uuid = Type.String({ format: 'uuid' });

/**
 * A property with a `default`: optional on the wire (not in `required`, so the OpenAPI document says
 * so), and always present once validated, because the app's Ajv fills defaults in (`useDefaults`).
 * Typed as the schema itself so handlers read it without a fallback.
 */
export function WithDefault<T extends TSchema>(schema: T): T {
  if (!('default' in schema)) throw new Error('WithDefault needs a schema with a default');
  return Type.Optional(schema) as unknown as T;
}

/** A user as other users see them. */
export const PublicUser = Type.Object({
  id: Uuid,
  name: Type.String(),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
  /** The bridge puppeting this user (a ghost of a person on another network); null for hub users. */
  bridge_id: Type.Union([Type.String(), Type.Null()]),
});

/** A user as they see themselves (`GET /api/me`). */
export const SelfUser = Type.Object({
  id: Uuid,
  email: Type.Union([Type.String(), Type.Null()]),
  name: Type.String(),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
  is_admin: Type.Boolean(),
  created_at: Type.String({ format: 'date-time' }),
  bridge_id: Type.Union([Type.String(), Type.Null()]),
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
  q: Type.String({ minLength: 1, maxLength: 100 }),
  limit: WithDefault(Type.Integer({ minimum: 1, maximum: 50, default: 20 })),
});
