/** SQL for `audit_log`, the trail of admin and operator actions (only ever appended to). */
import type { Queryable } from '../../db/database.js';

export interface AuditRow {
  id: number;
  at: Date;
  actor_id: string | null;
  via: string;
  action: string;
  target_type: string;
  target_id: string | null;
  detail: Record<string, unknown>;
  ip: string | null;
  user_agent: string | null;
}

export type NewAuditRow = Omit<AuditRow, 'id' | 'at'>;

export const auditRepository = {
  async insert(q: Queryable, e: NewAuditRow): Promise<void> {
    await q.query(
      `INSERT INTO audit_log (actor_id, via, action, target_type, target_id, detail, ip, user_agent)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [e.actor_id, e.via, e.action, e.target_type, e.target_id, e.detail, e.ip, e.user_agent],
    );
  },

  /** Newest first, before id `before` when given, filtered by action and/or actor. */
  async page(q: Queryable, f: { limit: number; before?: number; action?: string; actor_id?: string }): Promise<AuditRow[]> {
    const { rows } = await q.query<AuditRow>(
      `SELECT * FROM audit_log
       WHERE ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR action = $3) AND ($4::uuid IS NULL OR actor_id = $4)
       ORDER BY id DESC LIMIT $1`,
      [f.limit, f.before ?? null, f.action ?? null, f.actor_id ?? null],
    );
    return rows;
  },

  /** The latest entry of `action` (e.g. the last recorded registration policy). */
  async latest(q: Queryable, action: string): Promise<AuditRow | null> {
    const { rows } = await q.query<AuditRow>('SELECT * FROM audit_log WHERE action = $1 ORDER BY id DESC LIMIT 1', [action]);
    return rows[0] ?? null;
  },
};
