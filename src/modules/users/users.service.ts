/** User profiles: read, search, and the caller's own profile. */
import type { Database } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { UserRow } from '../auth/auth.repository.js';
import { publicUser, selfUser } from './users.view.js';

export class UsersService {
  constructor(private readonly db: Database) {}

  /** @throws AppError INVALID_USER (404). */
  async get(id: string) {
    const { rows } = await this.db.query<UserRow>('SELECT * FROM users WHERE id = $1 AND deactivated_at IS NULL', [id]);
    if (!rows[0]) throw new AppError('INVALID_USER', 'User not found');
    return publicUser(rows[0]);
  }

  async me(id: string) {
    const { rows } = await this.db.query<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
    if (!rows[0]) throw new AppError('INVALID_USER', 'User not found');
    return selfUser(rows[0]);
  }

  /** Updates the caller's name and/or avatar URL. */
  async updateMe(id: string, patch: { name?: string; avatar_url?: string | null }) {
    const { rows } = await this.db.query<UserRow>(
      `UPDATE users SET name = COALESCE($2, name), avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END WHERE id = $1 RETURNING *`,
      [id, patch.name?.trim() ?? null, patch.avatar_url !== undefined, patch.avatar_url ?? null],
    );
    return selfUser(rows[0]);
  }

  /**
   * Users whose name starts with `q` or has a word starting with it (case-insensitive), or whose email
   * is exactly `q`: a whole address finds its owner, a fragment never probes which addresses exist.
   */
  async search(q: string, limit: number) {
    const pattern = q.replace(/[\\%_]/g, (c) => `\\${c}`).toLowerCase();
    const { rows } = await this.db.query<UserRow>(
      `SELECT * FROM users WHERE deactivated_at IS NULL
         AND (lower(name) LIKE $1 || '%' OR lower(name) LIKE '% ' || $1 || '%' OR email = lower($3))
       ORDER BY name LIMIT $2`,
      [pattern, limit, q.trim()],
    );
    return rows.map(publicUser);
  }
}
