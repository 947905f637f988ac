/**
 * The audit trail: every admin and operator action — deactivating a user, deleting a room, invite
 * codes, agent tokens and bot users, bridges creating ghosts and portals, `switchboard user create`,
 * and a change of the registration policy in the config — is recorded with who, what, when and
 * from where. Actions that run in a transaction record inside it, so an entry exists exactly when
 * the action committed. Readable through `GET /api/admin/audit`.
 */
import type { Database, Queryable } from '../../db/database.js';
import { auditRepository as repo, type AuditRow } from './audit.repository.js';

/**
 * Who acts, and from where. `via`: `api` (a user's request), `cli` (the `switchboard` command),
 * `config` (the hub noticed a changed setting at start), `bridge:<id>` (a bridge's as_token).
 */
export interface Actor {
  user_id: string | null;
  via: string;
  ip: string | null;
  user_agent: string | null;
}

/** What was done: `action` on `target_type` `target_id`, with details (never secrets). */
export interface AuditAction {
  action: string;
  target_type: string;
  target_id: string | null;
  detail?: Record<string, unknown>;
}

export const CLI_ACTOR: Actor = { user_id: null, via: 'cli', ip: null, user_agent: null };

export function auditView(r: AuditRow) {
  return {
    id: r.id,
    at: r.at.toISOString(),
    actor_id: r.actor_id,
    via: r.via,
    action: r.action,
    target_type: r.target_type,
    target_id: r.target_id,
    detail: r.detail,
    ip: r.ip,
    user_agent: r.user_agent,
  };
}

export class AuditService {
  constructor(private readonly db: Database) {}

  /** Records an action; pass the action's transaction so the entry commits with it. */
  record(q: Queryable, actor: Actor, what: AuditAction): Promise<void> {
    return repo.insert(q, {
      actor_id: actor.user_id,
      via: actor.via,
      ip: actor.ip,
      user_agent: actor.user_agent,
      action: what.action,
      target_type: what.target_type,
      target_id: what.target_id,
      detail: what.detail ?? {},
    });
  }

  /** The trail, newest first: `{entries}`; page with `before` (an entry id). */
  async list(f: { limit: number; before?: number; action?: string; actor_id?: string }) {
    return { entries: (await repo.page(this.db, f)).map(auditView) };
  }

  /**
   * At start: records the registration policy (`auth.registration`) when it differs from the one last
   * recorded, so a change an operator made in the config shows in the trail.
   */
  async recordRegistrationPolicy(policy: string): Promise<void> {
    const last = await repo.latest(this.db, 'config.registration');
    if (last?.detail.policy === policy) return;
    await this.record(this.db, { user_id: null, via: 'config', ip: null, user_agent: null }, {
      action: 'config.registration',
      target_type: 'config',
      target_id: 'auth.registration',
      detail: { policy, previous: last?.detail.policy ?? null },
    });
  }
}
