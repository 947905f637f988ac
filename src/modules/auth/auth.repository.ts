/** SQL for users' credentials, device sessions and refresh tokens. */
import type { Queryable } from '../../db/database.js';

export interface UserRow {
  id: string;
  email: string | null;
  name: string;
  password_hash: string | null;
  avatar_url: string | null;
  is_admin: boolean;
  deactivated_at: Date | null;
  created_at: Date;
  /** Set on ghost users: the bridge that puppets them (see migrations/0006_bridges.sql). */
  bridge_id: string | null;
}

export interface DeviceRow {
  id: string;
  user_id: string;
  name: string;
  user_agent: string;
  ip: string;
  created_at: Date;
  last_seen_at: Date;
  revoked_at: Date | null;
}

export interface RefreshTokenRow {
  token_hash: string;
  device_id: string;
  expires_at: Date;
  used_at: Date | null;
  user_id: string;
  revoked_at: Date | null;
  deactivated_at: Date | null;
}

export const authRepository = {
  async insertUser(q: Queryable, u: { email: string; name: string; passwordHash: string }): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>(
      `INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3)
       ON CONFLICT (email) DO NOTHING RETURNING *`,
      [u.email, u.name, u.passwordHash],
    );
    return rows[0] ?? null;
  },

  async findUserByEmail(q: Queryable, email: string): Promise<UserRow | null> {
    const { rows } = await q.query<UserRow>('SELECT * FROM users WHERE email = $1', [email]);
    return rows[0] ?? null;
  },

  async insertDevice(q: Queryable, d: { userId: string; name: string; userAgent: string; ip: string }): Promise<DeviceRow> {
    const { rows } = await q.query<DeviceRow>(
      'INSERT INTO devices (user_id, name, user_agent, ip) VALUES ($1, $2, $3, $4) RETURNING *',
      [d.userId, d.name, d.userAgent, d.ip],
    );
    return rows[0];
  },

  async insertRefreshToken(q: Queryable, t: { hash: string; deviceId: string; ttlS: number }): Promise<void> {
    await q.query(
      `INSERT INTO refresh_tokens (token_hash, device_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))`,
      [t.hash, t.deviceId, t.ttlS],
    );
  },

  async findRefreshToken(q: Queryable, hash: string): Promise<RefreshTokenRow | null> {
    const { rows } = await q.query<RefreshTokenRow>(
      `SELECT t.token_hash, t.device_id, t.expires_at, t.used_at, d.user_id, d.revoked_at, u.deactivated_at
       FROM refresh_tokens t JOIN devices d ON d.id = t.device_id JOIN users u ON u.id = d.user_id
       WHERE t.token_hash = $1`,
      [hash],
    );
    return rows[0] ?? null;
  },

  /** @returns true when this call rotated the token (it had not been used before). */
  async markRefreshTokenUsed(q: Queryable, hash: string): Promise<boolean> {
    const { rowCount } = await q.query('UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL', [hash]);
    return rowCount === 1;
  },

  /** @returns the revoked device's owner, or null when it was not an active device of `userId`. */
  async revokeDevice(q: Queryable, deviceId: string, userId?: string): Promise<string | null> {
    const { rows } = await q.query<{ user_id: string }>(
      `UPDATE devices SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR user_id = $2)
       RETURNING user_id`,
      [deviceId, userId ?? null],
    );
    if (rows[0]) await q.query('DELETE FROM refresh_tokens WHERE device_id = $1', [deviceId]);
    return rows[0]?.user_id ?? null;
  },

  async listDevices(q: Queryable, userId: string): Promise<DeviceRow[]> {
    const { rows } = await q.query<DeviceRow>(
      'SELECT * FROM devices WHERE user_id = $1 AND revoked_at IS NULL ORDER BY last_seen_at DESC',
      [userId],
    );
    return rows;
  },

  /** The state that decides whether an access token is still honoured, and touches last_seen_at (at most once a minute). */
  async deviceState(q: Queryable, deviceId: string): Promise<{ user_id: string; revoked_at: Date | null; deactivated_at: Date | null; name: string } | null> {
    const { rows } = await q.query(
      `WITH touched AS (
         UPDATE devices SET last_seen_at = now() WHERE id = $1 AND last_seen_at < now() - interval '1 minute'
       )
       SELECT d.user_id, d.revoked_at, u.deactivated_at, u.name FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1`,
      [deviceId],
    );
    return rows[0] ?? null;
  },
};
