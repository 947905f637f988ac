/**
 * The operator's side: who is an admin, server-wide user and room management (deactivate a user,
 * delete a room), server stats, invite codes, and creating users from the CLI.
 *
 * A user is an admin when `users.is_admin` is set (`switchboard user create --admin`) or their email
 * is listed in `auth.admin_emails`.
 */
import crypto from 'node:crypto';
import argon2 from 'argon2';
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { Hub } from '../../hub.js';
import { CLOSE, closeSockets } from '../../events/socket-control.js';
import { authRepository, type UserRow } from '../auth/auth.repository.js';
import { normaliseEmail } from '../auth/auth.service.js';
import { selfUser } from '../users/users.view.js';
import { adminRepository as repo, type AdminRoomRow, type InviteRow } from './admin.repository.js';

/** A user as admins see them: the self view plus `deactivated_at` (ISO 8601 or null). */
export function adminUserView(u: UserRow) {
  return { ...selfUser(u), deactivated_at: u.deactivated_at?.toISOString() ?? null };
}

function adminRoomView(r: AdminRoomRow) {
  return {
    id: r.id,
    type: r.type,
    name: r.name,
    topic: r.topic,
    visibility: r.visibility,
    created_by: r.created_by,
    created_at: r.created_at.toISOString(),
    member_count: r.member_count,
    message_count: r.message_count,
  };
}

function inviteView(i: InviteRow) {
  return {
    code: i.code,
    created_by: i.created_by,
    max_uses: i.max_uses,
    uses: i.uses,
    expires_at: i.expires_at?.toISOString() ?? null,
    created_at: i.created_at.toISOString(),
  };
}

export class AdminService {
  private readonly adminEmails: Set<string>;

  constructor(private readonly hub: Pick<Hub, 'db' | 'stream' | 'pubsub' | 'fanout' | 'config' | 'rooms'>) {
    this.adminEmails = new Set(hub.config.auth.admin_emails.map(normaliseEmail));
  }

  /** True when the user has `is_admin` or an email in `auth.admin_emails`, and is not deactivated. */
  async isAdmin(userId: string): Promise<boolean> {
    const user = await repo.findUser(this.hub.db, userId);
    return !!user && !user.deactivated_at && (user.is_admin || (user.email !== null && this.adminEmails.has(user.email)));
  }

  /** A page of users (deactivated ones included), newest first: `{users, total}`. `q` matches name or email, case-insensitive. */
  async listUsers(f: { q?: string; limit: number; offset: number }) {
    const { rows, total } = await repo.listUsers(this.hub.db, f);
    return { users: rows.map(adminUserView), total };
  }

  /**
   * Deactivates a user: sets `deactivated_at`, revokes every device session (refresh tokens deleted,
   * access tokens refused from now on) and closes all their sockets on every node with 4401.
   * Their rooms, memberships and messages are kept. Idempotent.
   * @throws AppError INVALID_USER (404), FORBIDDEN (403) for the caller themself.
   */
  async deactivate(adminId: string, userId: string) {
    if (adminId === userId) throw new AppError('FORBIDDEN', 'Admins cannot deactivate themselves');
    const user = await this.hub.db.transaction(async (tx) => {
      const row = await repo.deactivateUser(tx, userId);
      if (row) await repo.revokeAllDevices(tx, userId);
      return row;
    });
    if (!user) throw new AppError('INVALID_USER', 'User not found');
    await closeSockets(this.hub.pubsub, userId, { code: CLOSE.UNAUTHORIZED, reason: 'account deactivated' });
    return adminUserView(user);
  }

  /** A page of rooms (not deleted), newest first, with member and message counts: `{rooms, total}`. `q` matches the name. */
  async listRooms(f: { q?: string; limit: number; offset: number }) {
    const { rows, total } = await repo.listRooms(this.hub.db, f);
    return { rooms: rows.map(adminRoomView), total };
  }

  /**
   * Deletes any room, as its owner could: members are removed and get `room.deleted` (with
   * `deleted_by` = the admin); messages are kept.
   * @throws AppError INVALID_ROOM (404).
   */
  async deleteRoom(adminId: string, roomId: string): Promise<void> {
    await this.hub.rooms.delete(adminId, roomId, { asServerAdmin: true });
  }

  /**
   * Server stats: `{users, deactivated_users, rooms, messages}` counted in the database (all nodes),
   * `sockets` open on this node, and the latest `stream_position`.
   */
  async stats() {
    const [counts, streamPosition] = await Promise.all([repo.counts(this.hub.db), this.hub.stream.maxPosition()]);
    return { ...counts, sockets: this.hub.fanout.connectionCount, stream_position: streamPosition };
  }

  /**
   * Issues an invite code for `auth.registration = "invite"`: usable `max_uses` times, until
   * `expires_in_s` seconds from now (never expires when omitted).
   */
  async createInvite(adminId: string, opts: { max_uses: number; expires_in_s?: number }) {
    const code = crypto.randomBytes(12).toString('base64url');
    return inviteView(await repo.insertInvite(this.hub.db, { code, createdBy: adminId, maxUses: opts.max_uses, expiresInS: opts.expires_in_s ?? null }));
  }

  /** Every invite code, newest first (used-up and expired ones included). */
  async listInvites() {
    return (await repo.listInvites(this.hub.db)).map(inviteView);
  }

  /** Withdraws an invite code. @throws AppError NOT_FOUND (404). */
  async deleteInvite(code: string): Promise<void> {
    if (!(await repo.deleteInvite(this.hub.db, code))) throw new AppError('NOT_FOUND', 'No such invite code');
  }
}

/**
 * Creates a user with a password (argon2id), whatever `auth.registration` says; `admin` sets
 * `is_admin`. Used by `switchboard user create`.
 * @throws AppError EMAIL_TAKEN (409).
 */
export async function createUser(db: Database, u: { email: string; name: string; password: string; admin: boolean }) {
  const passwordHash = await argon2.hash(u.password, { type: argon2.argon2id });
  return db.transaction(async (tx) => {
    const user = await authRepository.insertUser(tx, { email: normaliseEmail(u.email), name: u.name.trim(), passwordHash });
    if (!user) throw new AppError('EMAIL_TAKEN', 'An account with this email exists');
    if (!u.admin) return adminUserView(user);
    return adminUserView(await repo.setAdmin(tx, user.id));
  });
}
