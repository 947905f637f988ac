/** Auth requests, sessions and devices. */
import { Type } from 'typebox';
import { DateTime, SelfUser, Uuid } from '../users/users.schemas.js';

export const RegisterBody = Type.Object(
  {
    email: Type.String({ format: 'email', maxLength: 254 }),
    name: Type.String({ minLength: 1, maxLength: 100, pattern: '\\S', description: 'Display name; must not be blank.' }),
    password: Type.String({ minLength: 8, maxLength: 1024 }),
    username: Type.Optional(
      Type.String({ pattern: '^[a-z0-9._-]{1,32}$', description: 'Unique on this hub; omitted: derived from the email\'s local part (bob, bob2, ...).' }),
    ),
    device_name: Type.Optional(Type.String({ maxLength: 100 })),
    invite_code: Type.Optional(Type.String({ maxLength: 100, description: 'Required when auth.registration is "invite".' })),
  },
  { additionalProperties: false },
);

export const LoginBody = Type.Object(
  {
    email: Type.String({ maxLength: 254 }),
    password: Type.String({ maxLength: 1024 }),
    device_name: Type.Optional(Type.String({ maxLength: 100 })),
  },
  { additionalProperties: false },
);

export const RefreshBody = Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

/** What register, login and refresh return. `expires_in` is the access token's lifetime in seconds. */
export const SessionResponse = Type.Object({
  token: Type.String({ description: 'The access token (a JWT): `Authorization: Bearer <token>`.' }),
  refresh_token: Type.String({ description: 'Single use: POST /api/auth/refresh answers the next one.' }),
  expires_in: Type.Integer({ description: 'The access token\'s lifetime, seconds.' }),
  device_id: Uuid,
  user: SelfUser,
});

export const Device = Type.Object({
  id: Uuid,
  name: Type.String(),
  user_agent: Type.String(),
  ip: Type.String(),
  created_at: DateTime,
  last_seen_at: DateTime,
  current: Type.Boolean({ description: 'The session making this request.' }),
});

export const DeviceParams = Type.Object({ id: Uuid });
