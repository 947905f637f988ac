/** SQL for device sessions, refresh tokens and invite codes (the registration policy's). */
import type { Queryable } from '../../db/database.js';

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

export interface InviteRow {
  code: string;
  created_by: string | null;
  max_uses: number;
  uses: number;
  expires_at: Date | null;
  created_at: Date;
}

export const authRepository = {
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

  /** Serialises the creation of a bridge bot's device session until the transaction ends. */
  async lockBridgeDevice(q: Queryable, botId: string): Promise<void> {
    await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`bridge-device:${botId}`]);
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

  /** Revokes every active device session of a user and deletes their refresh tokens. */
  async revokeAllDevices(q: Queryable, userId: string): Promise<void> {
    await q.query('UPDATE devices SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL', [userId]);
    await q.query('DELETE FROM refresh_tokens WHERE device_id IN (SELECT id FROM devices WHERE user_id = $1)', [userId]);
  },

  async insertInvite(q: Queryable, i: { code: string; createdBy: string; maxUses: number; expiresInS: number | null }): Promise<InviteRow> {
    const { rows } = await q.query<InviteRow>(
      `INSERT INTO invite_codes (code, created_by, max_uses, expires_at)
       VALUES ($1, $2, $3, CASE WHEN $4::int IS NULL THEN NULL ELSE now() + make_interval(secs => $4::int) END) RETURNING *`,
      [i.code, i.createdBy, i.maxUses, i.expiresInS],
    );
    return rows[0];
  },

  async listInvites(q: Queryable): Promise<InviteRow[]> {
    const { rows } = await q.query<InviteRow>('SELECT * FROM invite_codes ORDER BY created_at DESC');
    return rows;
  },

  /** @returns true when the code existed. */
  async deleteInvite(q: Queryable, code: string): Promise<boolean> {
    const { rowCount } = await q.query('DELETE FROM invite_codes WHERE code = $1', [code]);
    return rowCount === 1;
  },

  /**
   * Uses up one use of an invite code, atomically (concurrent registrations cannot overuse it).
   * @returns false when the code is unknown, used up or expired.
   */
  async consumeInvite(q: Queryable, code: string): Promise<boolean> {
    const { rowCount } = await q.query(
      `UPDATE invite_codes SET uses = uses + 1
       WHERE code = $1 AND uses < max_uses AND (expires_at IS NULL OR expires_at > now())`,
      [code],
    );
    return rowCount === 1;
  },
};
