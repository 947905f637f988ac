/**
 * Accounts and device sessions: registration, login, refresh-token rotation with reuse detection,
 * device listing and revocation, and access-token authentication.
 *
 * Rotation follows the OAuth 2.0 Security BCP (RFC 9700 §4.14.2): each refresh returns a new refresh
 * token and retires the old one; presenting a retired token again revokes the whole family (the device
 * session), so a stolen token is useful at most once.
 */
import type { E2eeService } from '../e2ee/e2ee.service.js';
import crypto from 'node:crypto';
import argon2 from 'argon2';
import type { Database, Queryable } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { PubSub } from '../../events/pubsub.js';
import { CLOSE, closeSockets } from '../../events/socket-control.js';
import type { Config } from '../../config/schema.js';
import type { UsersService } from '../users/users.service.js';
import type { UserRow } from '../users/users.repository.js';
import { authRepository as repo, type DeviceRow, type InviteRow } from './auth.repository.js';
import { hashToken, newRefreshToken, type TokenIssuer } from './tokens.js';

export interface DeviceInfo {
  name?: string;
  userAgent: string;
  ip: string;
}

/** Who a request or socket acts as. */
export interface AuthContext {
  userId: string;
  deviceId: string;
  userName: string;
}

// Verified against when the email is unknown, so a failed login takes as long either way.
const DUMMY_HASH = argon2.hash('switchboard-dummy-password', { type: argon2.argon2id });

export class AuthService {
  constructor(
    private readonly db: Database,
    private readonly users: UsersService,
    private readonly tokens: TokenIssuer,
    private readonly pubsub: PubSub,
    /** A revoked session's E2EE device goes with it (keys, pending to-device messages). */
    private readonly e2ee: E2eeService,
    private readonly refreshTtlS: number,
    /** `auth.admin_emails`: addresses that get admin rights, so they may not be claimed freely. */
    adminEmails: string[] = [],
  ) {
    this.adminEmails = new Set(adminEmails.map(normaliseEmail));
  }

  private readonly adminEmails: Set<string>;

  /**
   * Creates an account (argon2id password hash) and its first device session, as `policy`
   * (`auth.registration`) allows: "closed" refuses everyone; "invite" needs a valid `invite_code`,
   * one use of which is consumed in the same transaction (not when the registration fails).
   * @throws AppError REGISTRATION_CLOSED (403), INVALID_INVITE (403: missing, unknown, used up or expired), EMAIL_TAKEN (409).
   */
  async register(
    body: { email: string; name: string; password: string; username?: string; device_name?: string; invite_code?: string },
    device: DeviceInfo,
    policy: Config['auth']['registration'],
  ) {
    if (policy === 'closed') throw new AppError('REGISTRATION_CLOSED', 'Registration is closed on this server');
    const email = normaliseEmail(body.email);
    // Addresses are not verified: one listed in auth.admin_emails would make whoever claims it first an
    // admin, so it needs an invite even on an open server (or `switchboard user create`).
    const needsInvite = policy === 'invite' || this.adminEmails.has(email);
    if (needsInvite && !body.invite_code) throw new AppError('INVALID_INVITE', 'Registration with this address needs an invite code');
    const passwordHash = await argon2.hash(body.password, { type: argon2.argon2id });
    return this.db.transaction(async (tx) => {
      const user = await this.users.createAccount(tx, { email, name: body.name.trim(), passwordHash, username: body.username });
      if (!user) throw new AppError('EMAIL_TAKEN', 'An account with this email exists');
      if (needsInvite && !(await repo.consumeInvite(tx, body.invite_code!))) {
        throw new AppError('INVALID_INVITE', 'Unknown, used up or expired invite code');
      }
      return this.openSession(tx, user, { ...device, name: body.device_name ?? device.name });
    });
  }

