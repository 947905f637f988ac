/**
 * The operator's side: who is an admin, server-wide user and room management (deactivate a user,
 * delete a room), server stats, invite codes, and creating users from the CLI.
 *
 * A user is an admin when `users.is_admin` is set (`switchboard user create --admin`) or their email
 * is listed in `auth.admin_emails`.
 */
import argon2 from 'argon2';
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { Hub } from '../../hub.js';
import { CLOSE, closeSockets } from '../../events/socket-control.js';
import { normaliseEmail } from '../auth/auth.service.js';
import { AuditService, CLI_ACTOR, type Actor } from '../audit/audit.service.js';
import type { UserRow } from '../users/users.repository.js';
import { UsersService } from '../users/users.service.js';
import { selfUser } from '../users/users.view.js';

/** A user as admins see them: the self view plus `deactivated_at` (ISO 8601 or null). `localServer`: federation.server_name. */
export function adminUserView(u: UserRow, localServer: string) {
  return { ...selfUser(u, localServer), deactivated_at: u.deactivated_at?.toISOString() ?? null };
}

export class AdminService {
  private readonly adminEmails: Set<string>;

  constructor(private readonly hub: Pick<Hub, 'db' | 'stream' | 'pubsub' | 'fanout' | 'config' | 'auth' | 'users' | 'rooms' | 'messages' | 'audit'>) {
    this.adminEmails = new Set(hub.config.auth.admin_emails.map(normaliseEmail));
  }

  /** True when the user has `is_admin` or an email in `auth.admin_emails`, and is not deactivated. */
  async isAdmin(userId: string): Promise<boolean> {
    const user = await this.hub.users.find(this.hub.db, userId);
    return !!user && !user.deactivated_at && (user.is_admin || (user.email !== null && this.adminEmails.has(user.email)));
  }

  /** A page of users (deactivated ones included), newest first: `{users, total}`. `q` matches name or email, case-insensitive. */
  async listUsers(f: { q?: string; limit: number; offset: number }) {
    const { rows, total } = await this.hub.users.page(f);
    return { users: rows.map((u) => adminUserView(u, this.hub.users.serverName)), total };
  }

  /**
   * Deactivates a user: sets `deactivated_at`, revokes every device session (refresh tokens deleted,
   * access tokens refused from now on) and closes all their sockets on every node with 4401.
   * Their rooms, memberships and messages are kept. Idempotent.
   * @throws AppError INVALID_USER (404), FORBIDDEN (403) for the caller themself.
   */
  async deactivate(actor: Actor, userId: string) {
    if (actor.user_id === userId) throw new AppError('FORBIDDEN', 'Admins cannot deactivate themselves');
    const user = await this.hub.db.transaction(async (tx) => {
      const row = await this.hub.users.deactivate(tx, userId);
      if (row) {
        await this.hub.auth.revokeAllDevices(tx, userId);
        await this.hub.audit.record(tx, actor, { action: 'user.deactivate', target_type: 'user', target_id: userId });
      }
      return row;
    });
    if (!user) throw new AppError('INVALID_USER', 'User not found');
    await closeSockets(this.hub.pubsub, userId, { code: CLOSE.UNAUTHORIZED, reason: 'account deactivated' });
    return adminUserView(user, this.hub.users.serverName);
  }

  /** A page of rooms (not deleted), newest first, with member and message counts: `{rooms, total}`. `q` matches the name. */
  listRooms(f: { q?: string; limit: number; offset: number }) {
    return this.hub.rooms.page(f);
  }

  /**
   * Deletes any room, as its owner could: members are removed and get `room.deleted` (with
   * `deleted_by` = the admin); messages are kept.
   * @throws AppError INVALID_ROOM (404).
   */
  async deleteRoom(actor: Actor, roomId: string): Promise<void> {
    await this.hub.rooms.delete(actor.user_id!, roomId, {
      asServerAdmin: true,
      alsoInTx: (tx) => this.hub.audit.record(tx, actor, { action: 'room.delete', target_type: 'room', target_id: roomId }),
    });
  }

  /**
   * Server stats: `{users, deactivated_users, rooms, messages}` counted in the database (all nodes),
   * `sockets` open on this node, and the latest `stream_position`.
   */
  async stats() {
    const [users, rooms, messages, streamPosition] = await Promise.all([
      this.hub.users.counts(),
      this.hub.rooms.count(),
      this.hub.messages.count(),
      this.hub.stream.maxPosition(),
    ]);
    return { ...users, rooms, messages, sockets: this.hub.fanout.connectionCount, stream_position: streamPosition };
  }

  /** See `AuthService.createInvite`; recorded in the audit trail (not the code itself). */
  createInvite(actor: Actor, opts: { max_uses: number; expires_in_s?: number }) {
    return this.hub.db.transaction(async (tx) => {
      const invite = await this.hub.auth.createInvite(tx, actor.user_id!, opts);
      await this.hub.audit.record(tx, actor, { action: 'invite.create', target_type: 'invite', target_id: null, detail: { max_uses: invite.max_uses, expires_at: invite.expires_at } });
      return invite;
    });
  }

  listInvites() {
    return this.hub.auth.listInvites();
  }

  /** @throws AppError NOT_FOUND (404). */
  deleteInvite(actor: Actor, code: string): Promise<void> {
    return this.hub.db.transaction(async (tx) => {
      await this.hub.auth.deleteInvite(tx, code);
      await this.hub.audit.record(tx, actor, { action: 'invite.delete', target_type: 'invite', target_id: null });
    });
  }

  /** The audit trail, newest first: `{entries}`. */
  audit(f: { limit: number; before?: number; action?: string; actor_id?: string }) {
    return this.hub.audit.list(f);
  }
}

/**
 * Creates a user with a password (argon2id), whatever `auth.registration` says; `admin` sets
 * `is_admin`. Used by `switchboard user create`.
 * @throws AppError EMAIL_TAKEN (409).
 */
export async function createUser(db: Database, u: { email: string; name: string; password: string; admin: boolean }, serverName: string) {
  const passwordHash = await argon2.hash(u.password, { type: argon2.argon2id });
  const users = new UsersService(db, serverName);
  const audit = new AuditService(db);
  return db.transaction(async (tx) => {
    const user = await users.createAccount(tx, { email: normaliseEmail(u.email), name: u.name.trim(), passwordHash });
    if (!user) throw new AppError('EMAIL_TAKEN', 'An account with this email exists');
    await audit.record(tx, CLI_ACTOR, { action: 'user.create', target_type: 'user', target_id: user.id, detail: { admin: u.admin } });
    if (!u.admin) return adminUserView(user, serverName);
    return adminUserView(await users.setAdmin(tx, user.id), serverName);
  });
}
