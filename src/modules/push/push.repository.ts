/** SQL for push: subscriptions, room mutes, the notifier's cursor and the delivery queue. */
import type { Queryable } from '../../db/database.js';

export interface SubscriptionRow {
  id: string;
  user_id: string;
  device_id: string | null;
  kind: 'webpush' | 'http';
  key: string;
  url: string;
  p256dh: string | null;
  auth: string | null;
  app_id: string | null;
  pushkey: string | null;
  data: Record<string, unknown>;
  created_at: Date;
}

export interface DeliveryRow {
  id: number;
  subscription_id: string;
  stream_position: number;
  payload: Record<string, unknown>;
  attempts: number;
}

export type NewSubscription = Omit<SubscriptionRow, 'id' | 'created_at'>;

export const pushRepository = {
  /**
   * Stores a subscription; the same endpoint (or app_id and pushkey) registered again, by anyone,
   * replaces the old one (a browser or phone now signed in as someone else). `device_id` is kept only
   * when it names a device session (bridges act without one).
   * @returns the row and whether it is new.
   */
  async upsertSubscription(q: Queryable, s: NewSubscription): Promise<{ row: SubscriptionRow; created: boolean }> {
    const { rows } = await q.query<SubscriptionRow & { created: boolean }>(
      `INSERT INTO push_subscriptions (user_id, device_id, kind, key, url, p256dh, auth, app_id, pushkey, data)
       VALUES ($1, (SELECT id FROM devices WHERE id = $2), $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (key) DO UPDATE SET user_id = EXCLUDED.user_id, device_id = EXCLUDED.device_id, url = EXCLUDED.url,
         p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, data = EXCLUDED.data
       RETURNING *, (xmax = 0) AS created`,
      [s.user_id, s.device_id, s.kind, s.key, s.url, s.p256dh, s.auth, s.app_id, s.pushkey, s.data],
    );
    const { created, ...row } = rows[0];
    return { row, created };
  },

  /** Removes a registration of `key` held by another user (with its queued notifications, which were theirs). */
  async releaseKey(q: Queryable, key: string, userId: string): Promise<void> {
    await q.query('DELETE FROM push_subscriptions WHERE key = $1 AND user_id <> $2', [key, userId]);
  },

  async listSubscriptions(q: Queryable, userId: string): Promise<SubscriptionRow[]> {
    const { rows } = await q.query<SubscriptionRow>('SELECT * FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at', [userId]);
    return rows;
  },

  /** @returns true when the user's subscription existed. */
  async deleteSubscription(q: Queryable, userId: string, id: string): Promise<boolean> {
    const { rowCount } = await q.query('DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2', [id, userId]);
    return (rowCount ?? 0) > 0;
  },

  /** Drops a subscription the push service or gateway said is gone (its queued deliveries go with it). */
  async dropSubscription(q: Queryable, id: string): Promise<void> {
    await q.query('DELETE FROM push_subscriptions WHERE id = $1', [id]);
  },

  /** Drops HTTP pushers a gateway rejected (`rejected` pushkeys of one app). */
  async dropPushkeys(q: Queryable, appId: string, pushkeys: string[]): Promise<void> {
    await q.query("DELETE FROM push_subscriptions WHERE kind = 'http' AND app_id = $1 AND pushkey = ANY($2)", [appId, pushkeys]);
  },

  /**
   * For each of `roomIds`, its members who have a subscription (rooms with none are left out): lets
   * the notifier skip, with one query per batch, the messages nobody could be notified of. Reads
   * `room_members` (rooms).
   */
  async subscribedMembers(q: Queryable, roomIds: string[]): Promise<Map<string, Set<string>>> {
    const byRoom = new Map<string, Set<string>>();
    if (roomIds.length === 0) return byRoom;
    const { rows } = await q.query<{ room_id: string; user_id: string }>(
      `SELECT DISTINCT m.room_id, m.user_id FROM room_members m
       WHERE m.room_id = ANY($1) AND EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = m.user_id)`,
      [roomIds],
    );
    for (const r of rows) (byRoom.get(r.room_id) ?? byRoom.set(r.room_id, new Set()).get(r.room_id)!).add(r.user_id);
    return byRoom;
  },

  /**
   * The subscriptions of `userIds` that may be notified: their device session still open (or none
   * recorded), the room not muted by them. Reads `devices` (auth) for the revocation.
   */
  async targets(q: Queryable, roomId: string, userIds: string[]): Promise<SubscriptionRow[]> {
    if (userIds.length === 0) return [];
    const { rows } = await q.query<SubscriptionRow>(
      `SELECT s.* FROM push_subscriptions s
       LEFT JOIN devices d ON d.id = s.device_id
       LEFT JOIN push_room_settings r ON r.room_id = $1 AND r.user_id = s.user_id
       WHERE s.user_id = ANY($2) AND (s.device_id IS NULL OR d.revoked_at IS NULL) AND NOT COALESCE(r.muted, false)
       ORDER BY s.created_at`,
      [roomId, userIds],
    );
    return rows;
  },

  async isMuted(q: Queryable, roomId: string, userId: string): Promise<boolean> {
    const { rows } = await q.query<{ muted: boolean }>('SELECT muted FROM push_room_settings WHERE room_id = $1 AND user_id = $2', [roomId, userId]);
    return rows[0]?.muted ?? false;
  },

  async setMuted(q: Queryable, roomId: string, userId: string, muted: boolean): Promise<void> {
    await q.query(
      `INSERT INTO push_room_settings (room_id, user_id, muted) VALUES ($1, $2, $3)
       ON CONFLICT (room_id, user_id) DO UPDATE SET muted = EXCLUDED.muted, updated_at = now()`,
      [roomId, userId, muted],
    );
  },

  /** Creates the cursor at `position` when there is none (first start: no history is notified). */
  async ensureCursor(q: Queryable, position: number): Promise<void> {
    await q.query('INSERT INTO push_cursor (id, last_position) VALUES ($1, $2) ON CONFLICT DO NOTHING', ['notifier', position]);
  },

  async cursor(q: Queryable): Promise<number> {
    const { rows } = await q.query<{ last_position: number }>('SELECT last_position FROM push_cursor WHERE id = $1', ['notifier']);
    return rows[0].last_position;
  },

  /** The cursor, locked until the transaction ends: one node at a time turns events into deliveries. */
  async lockCursor(q: Queryable): Promise<number> {
    const { rows } = await q.query<{ last_position: number }>('SELECT last_position FROM push_cursor WHERE id = $1 FOR UPDATE', ['notifier']);
    return rows[0].last_position;
  },

  async advanceCursor(q: Queryable, position: number): Promise<void> {
    await q.query('UPDATE push_cursor SET last_position = $2 WHERE id = $1 AND last_position < $2', ['notifier', position]);
  },

  async insertDeliveries(q: Queryable, deliveries: { subscription_id: string; stream_position: number; payload: unknown }[]): Promise<void> {
    if (deliveries.length === 0) return;
    await q.query(
      `INSERT INTO push_deliveries (subscription_id, stream_position, payload)
       SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::jsonb[])`,
      [deliveries.map((d) => d.subscription_id), deliveries.map((d) => d.stream_position), deliveries.map((d) => JSON.stringify(d.payload))],
    );
  },

  /**
   * Claims up to `limit` due deliveries for `leaseMs` (others skip them meanwhile), counting the attempt.
   * @returns them with their subscriptions, oldest first.
   */
  async claimDue(q: Queryable, limit: number, leaseMs: number): Promise<(DeliveryRow & { subscription: SubscriptionRow })[]> {
    const { rows } = await q.query<DeliveryRow & { subscription: SubscriptionRow }>(
      `WITH due AS (
         SELECT id FROM push_deliveries
         WHERE next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE push_deliveries d SET lease_until = now() + $2 * interval '1 millisecond', attempts = d.attempts + 1
         FROM due WHERE d.id = due.id RETURNING d.*
       )
       SELECT c.id, c.subscription_id, c.stream_position, c.payload, c.attempts, to_jsonb(s) AS subscription
       FROM claimed c JOIN push_subscriptions s ON s.id = c.subscription_id ORDER BY c.id`,
      [limit, leaseMs],
    );
    return rows;
  },

  async deleteDelivery(q: Queryable, id: number): Promise<void> {
    await q.query('DELETE FROM push_deliveries WHERE id = $1', [id]);
  },

  /** Puts a delivery back for another try in `delayMs`. */
  async retryLater(q: Queryable, id: number, delayMs: number): Promise<void> {
    await q.query("UPDATE push_deliveries SET lease_until = NULL, next_attempt_at = now() + $2 * interval '1 millisecond' WHERE id = $1", [id, delayMs]);
  },

  /** Milliseconds until the next delivery is due (0: now), or null when the queue is empty. */
  async msUntilNextDue(q: Queryable): Promise<number | null> {
    // MIN of no rows is NULL; it stays NULL here (SQL's GREATEST would turn it into 0, "due now", and poll an empty queue).
    const { rows } = await q.query<{ ms: number | null }>(
      'SELECT (EXTRACT(EPOCH FROM (MIN(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at))) - now())) * 1000)::float8 AS ms FROM push_deliveries',
    );
    return rows[0].ms === null ? null : Math.max(0, Math.ceil(rows[0].ms));
  },
};
