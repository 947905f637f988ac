/** Admin API requests and shapes. */
import { Type } from 'typebox';
import { RoomType, Visibility } from '../rooms/rooms.schemas.js';
import { DateTime, Nullable, SelfUser, Uuid, WithDefault } from '../users/users.schemas.js';

export const PageQuery = Type.Object(
  {
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Contains, case-insensitive (users: name or email; rooms: name).' })),
    limit: WithDefault(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    offset: WithDefault(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 })),
  },
  { additionalProperties: false },
);

export const IdParams = Type.Object({ id: Uuid });

/** A user as admins see them. */
export const AdminUser = Type.Object({ ...SelfUser.properties, deactivated_at: Nullable(DateTime) });

export const UserPage = Type.Object({ users: Type.Array(AdminUser), total: Type.Integer({ description: 'Users matching, all pages.' }) });

export const AdminRoom = Type.Object({
  id: Uuid,
  type: RoomType,
  name: Type.String(),
  topic: Type.String(),
  visibility: Visibility,
  created_by: Nullable(Uuid),
  created_at: DateTime,
  member_count: Type.Integer(),
  message_count: Type.Integer(),
});

export const RoomPage = Type.Object({ rooms: Type.Array(AdminRoom), total: Type.Integer({ description: 'Rooms matching, all pages.' }) });

export const Stats = Type.Object({
  users: Type.Integer({ description: 'All accounts, deactivated included.' }),
  deactivated_users: Type.Integer(),
  rooms: Type.Integer({ description: 'Rooms not deleted.' }),
  messages: Type.Integer({ description: 'All messages, redacted included.' }),
  sockets: Type.Integer({ description: 'WebSockets open on the node that answered.' }),
  stream_position: Type.Integer({ description: 'Position of the latest room event.' }),
});

export const CreateInviteBody = Type.Object(
  {
    max_uses: WithDefault(Type.Integer({ minimum: 1, maximum: 10000, default: 1, description: 'Registrations the code allows.' })),
    expires_in_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 31536000, description: 'Lifetime, seconds; never expires when omitted.' })),
  },
  { additionalProperties: false },
);

export const Invite = Type.Object({
  code: Type.String(),
  created_by: Nullable(Uuid),
  max_uses: Type.Integer(),
  uses: Type.Integer(),
  expires_at: Nullable(DateTime),
  created_at: DateTime,
});

/** Codes are base64url (see AdminService.createInvite). */
export const InviteParams = Type.Object({ code: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$' }) });

export const AuditQuery = Type.Object(
  {
    limit: WithDefault(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    before: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'An entry id: the page ends before it (older entries).' })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z_.]+$', description: 'Only this action, e.g. user.deactivate.' })),
    actor_id: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

/** One entry of the audit trail. */
export const AuditEntry = Type.Object({
  id: Type.Integer(),
  at: DateTime,
  actor_id: Type.Union([Uuid, Type.Null()], { description: 'The acting user; null for the CLI, the config and bridges.' }),
  via: Type.String({ description: '"api", "cli", "config" or "bridge:<id>".' }),
  action: Type.String({ description: 'user.deactivate, user.create, room.delete, invite.create, invite.delete, agent_token.create, agent_token.revoke, bot.create, bridge.ghost_create, bridge.portal_create, config.registration.' }),
  target_type: Type.String(),
  target_id: Nullable(Type.String()),
  detail: Type.Record(Type.String(), Type.Unknown()),
  ip: Nullable(Type.String({ description: 'Client address (behind a proxy: with server.trust_proxy).' })),
  user_agent: Nullable(Type.String()),
});

export const AuditPage = Type.Object({ entries: Type.Array(AuditEntry, { description: 'Newest first.' }) });
