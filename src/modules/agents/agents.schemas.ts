/** Agent tokens and bot users: request and response shapes. */
import { Type } from 'typebox';
import { DateTime, Nullable, Uuid } from '../users/users.schemas.js';

/** What a token may do; each tool needs one scope. */
export const SCOPES = ['rooms:read', 'messages:read', 'messages:write', 'search', 'presence:read'] as const;
export type Scope = (typeof SCOPES)[number];

export const ScopeSchema = Type.Enum(SCOPES);

const NewToken = {
  scopes: Type.Array(ScopeSchema, { minItems: 1, maxItems: SCOPES.length, uniqueItems: true }),
  expires_in_s: Type.Optional(Type.Integer({ minimum: 60, maximum: 31_536_000, description: 'Lifetime, seconds (at most 365 days); omit for a token that does not expire.' })),
};

/** A display name: 1-100 characters, not only white space (it is stored trimmed). */
const Name = (description?: string) => Type.String({ minLength: 1, maxLength: 100, pattern: '\\S', ...(description ? { description } : {}) });

export const CreateAgentTokenBody = Type.Object({ name: Name(), ...NewToken }, { additionalProperties: false });

export const CreateBotBody = Type.Object(
  { name: Name('The bot user\'s display name; also the first token\'s name.'), ...NewToken },
  { additionalProperties: false },
);

export const AgentTokenParams = Type.Object({ id: Uuid });

export const AgentToken = Type.Object({
  id: Uuid,
  user_id: Type.With(Uuid, { description: 'The user the token acts as (the caller, or a bot).' }),
  name: Type.String(),
  scopes: Type.Array(ScopeSchema),
  created_at: DateTime,
  expires_at: Nullable(Type.With(DateTime, { description: 'Null: never expires.' })),
  last_used_at: Nullable(DateTime),
});

/** A token as returned once, at creation: the listing fields plus the secret. */
export const CreatedAgentToken = Type.Object({ ...AgentToken.properties, token: Type.String({ description: 'The bearer token (`sbat_…`). Shown only now.' }) });

export const CreatedBot = Type.Object({ user: Type.Object({ id: Uuid, name: Type.String() }), token: CreatedAgentToken });
