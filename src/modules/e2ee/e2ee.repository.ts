/** SQL for E2EE devices, their keys and the to-device mailbox: the only module that writes them. */
import type { Queryable } from '../../db/database.js';

export interface E2eeDeviceRow {
  /** The login session (`devices.id`). */
  device_id: string;
  user_id: string;
  signal_device_id: number;
  registration_id: number;
  identity_key: Buffer;
}

export type SignedKind = 'signed' | 'kyber_last_resort';
export type OneTimeKind = 'ec' | 'kyber';
/** Key-id spaces: EC one-time, Kyber (one-time and last resort share it), signed EC prekeys. */
export type IdSpace = 'ec' | 'kyber' | 'signed';

export interface KeyRow {
  key_id: number;
  public_key: Buffer;
  signature: Buffer | null;
}

export interface ToDeviceRow {
  id: string;
  sender_user_id: string;
  sender_device_id: number;
  type: number;
  body: Buffer;
}

/** A member device of an encrypted room (`roomDevices`); `device_id` null for a member without one. */
export interface RoomDeviceRow {
  room_id: string;
  user_id: string | null;
  device_id: string | null;
  signal_device_id: number | null;
  registration_id: number | null;
}

export const e2eeRepository = {
  async findDevice(q: Queryable, deviceId: string): Promise<E2eeDeviceRow | null> {
    const { rows } = await q.query<E2eeDeviceRow>('SELECT * FROM e2ee_devices WHERE device_id = $1', [deviceId]);
    return rows[0] ?? null;
  },

  /** Serialises device registrations of one user (the Signal device id allocation) until the transaction ends. */
  async lockUser(q: Queryable, userId: string): Promise<void> {
    await q.query(`SELECT pg_advisory_xact_lock(hashtextextended('e2ee:' || $1::text, 0))`, [userId]);
  },

  /** Registers a device with the smallest free Signal device id (1–127). @returns null when all 127 are taken. */
  async insertDevice(q: Queryable, d: { deviceId: string; userId: string; registrationId: number; identityKey: Buffer }): Promise<E2eeDeviceRow | null> {
    const { rows } = await q.query<E2eeDeviceRow>(
      `INSERT INTO e2ee_devices (device_id, user_id, signal_device_id, registration_id, identity_key)
       SELECT $1, $2, n, $3, $4 FROM generate_series(1, 127) n
        WHERE n NOT IN (SELECT signal_device_id FROM e2ee_devices WHERE user_id = $2)
        ORDER BY n LIMIT 1
       RETURNING *`,
      [d.deviceId, d.userId, d.registrationId, d.identityKey],
    );
    return rows[0] ?? null;
  },

  /** A new identity key (and registration id): the device's keys and key-id marks go with the old one. */
  async replaceIdentity(q: Queryable, deviceId: string, registrationId: number, identityKey: Buffer): Promise<E2eeDeviceRow> {
    for (const table of ['e2ee_signed_keys', 'e2ee_one_time_keys', 'e2ee_key_ids']) await q.query(`DELETE FROM ${table} WHERE device_id = $1`, [deviceId]);
    const { rows } = await q.query<E2eeDeviceRow>(
      'UPDATE e2ee_devices SET registration_id = $2, identity_key = $3 WHERE device_id = $1 RETURNING *',
      [deviceId, registrationId, identityKey],
    );
    return rows[0];
  },

  /** Deletes E2EE devices (their keys and pending to-device messages cascade). @returns the user ids that lost one. */
  async deleteDevices(q: Queryable, by: { deviceId: string } | { userId: string }): Promise<string[]> {
    const { rows } = await q.query<{ user_id: string }>(
      'deviceId' in by ? 'DELETE FROM e2ee_devices WHERE device_id = $1 RETURNING user_id' : 'DELETE FROM e2ee_devices WHERE user_id = $1 RETURNING user_id',
      ['deviceId' in by ? by.deviceId : by.userId],
    );
    return [...new Set(rows.map((r) => r.user_id))];
  },

  async listDevices(q: Queryable, userId: string): Promise<E2eeDeviceRow[]> {
    const { rows } = await q.query<E2eeDeviceRow>('SELECT * FROM e2ee_devices WHERE user_id = $1 ORDER BY signal_device_id', [userId]);
    return rows;
  },

  async findBySignalId(q: Queryable, userId: string, signalDeviceId: number): Promise<E2eeDeviceRow | null> {
    const { rows } = await q.query<E2eeDeviceRow>('SELECT * FROM e2ee_devices WHERE user_id = $1 AND signal_device_id = $2', [userId, signalDeviceId]);
    return rows[0] ?? null;
  },

  /** The highest key ids a device stored, per id space. */
  async keyIdMarks(q: Queryable, deviceId: string): Promise<Map<IdSpace, number>> {
    const { rows } = await q.query<{ kind: IdSpace; max_key_id: number }>('SELECT kind, max_key_id FROM e2ee_key_ids WHERE device_id = $1 FOR UPDATE', [deviceId]);
    return new Map(rows.map((r) => [r.kind, r.max_key_id]));
  },

  async setKeyIdMark(q: Queryable, deviceId: string, kind: IdSpace, maxKeyId: number): Promise<void> {
    await q.query(
      `INSERT INTO e2ee_key_ids (device_id, kind, max_key_id) VALUES ($1, $2, $3)
       ON CONFLICT (device_id, kind) DO UPDATE SET max_key_id = GREATEST(e2ee_key_ids.max_key_id, EXCLUDED.max_key_id)`,
      [deviceId, kind, maxKeyId],
    );
  },

  async signedKey(q: Queryable, deviceId: string, kind: SignedKind): Promise<KeyRow | null> {
    const { rows } = await q.query<KeyRow>('SELECT key_id, public_key, signature FROM e2ee_signed_keys WHERE device_id = $1 AND kind = $2', [deviceId, kind]);
    return rows[0] ?? null;
  },

  async putSignedKey(q: Queryable, deviceId: string, kind: SignedKind, k: { keyId: number; publicKey: Buffer; signature: Buffer }): Promise<void> {
    await q.query(
      `INSERT INTO e2ee_signed_keys (device_id, kind, key_id, public_key, signature) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (device_id, kind) DO UPDATE SET key_id = EXCLUDED.key_id, public_key = EXCLUDED.public_key, signature = EXCLUDED.signature`,
      [deviceId, kind, k.keyId, k.publicKey, k.signature],
    );
  },

  /** Stored one-time keys of a device among `keyIds`. */
  async oneTimeKeys(q: Queryable, deviceId: string, kind: OneTimeKind, keyIds: number[]): Promise<KeyRow[]> {
    const { rows } = await q.query<KeyRow>(
      'SELECT key_id, public_key, signature FROM e2ee_one_time_keys WHERE device_id = $1 AND kind = $2 AND key_id = ANY($3::int[])',
      [deviceId, kind, keyIds],
    );
    return rows;
  },

  async insertOneTimeKeys(q: Queryable, deviceId: string, kind: OneTimeKind, keys: { keyId: number; publicKey: Buffer; signature: Buffer | null }[]): Promise<void> {
    if (!keys.length) return;
    await q.query(
      `INSERT INTO e2ee_one_time_keys (device_id, kind, key_id, public_key, signature)
       SELECT $1, $2, k.key_id, k.public_key, k.signature
         FROM unnest($3::int[], $4::bytea[], $5::bytea[]) AS k(key_id, public_key, signature)
       ON CONFLICT DO NOTHING`,
      [deviceId, kind, keys.map((k) => k.keyId), keys.map((k) => k.publicKey), keys.map((k) => k.signature)],
    );
  },

  /** One-time keys left per kind. */
  async counts(q: Queryable, deviceId: string): Promise<{ pre_keys: number; kyber_pre_keys: number }> {
    const { rows } = await q.query<{ ec: number; kyber: number }>(
      `SELECT count(*) FILTER (WHERE kind = 'ec')::int AS ec, count(*) FILTER (WHERE kind = 'kyber')::int AS kyber
         FROM e2ee_one_time_keys WHERE device_id = $1`,
      [deviceId],
    );
    return { pre_keys: rows[0].ec, kyber_pre_keys: rows[0].kyber };
  },

  /**
   * Takes (deletes and returns) a device's lowest one-time key of `kind`. Rows another transaction
   * is taking are skipped (`SKIP LOCKED`), so concurrent claims, on any node, never get the same key.
   */
  async takeOneTimeKey(q: Queryable, deviceId: string, kind: OneTimeKind): Promise<KeyRow | null> {
    const { rows } = await q.query<KeyRow>(
      `DELETE FROM e2ee_one_time_keys WHERE (device_id, kind, key_id) = (
         SELECT device_id, kind, key_id FROM e2ee_one_time_keys WHERE device_id = $1 AND kind = $2
          ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING key_id, public_key, signature`,
      [deviceId, kind],
    );
    return rows[0] ?? null;
  },

  /** Pending to-device messages of a device. */
  async pendingCount(q: Queryable, deviceId: string): Promise<number> {
    const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM e2ee_to_device WHERE device_id = $1', [deviceId]);
    return rows[0].n;
  },

  async insertToDevice(q: Queryable, m: { deviceId: string; senderUserId: string; senderDeviceId: number; type: number; body: Buffer }): Promise<string> {
    const { rows } = await q.query<{ id: string }>(
      'INSERT INTO e2ee_to_device (device_id, sender_user_id, sender_device_id, type, body) VALUES ($1, $2, $3, $4, $5) RETURNING id',
      [m.deviceId, m.senderUserId, m.senderDeviceId, m.type, m.body],
    );
    return rows[0].id;
  },

  async listToDevice(q: Queryable, deviceId: string, limit: number): Promise<ToDeviceRow[]> {
    const { rows } = await q.query<ToDeviceRow>(
      'SELECT id::text AS id, sender_user_id, sender_device_id, type, body FROM e2ee_to_device WHERE device_id = $1 ORDER BY id LIMIT $2',
      [deviceId, limit],
    );
    return rows;
  },

  async ackToDevice(q: Queryable, deviceId: string, upTo: number): Promise<void> {
    await q.query('DELETE FROM e2ee_to_device WHERE device_id = $1 AND id <= $2', [deviceId, upTo]);
  },

  /**
   * The members of the encrypted rooms among `roomIds`, with each member's E2EE devices (a read-only
   * join of the rooms module's tables). A room appears (with null user) even with no member device.
   */
  async roomDevices(q: Queryable, roomIds: string[]): Promise<RoomDeviceRow[]> {
    const { rows } = await q.query<RoomDeviceRow>(
      `SELECT r.id AS room_id, m.user_id, d.device_id, d.signal_device_id, d.registration_id
         FROM rooms r
         LEFT JOIN room_members m ON m.room_id = r.id
         LEFT JOIN e2ee_devices d ON d.user_id = m.user_id
        WHERE r.id = ANY($1::uuid[]) AND r.encrypted`,
      [roomIds],
    );
    return rows;
  },

  /** Users sharing an encrypted room with `userId` (the user included when in one). */
  async encryptedPeers(q: Queryable, userId: string): Promise<string[]> {
    const { rows } = await q.query<{ user_id: string }>(
      `SELECT DISTINCT m2.user_id FROM room_members m1
         JOIN rooms r ON r.id = m1.room_id AND r.encrypted AND r.deleted_at IS NULL
         JOIN room_members m2 ON m2.room_id = m1.room_id
        WHERE m1.user_id = $1`,
      [userId],
    );
    return rows.map((r) => r.user_id);
  },
};