  /**
   * Opens a device session for a password login.
   * @throws AppError INVALID_CREDENTIALS (401) for an unknown email, wrong password or deactivated account.
   */
  async login(body: { email: string; password: string; device_name?: string }, device: DeviceInfo) {
    const user = await this.users.findByEmail(normaliseEmail(body.email));
    const ok = user?.password_hash
      ? await argon2.verify(user.password_hash, body.password)
      : (await argon2.verify(await DUMMY_HASH, body.password), false);
    if (!user || !ok || user.deactivated_at) throw new AppError('INVALID_CREDENTIALS', 'Wrong email or password');
    return this.db.transaction((tx) => this.openSession(tx, user, { ...device, name: body.device_name ?? device.name }));
  }

  /**
   * Rotates a refresh token.
   * @throws AppError REFRESH_TOKEN_REUSED (401, the device session is revoked) or INVALID_REFRESH_TOKEN (401).
   */
  async refresh(refreshToken: string) {
    const hash = hashToken(refreshToken);
    const outcome = await this.db.transaction(async (tx) => {
      const row = await repo.findRefreshToken(tx, hash);
      if (!row || row.revoked_at || row.deactivated_at || row.expires_at.getTime() < Date.now()) return { kind: 'invalid' as const };
      if (row.used_at || !(await repo.markRefreshTokenUsed(tx, hash))) {
        await repo.revokeDevice(tx, row.device_id);
        await this.e2ee.revokeDevices(tx, { deviceId: row.device_id });
        return { kind: 'reused' as const, deviceId: row.device_id, userId: row.user_id };
      }
      const next = newRefreshToken();
      await repo.insertRefreshToken(tx, { hash: next.hash, deviceId: row.device_id, ttlS: this.refreshTtlS });
      const user = (await this.users.find(tx, row.user_id))!;
      return { kind: 'ok' as const, user, deviceId: row.device_id, refreshToken: next.token };
    });
    if (outcome.kind === 'invalid') throw new AppError('INVALID_REFRESH_TOKEN', 'Unknown, expired or revoked refresh token');
    if (outcome.kind === 'reused') {
      await this.closeSockets(outcome.userId, outcome.deviceId, 'refresh token reused; session revoked');
      await this.e2ee.devicesChanged(outcome.userId);
      throw new AppError('REFRESH_TOKEN_REUSED', 'Refresh token already used; this session has been revoked');
    }
    return {
      token: await this.tokens.sign({ userId: outcome.user.id, deviceId: outcome.deviceId }),
      refresh_token: outcome.refreshToken,
      expires_in: this.tokens.ttlS,
      device_id: outcome.deviceId,
      user: this.users.selfView(outcome.user),
    };
  }

  /** Ends the caller's device session (its refresh tokens stop working, its sockets close). */
  async logout(auth: AuthContext): Promise<void> {
    await this.revokeDevice(auth.userId, auth.deviceId);
  }

  async listDevices(auth: AuthContext) {
    const devices = await repo.listDevices(this.db, auth.userId);
    return devices.map((d: DeviceRow) => ({
      id: d.id,
      name: d.name,
      user_agent: d.user_agent,
      ip: d.ip,
      created_at: d.created_at.toISOString(),
      last_seen_at: d.last_seen_at.toISOString(),
      current: d.id === auth.deviceId,
    }));
  }

  /**
   * Revokes one of the user's device sessions and closes its sockets at once.
   * @throws AppError INVALID_DEVICE (404) when it is not an active device of this user.
   */
  async revokeDevice(userId: string, deviceId: string): Promise<void> {
    const { owner, e2ee } = await this.db.transaction(async (tx) => {
      const owner = await repo.revokeDevice(tx, deviceId, userId);
      return { owner, e2ee: owner ? await this.e2ee.revokeDevices(tx, { deviceId }) : [] };
    });
    if (!owner) throw new AppError('INVALID_DEVICE', 'No such active device');
    await this.closeSockets(userId, deviceId, 'device session revoked');
    if (e2ee.length) await this.e2ee.devicesChanged(userId);
  }

  /**
   * Resolves an access token to its user and device; the device must not be revoked nor the user
   * deactivated.
   * @throws AppError UNAUTHORIZED or TOKEN_EXPIRED (401).
   */
  async authenticate(token: string): Promise<AuthContext> {
    const claims = await this.tokens.verify(token);
    const state = await repo.deviceState(this.db, claims.deviceId);
    if (!state || state.user_id !== claims.userId || state.revoked_at || state.deactivated_at) {
      throw new AppError('UNAUTHORIZED', 'Session revoked');
    }
    return { userId: claims.userId, deviceId: claims.deviceId, userName: state.name };
  }

  /**
   * Revokes every device session of a user inside the caller's transaction (refresh tokens deleted;
   * access tokens are refused from the commit on). The caller closes their sockets after the commit.
   */
  async revokeAllDevices(tx: Queryable, userId: string): Promise<void> {
    await repo.revokeAllDevices(tx, userId);
    await this.e2ee.revokeDevices(tx, { userId });
  }

  /**
   * The one device session of a bridge bot whose bridge has `e2ee = true` (docs/BRIDGES.md): a
   * `devices` row named `bridge:<bridgeId>` without refresh tokens, created on first call (one per bot
   * across nodes), so the bot can register it as an E2EE device. @returns its id.
   */
  async bridgeBotDevice(botId: string, bridgeId: string): Promise<string> {
    const name = `bridge:${bridgeId}`;
    return this.db.transaction(async (tx) => {
      await repo.lockBridgeDevice(tx, botId);
      const found = (await repo.listDevices(tx, botId)).find((d) => d.name === name);
      return (found ?? (await repo.insertDevice(tx, { userId: botId, name, userAgent: '', ip: '' }))).id;
    });
  }

  /**
   * Revokes the device session of a bridge bot whose bridge no longer has `e2ee = true`, with its E2EE
   * device and keys, so members stop encrypting for a device nobody reads. Nothing when it has none.
   */
  async dropBridgeBotDevice(botId: string, bridgeId: string): Promise<void> {
    const found = (await repo.listDevices(this.db, botId)).find((d) => d.name === `bridge:${bridgeId}`);
    if (found) await this.revokeDevice(botId, found.id).catch((err) => {
      // Another node revoked it first.
      if (!(err instanceof AppError && err.code === 'INVALID_DEVICE')) throw err;
    });
  }

  /**
   * Issues an invite code for `auth.registration = "invite"`: usable `max_uses` times, until
   * `expires_in_s` seconds from now (never expires when omitted).
   */
  async createInvite(q: Queryable, creatorId: string, opts: { max_uses: number; expires_in_s?: number }) {
    const code = crypto.randomBytes(12).toString('base64url');
    return inviteView(await repo.insertInvite(q, { code, createdBy: creatorId, maxUses: opts.max_uses, expiresInS: opts.expires_in_s ?? null }));
  }

  /** Every invite code, newest first (used-up and expired ones included). */
  async listInvites() {
    return (await repo.listInvites(this.db)).map(inviteView);
  }

  /** Withdraws an invite code. @throws AppError NOT_FOUND (404). */
  async deleteInvite(q: Queryable, code: string): Promise<void> {
    if (!(await repo.deleteInvite(q, code))) throw new AppError('NOT_FOUND', 'No such invite code');
  }

  private async openSession(tx: Queryable, user: UserRow, device: DeviceInfo) {
    const d = await repo.insertDevice(tx, { userId: user.id, name: device.name ?? '', userAgent: device.userAgent, ip: device.ip });
    const refresh = newRefreshToken();
    await repo.insertRefreshToken(tx, { hash: refresh.hash, deviceId: d.id, ttlS: this.refreshTtlS });
    return {
      token: await this.tokens.sign({ userId: user.id, deviceId: d.id }),
      refresh_token: refresh.token,
      expires_in: this.tokens.ttlS,
      device_id: d.id,
      user: this.users.selfView(user),
    };
  }

  private closeSockets(userId: string, deviceId: string, reason: string): Promise<void> {
    return closeSockets(this.pubsub, userId, { deviceId, code: CLOSE.UNAUTHORIZED, reason });
  }
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

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}
